"""HTTP probes of service URLs: what the operator sees for good sites and for each way one fails.

Every server here is started on 127.0.0.1 port 0 by the test and closed at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opsconsole.config import HealthConfig
from opsconsole.health.http import make_client, probe_url
from opsconsole.health.report import Status
from opsconsole.health.verdict import judge_service

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start TCP servers on loopback running ``handler``; all are closed after the test."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def answer(status: int, headers: str = "", delay: float = 0.0) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay)
        head = f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n{headers}"
        writer.write(f"{head}\r\nok".encode())
        await writer.drain()
        writer.close()

    return handle


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(
    tmp_path: Path, days: int, *, self_signed: bool = False
) -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key) files; the server cert is for 127.0.0.1, ``days`` long.

    ``self_signed``: the server certificate signs itself instead of being issued by the CA.
    """
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("opsconsole test CA"))
        .issuer_name(_name("opsconsole test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(_name("127.0.0.1") if self_signed else ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days, hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key if self_signed else ca_key, hashes.SHA256())
    )
    files = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def test_a_healthy_site_reports_status_and_latency(serve: Serve) -> None:
    port = await serve(answer(200))
    result = await probe_url(f"http://127.0.0.1:{port}/", timeout=2)
    assert result.error is None
    assert result.http_status == 200
    assert result.latency_ms is not None and 0 < result.latency_ms < 2000
    assert result.tls_days_left is None
    verdict = judge_service("www", result.url, HealthConfig(), result)
    assert verdict.status is Status.OK and verdict.healthy is True


async def test_a_5xx_makes_the_service_down_and_a_404_only_warns(serve: Serve) -> None:
    limits = HealthConfig()
    bad = await probe_url(f"http://127.0.0.1:{await serve(answer(503))}/", timeout=2)
    down = judge_service("shop", bad.url, limits, bad)
    assert (down.status, down.healthy, down.reasons) == (Status.DOWN, False, ("HTTP 503",))
    missing = await probe_url(f"http://127.0.0.1:{await serve(answer(404))}/", timeout=2)
    warn = judge_service("shop", missing.url, limits, missing)
    assert (warn.status, warn.healthy) == (Status.WARN, True)


async def test_a_slow_answer_is_a_warning(serve: Serve) -> None:
    port = await serve(answer(200, delay=0.3))
    result = await probe_url(f"http://127.0.0.1:{port}/", timeout=2)
    verdict = judge_service("www", result.url, HealthConfig(latency_warn_ms=100), result)
    assert verdict.status is Status.WARN
    assert verdict.reasons[0].startswith("slow: ")


async def test_redirects_are_reported_or_followed_as_configured(serve: Serve) -> None:
    target = await serve(answer(200))
    port = await serve(answer(301, f"Location: http://127.0.0.1:{target}/home\r\n"))
    url = f"http://127.0.0.1:{port}/"
    kept = await probe_url(url, timeout=2, follow_redirects=False)
    assert kept.http_status == 301
    assert kept.redirect == f"http://127.0.0.1:{target}/home"
    followed = await probe_url(url, timeout=2, follow_redirects=True)
    assert followed.http_status == 200
    assert followed.final_url == f"http://127.0.0.1:{target}/home"


async def test_a_refused_port_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await probe_url(f"http://127.0.0.1:{port}/", timeout=2)
    assert result.http_status is None
    assert result.error == f"connection refused by 127.0.0.1:{port}"


async def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # the kernel completes the handshake; nobody answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        result = await probe_url(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert result.error is not None
    assert "within 0.5s" in result.error


async def test_a_server_answering_garbage_is_not_http(serve: Serve) -> None:
    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\xffSSH-2.0-nonsense\r\n\r\n garbage \x01\r\n\r\n")
        await writer.drain()
        writer.close()

    port = await serve(junk)
    result = await probe_url(f"http://127.0.0.1:{port}/", timeout=2)
    assert result.http_status is None
    assert result.error is not None
    assert result.error == (
        f"127.0.0.1:{port} did not answer HTTP: illegal status line: b'\\x00\\xffSSH-2.0-nonsense'"
    )


async def test_a_name_that_does_not_resolve_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Resolution is answered locally (no DNS query leaves the machine).
    real = socket.getaddrinfo

    def fake(host: object, *args: object, **kwargs: object) -> object:
        if host == "shop.example.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    result = await probe_url("http://shop.example.invalid/", timeout=2)
    assert result.error == "cannot resolve shop.example.invalid: Name or service not known"


async def test_a_self_signed_certificate_is_refused_with_the_reason(
    serve: Serve, tmp_path: Path
) -> None:
    _, cert, key = make_certificates(tmp_path, days=30, self_signed=True)
    port = await serve(answer(200), server_tls(cert, key))
    result = await probe_url(f"https://127.0.0.1:{port}/", timeout=2)
    assert result.http_status is None
    assert result.error is not None
    assert result.error.startswith(f"invalid TLS certificate on 127.0.0.1:{port}")
    assert result.error.endswith("self-signed certificate")
    assert judge_service("www", result.url, HealthConfig(), result).status is Status.DOWN


async def test_a_trusted_certificate_reports_days_left(serve: Serve, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path, days=30)
    port = await serve(answer(200), server_tls(cert, key))
    trust = ssl.create_default_context(cafile=str(ca))
    async with make_client(verify=trust) as client:
        result = await probe_url(f"https://127.0.0.1:{port}/", timeout=2, client=client)
    assert result.error is None
    assert result.http_status == 200
    assert result.tls_days_left == 30


async def test_a_certificate_about_to_expire_is_a_warning(serve: Serve, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path, days=3)
    port = await serve(answer(200), server_tls(cert, key))
    async with make_client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        result = await probe_url(f"https://127.0.0.1:{port}/", timeout=2, client=client)
    verdict = judge_service("www", result.url, HealthConfig(), result)
    assert verdict.status is Status.WARN
    assert verdict.reasons == ("TLS certificate expires in 3 days",)


def test_a_service_without_url_is_unknown_not_unhealthy() -> None:
    verdict = judge_service("forum", None, HealthConfig(), None)
    assert verdict.status is Status.UNKNOWN
    assert verdict.healthy is None
