"""``python -m opsconsole`` is the same as the ``opsconsole`` command."""

from .cli import main

raise SystemExit(main())
