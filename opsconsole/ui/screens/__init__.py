"""The console's screens: fleet (default), service, action preview, rate limit, audit, help."""
