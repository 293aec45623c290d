"""Rendered control snippets, proven on a real nginx: each control changes exactly what it should.

Every test here starts its own nginx (``/usr/sbin/nginx -p DIR -c nginx.conf``, in the foreground
so the test is its parent) on a free 127.0.0.1 port, with ``realip`` trusting 127.0.0.1 so a client
address is simulated with ``X-Forwarded-For``, and stops it by PID.  The harness (:class:`Nginx`)
is also used by ``test_controls_apply.py``.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from opsconsole.controls import validate
from opsconsole.controls.render import render
from opsconsole.controls.state import (
    Block,
    Condition,
    ControlState,
    Filter,
    Maintenance,
    RateLimit,
)
from opsconsole.errors import UsageError

NGINX = "/usr/sbin/nginx"
pytestmark = pytest.mark.usefixtures("needs_nginx")

CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 512; }}
http {{
    {log_format}
    access_log {d}/access.log{log_name};
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    include {d}/control/*.http.conf;
    server {{
        listen 127.0.0.1:{port};
        root {d}/html;
        include {d}/control/www.server.conf;
        location / {{ {location} }}
    }}
    server {{
        listen 127.0.0.1:{port2};
        root {d}/html;
        include {d}/control/shop-eu.server.conf;
        location / {{ try_files $uri /index.html; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Nginx:
    """A private nginx serving two sites: ``www`` on :attr:`port`, ``shop-eu`` on :attr:`port2`.

    ``location`` is what ``www`` does with a request no control refused (by default, serve the
    file or ``/index.html``); ``log_format`` replaces ``combined`` in ``access.log``.
    """

    def __init__(
        self,
        root: Path,
        *,
        location: str = "try_files $uri /index.html;",
        log_format: str | None = None,
    ) -> None:
        self.dir = root
        self.control = root / "control"
        self.port, self.port2 = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("control", "html", "tmp"):
            (root / sub).mkdir()
        (root / "html" / "index.html").write_text("hello\n")
        for svc in ("www", "shop-eu"):
            (self.control / f"{svc}.server.conf").write_text("")
        fmt = f"log_format opsc_test '{log_format}';" if log_format else ""
        (root / "nginx.conf").write_text(
            CONF.format(
                d=root,
                port=self.port,
                port2=self.port2,
                location=location,
                log_format=fmt,
                log_name=" opsc_test" if log_format else "",
            )
        )

    @property
    def test_cmd(self) -> str:
        return f"{NGINX} -p {self.dir} -c nginx.conf -t -q"

    @property
    def reload_cmd(self) -> str:
        return f"{NGINX} -p {self.dir} -c nginx.conf -s reload"

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.test_cmd.split(), capture_output=True, text=True, check=False)

    def start(self) -> None:
        argv = [NGINX, "-p", str(self.dir), "-c", "nginx.conf", "-g", "daemon off;"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(err) from None
                time.sleep(0.02)
        raise RuntimeError("nginx did not start")

    def workers(self) -> set[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return {int(p) for p in out.stdout.split()}

    def reload(self) -> None:
        """Reload and wait until new workers run and the old ones stopped accepting."""
        assert self.proc is not None
        old = self.workers()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.workers() - old and all(not _accepting(p) for p in old):
                return
            time.sleep(0.02)
        raise RuntimeError("nginx did not reload: " + (self.dir / "error.log").read_text()[-500:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(
        self,
        path: str = "/",
        *,
        client: str = "198.51.100.1",
        ua: str = "test-browser/1.0",
        method: str = "GET",
        port: int | None = None,
    ) -> httpx.Response:
        """One request on a fresh connection, as if from ``client``."""
        url = f"http://127.0.0.1:{port or self.port}{path}"
        headers = {"X-Forwarded-For": client, "User-Agent": ua, "Connection": "close"}
        with httpx.Client(timeout=5) as c:
            return c.request(method, url, headers=headers)

    def status(self, path: str = "/", **kw: object) -> int | str:
        """The status code, or ``"closed"`` when nginx dropped the connection (444)."""
        try:
            return self.get(path, **kw).status_code  # type: ignore[arg-type]
        except httpx.RemoteProtocolError:
            return "closed"

    def raw(self, request: bytes, port: int | None = None) -> int | str:
        """Send ``request`` (raw bytes: any method, target or header) on a fresh connection;
        the status code, or ``"closed"`` when nginx closed the connection without answering."""
        return raw_status(port or self.port, request)

    def send(
        self,
        target: bytes = b"/",
        *,
        client: str = "198.51.100.1",
        method: bytes = b"GET",
        ua: bytes | None = b"test-browser/1.0",
        referer: bytes | None = None,
    ) -> int | str:
        """One request built byte by byte (headers httpx would refuse: control bytes, NUL...)."""
        head = [method + b" " + target + b" HTTP/1.1", b"Host: localhost"]
        head.append(b"X-Forwarded-For: " + client.encode())
        if ua is not None:
            head.append(b"User-Agent: " + ua)
        if referer is not None:
            head.append(b"Referer: " + referer)
        head.append(b"Connection: close")
        return self.raw(b"\r\n".join(head) + b"\r\n\r\n")

    def burst(self, n: int, *, client: str) -> list[int]:
        """``n`` requests back to back on one keep-alive connection, as fast as nginx answers."""
        headers = {"X-Forwarded-For": client}
        with httpx.Client(timeout=5, headers=headers) as c:
            return [c.get(f"http://127.0.0.1:{self.port}/").status_code for _ in range(n)]

    def write(self, service: str, state: ControlState) -> None:
        """Put the rendered files in place the simple way (no pipeline): tmp name, rename."""
        for suffix, text in render(state, service, str(self.control)).files().items():
            tmp = self.control / f".{service}.{suffix}.tmp"
            tmp.write_text(text)
            tmp.chmod(0o644)
            tmp.rename(self.control / f"{service}.{suffix}")


def raw_status(port: int, request: bytes) -> int | str:
    """The status line's code of nginx's answer to ``request``, or ``"closed"``."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while len(data) < 12 and b"\n" not in data:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    if not data:
        return "closed"
    m = re.match(rb"HTTP/1\.[01] ([0-9]{3}) ", data)
    assert m, f"not an HTTP/1 answer: {data[:80]!r}"
    return int(m.group(1))


def _accepting(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"shutting down" not in cmd and bool(cmd)


@pytest.fixture
def nginx_dir() -> Iterator[Path]:
    # Not tmp_path: nginx's workers run as nobody and must traverse to the maintenance page.
    d = Path(tempfile.mkdtemp(prefix="opsc-nginx-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nginx(nginx_dir: Path) -> Iterator[Nginx]:
    n = Nginx(nginx_dir)
    n.start()
    try:
        yield n
    finally:
        n.stop()


def _live(n: Nginx, state: ControlState, service: str = "www") -> None:
    n.write(service, state)
    res = n.check()
    assert res.returncode == 0, res.stderr
    n.reload()


def test_a_blocked_network_gets_403_and_everyone_else_200(nginx: Nginx) -> None:
    _live(nginx, ControlState(blocks=(Block("203.0.113.0/24"), Block("2001:db8:bad::/48"))))
    assert nginx.status(client="203.0.113.9") == 403
    assert nginx.status(client="2001:db8:bad:1::7") == 403
    assert nginx.status(client="198.51.100.1") == 200
    assert nginx.status(client="2001:db8:900d::1") == 200
    _live(nginx, ControlState())
    assert nginx.status(client="203.0.113.9") == 200


def test_path_user_agent_and_method_filters_stop_exactly_the_matching_requests(
    nginx: Nginx,
) -> None:
    filters = (
        Filter("f1", "path", r"^/wp-(login|admin)\.php$"),
        Filter("f2", "user_agent", "(?i)sqlmap|nikto", action=444),
        Filter("f3", "method", "DELETE", "exact"),
        Filter("f4", "path", "/a b.c", "exact"),
        Filter("f5", "path", r"^/x{2,3}/; $"),
    )
    _live(nginx, ControlState(filters=filters))
    assert nginx.status("/wp-login.php") == 403
    assert nginx.status("/wp-admin.php") == 403
    assert nginx.status("/wp-loginXphp") == 200  # the dot is a literal dot
    assert nginx.status("/wp-login.php.bak") == 200
    assert nginx.status("/", ua="Mozilla/5.0 SQLMap/1.7") == "closed"
    assert nginx.status("/", ua="Mozilla/5.0 Firefox/120") == 200
    assert nginx.status("/", method="DELETE") == 403
    assert nginx.status("/", method="GET") == 200
    assert nginx.status("/a%20b.c") == 403  # $uri is decoded
    assert nginx.status("/a%20bxc") == 200
    assert nginx.status("/xx/;%20") == 403
    assert nginx.status("/xxxx/;%20") == 200


def _when(*conds: tuple[str, str] | tuple[str, str, str]) -> tuple[Condition, ...]:
    return tuple(Condition(*c) for c in conds)


def test_a_two_condition_filter_refuses_exactly_the_requests_matching_both(nginx: Nginx) -> None:
    f = Filter("f1", when=_when(("path", r"^/login$"), ("user_agent", "(?i)curl")))
    _live(nginx, ControlState(filters=(f,)))
    assert nginx.status("/login", ua="curl/8.0") == 403
    assert nginx.status("/login", ua="Mozilla/5.0 Firefox/120") == 200  # the path alone passes
    assert nginx.status("/", ua="curl/8.0") == 200  # the user agent alone passes
    assert nginx.status("/login?next=/", ua="CURL/7") == 403  # $uri has no query string
    assert nginx.status("//login", ua="curl/8.0") == 403  # nor a doubled slash


def test_a_three_condition_filter_needs_the_method_as_well(nginx: Nginx) -> None:
    when = _when(
        ("path", "^/api/"),
        ("user_agent", "python-requests/2.31", "exact"),
        ("method", "POST", "exact"),
    )
    _live(nginx, ControlState(filters=(Filter("f1", when=when, action=444),)))
    site = {"GET": 200, "POST": 405}  # what the static site itself answers
    for path in ("/api/x", "/x"):
        for ua in ("python-requests/2.31", "python-requests/2.32"):
            for method in ("POST", "GET"):
                all_three = (path, ua, method) == ("/api/x", "python-requests/2.31", "POST")
                got = nginx.send(path.encode(), ua=ua.encode(), method=method.encode())
                assert got == ("closed" if all_three else site[method]), (path, ua, method)


def test_a_referer_condition_can_require_no_referer_at_all(nginx: Nginx) -> None:
    filters = (
        Filter("f1", when=_when(("path", "^/checkout$"), ("referer", "^$"))),
        Filter("f2", when=_when(("referer", r"(?i)^https?://evil\.example/")), action=444),
    )
    _live(nginx, ControlState(filters=filters))
    assert nginx.send(b"/checkout") == 403  # no Referer header
    assert nginx.send(b"/checkout", referer=b"") == 403  # an empty one reads the same
    assert nginx.send(b"/checkout", referer=b"https://shop.example/cart") == 200
    assert nginx.send(b"/", referer=b"HTTPS://EVIL.example/x") == "closed"
    assert nginx.send(b"/", referer=b"https://good.example/?evil.example/") == 200
    assert nginx.send(b"/") == 200


EVASIONS = [
    b"bot\x01",
    b"\x01bot",
    b"bot\t|;1",
    b'bot"444',
    b"bot\x7f",
    b"bot\xff\xfe",
    b"1111bot",
    b"bot\\x31",
    b"bot 403 444",
    b"bot\x1f1\x1e1",
    b"bot" + b"1" * 200,
    b"bot,1:1;1|1",
]


@pytest.mark.parametrize("ua", EVASIONS)
def test_a_client_cannot_evade_or_fake_a_filter_with_bytes_in_its_user_agent(
    nginx: Nginx, ua: bytes
) -> None:
    filters = (
        Filter("f1", when=_when(("path", "^/x$"), ("user_agent", "(?i)bot"))),
        Filter(
            "f2", when=_when(("path", "^/y$"), ("user_agent", "^1+$"), ("method", "GET", "exact"))
        ),
    )
    _live(nginx, ControlState(filters=filters))
    assert nginx.send(b"/x", ua=ua) == 403  # both conditions hold, whatever else the header holds
    assert nginx.send(b"/z", ua=ua) == 200  # and the user agent alone never fakes the path
    assert nginx.send(b"/y", ua=b"1" + ua) == 200  # nor a position of another filter


def test_a_rate_limit_answers_429_to_a_bursting_client_and_200_to_another(nginx: Nginx) -> None:
    _live(nginx, ControlState(rate_limit=RateLimit("5r/s", 10, "ip")))
    codes = nginx.burst(30, client="203.0.113.50")
    assert codes[:11] == [200] * 11  # one request plus a burst of 10
    assert codes.count(429) >= 15
    assert nginx.status(client="203.0.113.51") == 200


def test_a_subnet_rate_limit_counts_a_whole_slash_24_and_slash_48_together(nginx: Nginx) -> None:
    _live(nginx, ControlState(rate_limit=RateLimit("1r/m", 2, "subnet")))
    v4 = [nginx.status(client=f"203.0.113.{i}") for i in range(1, 7)]
    v6 = [nginx.status(client=f"2001:db8:5::{i}") for i in range(1, 7)]
    assert v4[:3] == [200] * 3 and v4[3:] == [429] * 3
    assert v6[:3] == [200] * 3 and v6[3:] == [429] * 3
    assert nginx.status(client="203.0.114.1") == 200
    assert nginx.status(client="2001:db8:6::1") == 200


def test_maintenance_serves_the_page_with_retry_after_except_to_the_allow_list(
    nginx: Nginx,
) -> None:
    message = 'Back at 15:00 <b>"soon"</b> & thanks; } include /etc/passwd; #'
    _live(nginx, ControlState(maintenance=Maintenance(True, ("127.0.0.10",), message)))
    r = nginx.get(client="198.51.100.7")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "300"
    assert r.headers["content-type"].startswith("text/html")
    assert "Back at 15:00 &lt;b&gt;&quot;soon&quot;&lt;/b&gt; &amp; thanks" in r.text
    assert "<b>" not in r.text
    for method in ("POST", "DELETE", "PROPFIND"):  # not 405: the site is down for every method
        r = nginx.get(client="198.51.100.7", method=method)
        assert (r.status_code, r.headers.get("retry-after")) == (503, "300"), method
    assert nginx.get(client="198.51.100.7", method="HEAD").status_code == 503
    assert nginx.status(client="127.0.0.10") == 200
    _live(nginx, ControlState())
    assert nginx.status(client="198.51.100.7") == 200


def test_two_services_in_one_nginx_never_clash(nginx: Nginx) -> None:
    full = ControlState(
        maintenance=Maintenance(True, ("127.0.0.10",), "x"),
        blocks=(Block("203.0.113.0/24"),),
        filters=(Filter("f1", "path", "^/evil"),),
        rate_limit=RateLimit("100r/s", 5, "subnet"),
    )
    nginx.write("www", full)
    nginx.write("shop-eu", ControlState(blocks=(Block("198.51.100.0/24"),)))
    _live(nginx, full)
    assert nginx.status(client="203.0.113.1") == 403
    assert nginx.status(client="203.0.113.1", port=nginx.port2) == 200
    assert nginx.status(client="198.51.100.1", port=nginx.port2) == 403
    assert nginx.status("/evil", client="127.0.0.10", port=nginx.port2) == 200


ADDRS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(
        lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))
    ),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(
        lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))
    ),
    st.sampled_from(["255.255.255.255", "0.0.0.0", "::", "::ffff:203.0.113.7", "::1.2.3.4"]),
)


def _accepted(pattern: str) -> bool:
    try:
        validate.regex(pattern)
    except UsageError:
        return False
    return True


# Regexes built from pieces an operator would use, kept when the validator accepts them.
SAFE_REGEX = st.builds(
    lambda ci, anchor, parts, end: ci + anchor + "".join(a + q for a, q in parts) + end,
    st.sampled_from(["", "(?i)"]),
    st.sampled_from(["", "^"]),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "a",
                    "/",
                    "wp-",
                    r"\.",
                    ".",
                    "[0-9]",
                    r"\d",
                    r"\w",
                    "[^/]",
                    "x{2,3}",
                    ";",
                    " b",
                    "{",
                    "}",
                    "%20",
                    "(?:ab|cd)",
                    "(foo|bar)",
                    r"\\",
                    r"\x41",
                    "]",
                    "#",
                    "$|z",
                ]
            ),
            st.sampled_from(["", "", "+", "*", "?", "{1,4}", "+?"]),
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", "$"]),
).filter(_accepted)
# Any short string of regex syntax the validator accepts: where Python and PCRE could disagree
# on what compiles (nginx -t) or what matches.
WILD_REGEX = st.text(alphabet="ab/.^$|()[]{}*+?\\-,:;=!<>#%&~ 019xdDwWsSbBAZ", max_size=12).filter(
    _accepted
)
EXACT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x17F), min_size=1, max_size=20)


def _condition(field: str) -> st.SearchStrategy[Condition]:
    if field == "method":
        return st.sampled_from(["GET", "POST", "PROPFIND", "M_SEARCH", "X-Y"]).map(
            lambda m: Condition("method", m, "exact")
        )
    return st.one_of(
        SAFE_REGEX.map(lambda p: Condition(field, p)),
        WILD_REGEX.map(lambda p: Condition(field, p)),
        st.sampled_from(["^$", "^-?$", "(?i)^$|bot"]).map(lambda p: Condition(field, p)),
        EXACT.map(lambda p: Condition(field, p, "exact")),
    )


# One to three conditions on distinct fields, as validate.conditions allows.
CONDITIONS = st.lists(
    st.sampled_from(validate.FIELDS), min_size=1, max_size=3, unique=True
).flatmap(lambda fields: st.tuples(*(_condition(f) for f in fields)))
FILTERS = st.lists(st.tuples(CONDITIONS, st.sampled_from([403, 444])), max_size=6).map(
    lambda fs: tuple(Filter(f"f{i}", when=c, action=a) for i, (c, a) in enumerate(fs, 1))
)
STATES = st.builds(
    ControlState,
    version=st.integers(0, 10**6),
    maintenance=st.builds(
        Maintenance,
        st.booleans(),
        st.lists(ADDRS, max_size=3, unique=True).map(tuple),
        st.text(max_size=50),
    ),
    blocks=st.lists(ADDRS, max_size=20, unique=True).map(lambda xs: tuple(Block(x) for x in xs)),
    filters=FILTERS,
    rate_limit=st.one_of(
        st.just(RateLimit()),
        st.builds(
            RateLimit,
            st.sampled_from(["1r/s", "600r/m", "100000r/s"]),
            st.integers(0, 100_000),
            st.sampled_from(["ip", "subnet"]),
        ),
    ),
)


# Issue 8, item 8: nginx's geo refuses 255.255.255.255/32 ("invalid network") but takes the
# bare address; the renderer writes every single host bare, and the validator refuses that one.
@example(state=ControlState(maintenance=Maintenance(True, ("255.255.255.255/32",), "")))
@example(state=ControlState(blocks=(Block("255.255.255.255/32"), Block("2001:db8::1/128"))))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(state=STATES)
def test_any_valid_state_renders_to_a_config_nginx_accepts(state: ControlState) -> None:
    d = Path(tempfile.mkdtemp(prefix="opsc-render-"))
    try:
        n = Nginx(d)
        n.write("www", state)
        n.write("shop-eu", state)
        res = n.check()
        assert res.returncode == 0, res.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_rendering_is_deterministic_and_names_everything_per_service() -> None:
    state = ControlState(
        blocks=(Block("203.0.113.0/24"), Block("198.51.100.1")),
        filters=(
            Filter(
                "f2", when=_when(("path", "^/x"), ("referer", "^$"), ("method", "POST", "exact"))
            ),
            Filter("f1", "path", "^/x"),
            Filter("f3", "user_agent", "curl", action=444),
        ),
        rate_limit=RateLimit("10r/s", 1, "ip"),
        maintenance=Maintenance(True, (), ""),
    )
    a = render(state, "shop-eu", "/etc/nginx/opsconsole")
    # One map per distinct condition (f1 and f2 share ^/x), one over their digits; 444 first.
    assert a.http_conf.count("map ") == 5
    assert (
        a.http_conf.index('"~^.1" 444')
        < a.http_conf.index('"~^1" 403')
        < a.http_conf.index('"~^1.11" 403')
    )
    b = render(state, "shop-eu", "/etc/nginx/opsconsole")
    assert a == b
    assert a.http_conf.index("198.51.100.1") < a.http_conf.index("203.0.113.0/24")
    for text in (a.http_conf, a.server_conf):
        for word in text.replace("$", " $").split():
            if word.startswith("$opsc") or "zone=" in word or word.startswith("@"):
                assert "opsc_shop_eu_" in word, word


def _uri_path(text: str) -> str:
    """``text`` percent-encoded, so that nginx's ``$uri`` is exactly ``text`` again."""
    return "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in "/-_~") else f"%{ord(ch):02X}" for ch in text
    )


PLAIN_PATHS = st.text(alphabet="/abcdwpx-.;%{} 0123456789AB\\", max_size=12).map(lambda t: "/" + t)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pattern=SAFE_REGEX, data=st.data())
def test_nginx_matches_a_path_regex_exactly_as_python_does(
    nginx: Nginx, pattern: str, data: st.DataObject
) -> None:
    _live(nginx, ControlState(filters=(Filter("f1", "path", pattern),)))
    matching = st.from_regex(pattern).map(lambda t: t if t.startswith("/") else "/" + t)
    for path in [data.draw(PLAIN_PATHS) for _ in range(4)] + [
        data.draw(matching) for _ in range(2)
    ]:
        if "//" in path or "/." in path or not path.isascii() or not path.isprintable():
            continue  # nginx normalises these in $uri; not the question here
        expected = 403 if re.search(pattern, path) else 200
        event(f"request answered {expected}")
        assert nginx.status(_uri_path(path)) == expected, (pattern, path)


@pytest.mark.parametrize("bad", ["10.0.0.1\n10.0.0.2", "10.0.0.1;", "", "10.0.0.1 1;\n}"])
def test_a_state_that_slipped_past_validation_never_renders_nginx_syntax(bad: str) -> None:
    """The renderer checks every address again before writing it into the ``geo`` (also the
    fast path of a large block list): a newline, ``;`` or brace never reaches nginx."""
    from opsconsole.controls.state import Block, ControlState

    blocks = (*(Block(f"10.1.{i >> 8}.{i & 255}") for i in range(1000)), Block(bad))
    with pytest.raises(ValueError, match="unvalidated address"):
        render(ControlState(blocks=blocks), "www", "/etc/nginx/opsconsole")
