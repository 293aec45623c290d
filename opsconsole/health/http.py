"""HTTP probe of a service URL with httpx: status, latency, TLS certificate days left.

Role: called by :mod:`.check` (once per service) and :mod:`.monitor` (every interval).  Every
probe uses a fresh connection (no keep-alive), so the latency includes connect and TLS handshake,
as a new visitor sees it during a flood.  A probe never raises: whatever goes wrong (a name that
does not resolve, a refused or silent port, a server answering garbage, an invalid certificate)
becomes :attr:`HttpResult.error`, one short sentence for the operator.

Imports: the standard library, httpx (the only module of opsconsole that does) and :mod:`.report`.
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
import ssl
import time
from urllib.parse import urlsplit

import httpx

from .. import __version__
from .report import HttpResult

USER_AGENT = f"opsconsole-health/{__version__}"


Client = httpx.AsyncClient
"""The HTTP client type, for modules that pass one along (httpx enters through this module)."""


def make_client(*, verify: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """A client for many probes: no connection kept between probes, certificates verified
    against ``verify`` or else the system's trust store (as curl does: the CAs a sysadmin
    installed, including an internal one; ``SSL_CERT_FILE`` is honoured by OpenSSL)."""
    return httpx.AsyncClient(
        verify=verify or ssl.create_default_context(),
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,  # a probe goes straight to the site, never through $HTTP_PROXY
    )


async def probe_url(
    url: str,
    *,
    timeout: float,
    follow_redirects: bool = False,
    client: httpx.AsyncClient | None = None,
) -> HttpResult:
    """GET ``url`` once, reading only the response headers.  Never raises (but is cancellable)."""
    if client is None:
        async with make_client() as own:
            return await probe_url(
                url, timeout=timeout, follow_redirects=follow_redirects, client=own
            )
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "GET", url, follow_redirects=follow_redirects, timeout=timeout
            ) as response:
                latency = (time.monotonic() - started) * 1000.0
                redirect = None
                if response.is_redirect and not follow_redirects:
                    redirect = response.headers.get("location")
                return HttpResult(
                    url=url,
                    http_status=response.status_code,
                    latency_ms=round(latency, 1),
                    tls_days_left=_tls_days_left(response),
                    redirect=redirect,
                    final_url=str(response.url) if follow_redirects else None,
                )
    except TimeoutError:
        return HttpResult(url=url, error=f"no answer within {timeout:g}s")
    except httpx.HTTPError as e:
        return HttpResult(url=url, error=describe_error(e, url, timeout))
    except (OSError, ssl.SSLError, ValueError) as e:  # defensive: httpx should have wrapped these
        return HttpResult(url=url, error=f"{type(e).__name__}: {e}")


def _tls_days_left(response: httpx.Response) -> int | None:
    """Days until the peer certificate's notAfter, from the live TLS connection."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        return None
    seconds = ssl.cert_time_to_seconds(not_after) - time.time()
    return math.floor(seconds / 86400)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def describe_error(exc: httpx.HTTPError, url: str, timeout: float) -> str:
    """One sentence an operator understands, from httpx's exception and its causes."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    where = f"{host}:{parts.port}" if parts.port else host
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connection to {where} timed out after {timeout:g}s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {where} within {timeout:g}s"
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc) or "the connection was closed"
        if "without sending" in text or "closed" in text:
            return f"{where} closed the connection without an HTTP answer"
        text = re.sub(r"bytearray[(](.*)[)]", r"\1", text)  # h11 shows the bytes it refused
        return f"{where} did not answer HTTP: {text}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"invalid URL {url!r}: {exc}"
    causes = _causes(exc)
    for describe in (_describe_cause, _describe_text):
        for cause in causes:
            message = describe(cause, host, where)
            if message:
                return message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe_cause(cause: BaseException, host: str, where: str) -> str | None:
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve {host}: {cause.strerror or cause}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"invalid TLS certificate on {where}: {cause.verify_message or cause.reason}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {where} failed: {cause.reason or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect to {where}: {cause.strerror}"
    return None


def _describe_text(cause: BaseException, host: str, where: str) -> str | None:
    """Last resort when the cause survives only as text (e.g. several addresses were tried)."""
    text = str(cause)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return f"cannot resolve {host}"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"invalid TLS certificate on {where}"
    if "refused" in text.lower():
        return f"connection refused by {where}"
    return None
