"""One POST of a JSON body to one webhook, with httpx — and nothing of its URL ever shown.

:class:`~.notifier.Notifier` calls :func:`post` for every try; it returns None when the webhook
took the message, else one sentence saying why not (``HTTP 500``, ``connection refused by
hooks.example.org``), with :attr:`Attempt.retry` telling whether another try can help.  The
path and query of an incoming-webhook URL are its secret: every sentence is scrubbed of them,
and httpx's own request log line shows the webhook as :func:`opsconsole.config.shown_url` does.

Imports httpx: the notifier's entry point for it, beside the health probe's (DESIGN §2; the
import-linter contract in pyproject.toml names both).  Its client honours ``$HTTPS_PROXY`` and
``$NO_PROXY`` (a chat server is usually outside; the probe, which goes to the sites, does not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from .. import __version__
from ..config import shown_url
from ..health.http import describe_error

USER_AGENT = f"opsconsole-notify/{__version__}"

Client = httpx.AsyncClient
"""The client type, for the notifier that keeps one (httpx enters through this module)."""

_SECRET: dict[str, str] = {}
"""Every webhook URL a client was made for, as httpx writes it -> its shown form (for the log
filter)."""


class _ShownUrls(logging.Filter):
    """httpx logs ``HTTP Request: POST <url> …`` at INFO: show a webhook's URL redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(a) in _SECRET for a in record.args):
            record.args = tuple(_SECRET.get(str(a), a) for a in record.args)
        return True


_LOG_FILTER = _ShownUrls()


@dataclass(frozen=True)
class Attempt:
    """Why one try did not deliver."""

    error: str
    retry: bool
    """False when trying again cannot help (the webhook refused the message: 4xx)."""


def make_client(webhooks: list[str], timeout: float) -> httpx.AsyncClient:
    """A client for the session's webhooks (their URLs registered for redaction first)."""
    for url in webhooks:
        _SECRET[url] = _SECRET[str(httpx.URL(url))] = shown_url(url)
    logger = logging.getLogger("httpx")
    if _LOG_FILTER not in logger.filters:
        logger.addFilter(_LOG_FILTER)
    return httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})


def scrub(text: str, url: str) -> str:
    """``text`` without ``url``, its path or its query (an exception may quote them)."""
    shown = shown_url(url)
    out = text.replace(url, shown)
    try:
        parts = httpx.URL(url)
        secrets = [parts.raw_path.decode("ascii", "replace"), parts.path, parts.query.decode()]
    except (httpx.InvalidURL, UnicodeDecodeError):
        secrets = []
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) > 1:
            out = out.replace(secret, "/…")
    return out


async def post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], timeout: float
) -> Attempt | None:
    """POST ``body`` as JSON to ``url`` once: None when it was taken (2xx), else why not."""
    try:
        response = await client.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as e:
        return Attempt(scrub(describe_error(e, url, timeout), url), retry=True)
    except (OSError, ValueError) as e:  # defensive: httpx should have wrapped these
        return Attempt(scrub(f"{type(e).__name__}: {e}", url), retry=True)
    status = response.status_code
    if 200 <= status < 300:
        return None
    error = f"HTTP {status} {response.reason_phrase}".rstrip()
    retry = status >= 500 or status in (408, 425, 429)
    return Attempt(error if retry else f"{error} (not retried)", retry=retry)
