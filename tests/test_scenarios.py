"""The labeled traffic scenarios (opsconsole.lab.scenarios): the ground truth of ``suggest``.

Each test states what a user of the ground truth relies on: labels that are right (statuses as
the lab's nginx answers them, attacks only in the window), attacks shaped like their class, and
real visitors that look odd in every scenario.  Small scales keep the file fast; one test runs
the benchmark size.  The replay test starts a real nginx on loopback, configured like the lab's
sites plus :func:`lab_requirements`, and checks that it answers and logs what the labels say.
"""

from __future__ import annotations

import ast
import functools
import getpass
import http.client
import importlib.util
import ipaddress
import itertools
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from opsconsole.lab.nginx import find_nginx, nginx_argv
from opsconsole.lab.procs import free_ports
from opsconsole.lab.scenarios import (
    DEFAULT_START,
    REAL_ACTORS,
    SCENARIOS,
    LabeledRequest,
    combined_line,
    generate,
    lab_requirements,
    replay_headers,
    sites,
    write_log,
)
from opsconsole.lab.scenarios.agents import browser_mix
from opsconsole.lab.scenarios.nets import NETS
from opsconsole.logs.parse import LineParser

SMALL = 0.03
WINDOW_START = DEFAULT_START + 1800.0
END = WINDOW_START + 600.0
ROOT = Path(__file__).resolve().parent.parent
ASSET_SUFFIXES = (".css", ".js", ".svg", ".woff2", ".jpg", ".webp", ".png", ".ico")


@functools.cache
def run(name: str, seed: int = 1, scale: float = SMALL) -> tuple[LabeledRequest, ...]:
    return tuple(generate(name, seed=seed, scale=scale))


def attack(reqs: Iterable[LabeledRequest]) -> list[LabeledRequest]:
    return [r for r in reqs if r.attack]


def path_of(target: str) -> str:
    return target.split("?", 1)[0]


_NETWORKS = [(n.name, ipaddress.ip_network(c)) for n in NETS for c in (*n.v4, *n.v6)]


def network_of(ip: str) -> str:
    """The access or hosting network an address belongs to ("" if none of the table)."""
    addr = ipaddress.ip_address(ip)
    return next((name for name, net in _NETWORKS if addr in net), "")


def is_asset(target: str) -> bool:
    return path_of(target).endswith(ASSET_SUFFIXES)


@pytest.mark.parametrize("name", ["low-and-slow", "flash-crowd"])
def test_the_same_seed_gives_the_same_requests_and_another_seed_other_ones(name: str) -> None:
    again = tuple(generate(name, seed=1, scale=SMALL))
    assert again == run(name)
    other = run(name, seed=2)
    assert other != run(name)
    assert {r.client_ip for r in other} != {r.client_ip for r in run(name)}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_requests_are_in_time_order_and_an_attack_only_falls_in_the_window(name: str) -> None:
    reqs = run(name)
    times = [r.time for r in reqs]
    assert times == sorted(times)
    assert times[0] >= DEFAULT_START and times[-1] < END
    assert all(r.time >= WINDOW_START for r in attack(reqs))
    assert bool(attack(reqs)) == SCENARIOS[name].attack


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_line_parses_with_the_projects_parser_and_says_what_the_label_says(
    name: str,
) -> None:
    reqs = run(name)
    parser = LineParser("combined")
    chunk = b"".join(combined_line(r) for r in reqs)
    parsed = parser.parse(chunk)
    assert parsed.unparsed == 0 and len(parsed.rows) == len(reqs)
    g = parser.format.groups
    for req, row in zip(reqs, parsed.rows, strict=True):
        assert row[g["client"]].decode() == req.client_ip
        assert int(row[g["status"]]) == req.status
        assert row[g["method"]].decode() == req.method
        assert parser.epoch(row[g["time"]]) == int(req.time)
        if req.target.isascii() and '"' not in req.target and "\\" not in req.target:
            assert row[g["path"]].decode() == req.target


def test_a_log_line_escapes_quotes_backslashes_and_bytes_as_nginx_does() -> None:
    req = LabeledRequest(
        DEFAULT_START,
        "www",
        "2001:db8::1",
        "GET",
        '/q?a="b"\\c',
        'pip/24 {"ci":null}\t\x7f',
        "",
        404,
        146,
        False,
        "package-manager",
    )
    line = combined_line(req)
    assert line == (
        b'2001:db8::1 - - [24/Nov/2026:14:20:00 +0000] "GET /q?a=\\x22b\\x22\\x5Cc HTTP/1.1" '
        b'404 146 "-" "pip/24 {\\x22ci\\x22:null}\\x09\\x7F"\n'
    )
    accented = LabeledRequest(
        DEFAULT_START,
        "www",
        "192.0.2.1",
        "GET",
        "/",
        "caf\u00e9",
        "https://ex.org/",
        200,
        5,
        False,
        "browser",
    )
    assert b'"https://ex.org/" "caf\\xC3\\xA9"' in combined_line(accented)


def test_low_and_slow_at_scale_1_is_20000_addresses_below_any_per_ip_threshold_on_new_paths() -> (
    None
):
    reqs = list(generate("low-and-slow", seed=1, scale=1.0, services=["www"]))
    flood = attack(reqs)
    per_ip = Counter(r.client_ip for r in flood)
    assert len(flood) >= 100_000
    assert len(per_ip) >= 20_000
    assert max(per_ip.values()) <= 5
    assert {r.status for r in flood} == {404}
    v6 = sum(":" in ip for ip in per_ip)
    assert 0 < v6 < len(per_ip) / 2  # mostly IPv4, some IPv6
    baseline_paths = {path_of(r.target) for r in reqs if r.time < WINDOW_START}
    assert not {path_of(r.target) for r in flood} & baseline_paths
    assert all(r.referer == "" or r.referer.startswith("https://") for r in flood)
    assert not any(is_asset(r.target) and r.status == 200 for r in flood)


def test_low_and_slow_paths_are_random_tokens_of_many_shapes_not_one_template() -> None:
    shapes = set()
    all_lengths: Counter[int] = Counter()
    for seed in (1, 2, 3, 4):
        flood = attack(run("low-and-slow", seed=seed))
        paths = [r.target for r in flood]
        assert len(set(paths)) > 0.98 * len(paths)
        lengths = Counter(len(path_of(p)) for p in paths)
        assert len(lengths) >= 3  # never one fixed length
        all_lengths.update(lengths)
        shapes.add(frozenset(path_of(p).count("/") for p in paths))
        shapes.add(frozenset("?" in p for p in paths))
    assert len(shapes) >= 3 and len(all_lengths) >= 15
    uas = Counter(r.user_agent for r in attack(run("low-and-slow")))
    browsers = {r.user_agent for r in run("low-and-slow") if r.actor == "browser"}
    assert len(uas) >= 10 and set(uas) & browsers  # the flood sends what browsers send


def test_ai_crawler_views_real_commits_with_real_browsers_agents_no_referer_no_assets() -> None:
    reqs = run("ai-crawler")
    crawl = attack(reqs)
    assert crawl and {r.service for r in crawl} == {"git"}
    assert {r.status for r in crawl} == {200}
    assert all(r.referer == "" and not is_asset(r.target) for r in crawl)
    views = ("/commit/", "/src/commit/", "/blame/commit/", "/commits/commit/", "/compare/")
    assert all(any(v in r.target for v in views) or "/raw/commit/" in r.target for r in crawl)
    day = int(DEFAULT_START // 86400)
    catalog = set(browser_mix(day, "general")[0]) | set(browser_mix(day, "tech")[0])
    crawl_uas = Counter(r.user_agent for r in crawl)
    assert set(crawl_uas) <= catalog  # the strings real browsers send, current versions first
    seen = {r.user_agent for r in reqs if r.actor == "browser"}
    assert sum(n for ua, n in crawl_uas.items() if ua in seen) > 0.75 * len(crawl)
    per_ip = Counter(r.client_ip for r in crawl)
    assert max(per_ip.values()) <= 4 and len(per_ip) > len(crawl) / 4
    real_nets = {network_of(r.client_ip) for r in reqs if r.actor == "browser"}
    shared = sum(network_of(ip) in real_nets for ip in per_ip)
    assert shared > 0.8 * len(per_ip)  # residential networks real visitors also use
    assert len({network_of(ip) for ip in per_ip}) >= 20


def test_botnet_ua_is_one_odd_agent_over_many_addresses_on_real_pages() -> None:
    reqs = run("botnet-ua", seed=3)
    flood = attack(reqs)
    (ua,) = {r.user_agent for r in flood}
    assert len({r.client_ip for r in flood}) >= 50
    assert {r.status for r in flood} <= {200, 304}
    real = [r for r in reqs if not r.attack and r.time < WINDOW_START]
    assert sum(r.user_agent == ua for r in real) < 0.01 * len(real)
    assert len({path_of(r.target) for r in flood}) <= 4  # a few pages (or the search)
    assert len({r.target for r in flood}) > 0.5 * len(flood)  # random query strings


def test_ipv6_rotate_fits_in_one_prefix_of_at_most_48_bits_with_a_new_address_each_time() -> None:
    for seed in (1, 2):
        flood = attack(run("ipv6-rotate", seed=seed))
        addrs = [int(ipaddress.IPv6Address(r.client_ip)) for r in flood]
        assert len(set(addrs)) > 0.99 * len(addrs)
        common = 128
        for a in addrs:
            common = min(common, 128 - (a ^ addrs[0]).bit_length())
        assert common >= 40


def test_scanner_is_a_handful_of_addresses_with_many_requests_each_mostly_404() -> None:
    flood = attack(run("scanner", scale=0.2))
    per_ip = Counter(r.client_ip for r in flood)
    assert 3 <= len(per_ip) <= 12 and min(per_ip.values()) >= 50
    assert sum(r.status == 404 for r in flood) > 0.7 * len(flood)
    probed = {path_of(r.target) for r in flood}
    assert {"/wp-login.php", "/.env", "/.git/config"} <= probed
    for ip in per_ip:
        times = [r.time for r in flood if r.client_ip == ip]
        assert times[-1] - times[0] < 600 and len(times) / (times[-1] - times[0] + 1) > 1


def test_a_flash_crowd_is_new_visitors_loading_one_page_and_its_assets_from_a_news_link() -> None:
    reqs = run("flash-crowd", scale=0.1)
    crowd = [r for r in reqs if r.actor == "flash-crowd"]
    assert not attack(reqs)
    pages = [r for r in crowd if not is_asset(r.target)]
    landing = Counter(r.target for r in pages).most_common(1)[0][0]
    site = sites()[crowd[0].service]
    first = [r for r in pages if r.target == landing]
    assert len({r.client_ip for r in first}) >= 200
    news = Counter(r.referer for r in first).most_common(1)[0][0]
    assert news.startswith("https://") and site.host not in news
    assets = [r for r in crowd if is_asset(r.target) and r.referer == site.url(landing)]
    assert len(assets) >= 2 * len(first)
    before = {r.client_ip for r in reqs if r.time < WINDOW_START}
    assert sum(r.client_ip not in before for r in first) > 0.95 * len(first)


def _has_classes(reqs: list[LabeledRequest]) -> dict[str, bool]:
    real = [r for r in reqs if not r.attack]
    by = defaultdict(list)
    for r in real:
        by[r.actor].append(r)
    checks = defaultdict(list)  # one HEAD / check per site and monitor: 30-60 s apart
    for r in by["uptime-monitor"]:
        if r.method == "HEAD" and r.target == "/":
            checks[r.service, r.user_agent].append(r.time)
    gaps = [b - a for t in checks.values() for a, b in itertools.pairwise(t)]
    return {
        "browsers with assets": any(
            is_asset(r.target) and r.referer.startswith(sites()[r.service].url("/"))
            for r in by["browser"]
        ),
        "crawler with 404s": sum(r.status == 404 for r in by["search-crawler"]) >= 3,
        "apt": any("APT-HTTP" in r.user_agent for r in by["package-manager"]),
        "pip": any(r.target.startswith("/simple/") for r in by["package-manager"]),
        "deep pool paths": any(r.target.startswith("/debian/pool/") for r in by["package-manager"]),
        "feed readers": sum(r.target.endswith((".xml", ".rss")) for r in by["feed-reader"]) >= 2,
        "monitor": len(checks) >= len({r.service for r in real})
        and 25 <= sorted(gaps)[len(gaps) // 2] <= 65,
        "git clients": any(
            "info/refs?service=git-upload-pack" in r.target for r in by["git-client"]
        ),
        "api and curl": bool(by["api-client"]),
    }


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_has_each_kind_of_odd_real_visitor_in_baseline_and_window(name: str) -> None:
    reqs = run(name)
    assert {r.actor for r in reqs if not r.attack} >= set(REAL_ACTORS)
    for part in (
        [r for r in reqs if r.time < WINDOW_START],
        [r for r in reqs if r.time >= WINDOW_START],
    ):
        missing = [k for k, ok in _has_classes(part).items() if not ok]
        assert not missing, missing


def test_real_visitors_keep_their_addresses_and_some_come_and_go() -> None:
    real = [r for r in run("quiet", scale=0.1) if not r.attack]
    before = {r.client_ip for r in real if r.time < WINDOW_START}
    during = {r.client_ip for r in real if r.time >= WINDOW_START}
    assert len(before & during) > 0.1 * len(during)  # regulars, crawlers, monitors
    assert len(during - before) > 0.2 * len(during)  # new visitors
    per_24 = Counter(ip.rsplit(".", 1)[0] for ip in before if ":" not in ip)
    assert len(per_24) > 100 and max(per_24.values()) >= 3  # many networks, a few crowded /24s
    assert len({ip.split(".")[0] for ip in per_24}) > 30


def test_quiet_windows_differ_from_the_baseline_but_hold_no_attack() -> None:
    reqs = run("quiet")
    assert not attack(reqs)
    base = Counter(r.actor for r in reqs if r.time < WINDOW_START)
    win = Counter(r.actor for r in reqs if r.time >= WINDOW_START)
    ratio = {a: win[a] / base[a] * 3 for a in ("browser", "search-crawler") if base[a]}
    assert ratio["search-crawler"] != pytest.approx(ratio["browser"], rel=0.02)


def test_statuses_are_the_sites_answers_real_pages_200_or_304_made_up_paths_404() -> None:
    catalog = sites()
    for name in SCENARIOS:
        for r in run(name):
            site = catalog[r.service]
            if r.status in (200, 304):
                assert site.exists(r.target), r
            elif r.status == 404:
                assert not site.exists(r.target), r
            if r.method == "HEAD" or r.status == 304:
                assert r.bytes == 0


def test_leaving_sites_out_leaves_the_other_sites_traffic_unchanged() -> None:
    alone = tuple(generate("quiet", seed=1, scale=SMALL, services=["www"]))
    assert alone == tuple(r for r in run("quiet") if r.service == "www")


def test_the_scenario_modules_import_only_the_standard_library_and_the_labs_catalog() -> None:
    package = ROOT / "opsconsole" / "lab" / "scenarios"
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 or node.module == "model", (module.name, node.module)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for name in names:
                    top = (name or "").split(".")[0]
                    assert top in sys.stdlib_module_names or top == "__future__", (
                        module.name,
                        name,
                    )


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        generate("nope")
    with pytest.raises(ValueError, match="scale must be positive"):
        generate("quiet", scale=-1)
    with pytest.raises(ValueError, match="unknown site"):
        generate("quiet", services=["www", "mail"])
    with pytest.raises(ValueError, match="needs the 'git' site"):
        generate("ai-crawler", services=["www"])


def test_write_log_writes_one_label_per_line(tmp_path: Path) -> None:
    summary = write_log(
        "scanner", tmp_path / "a.log", tmp_path / "l.tsv", scale=SMALL, split_dir=tmp_path
    )
    lines = (tmp_path / "a.log").read_bytes().splitlines()
    labels = [row.split("\t") for row in (tmp_path / "l.tsv").read_text().splitlines()]
    assert len(lines) == len(labels) == summary.requests
    assert [int(row[0]) for row in labels] == list(range(1, len(lines) + 1))
    assert sum(int(row[1]) for row in labels) == summary.attack_requests > 0
    assert {row[3] for row in labels} == set(sites())
    www = (tmp_path / "www.labels.tsv").read_text().splitlines()
    assert len(www) == len((tmp_path / "www.access.log").read_bytes().splitlines())


def _gen_scenario_main() -> Callable[[list[str]], int]:
    spec = importlib.util.spec_from_file_location(
        "gen_scenario", ROOT / "bench" / "gen_scenario.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main: Callable[[list[str]], int] = module.main
    return main


def test_gen_scenario_prints_a_summary_line(tmp_path: Path) -> None:
    script = str(ROOT / "bench" / "gen_scenario.py")
    args = ["ipv6-rotate", "--out", str(tmp_path), "--scale", "0.01", "--baseline", "5m"]
    ok = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (line,) = ok.stdout.splitlines()
    assert "attack share" in line and "attack IPs" in line and "real-visitor IPs" in line
    assert (tmp_path / "access.log").stat().st_size > 0
    assert len((tmp_path / "labels.tsv").read_text().splitlines()) > 0


@pytest.mark.parametrize(
    "args", [["nope"], ["quiet", "--scale", "-2"], ["quiet", "--window", "ten"], ["quiet"]]
)
def test_gen_scenario_refuses_bad_input_in_one_line_with_status_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = _gen_scenario_main()
    out = [] if args == ["quiet"] else ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, *out])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


# --- replay into a real nginx -------------------------------------------------------------


def _nginx_conf(prefix: Path, ports: dict[str, int]) -> str:
    """The lab's ``server {}`` for each site (see opsconsole.lab.nginx.render_conf) plus the
    locations of :func:`lab_requirements`."""
    reqs = lab_requirements()
    temp = " ".join(
        f"{n}_temp_path {prefix}/temp/{n};"
        for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    out = [
        # As the lab does: as root, workers would run as nobody and not read a private tmp dir.
        f"user {getpass.getuser()};" if os.geteuid() == 0 else "",
        "daemon off; worker_processes 1;",
        f"pid {prefix}/nginx.pid; error_log {prefix}/error.log notice;",
        "events { worker_connections 256; }",
        "http {",
        f"  types {{ text/html html; text/css css; }} default_type text/plain; {temp}",
        "  server_tokens off; keepalive_requests 100000;",
        "  set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;",
    ]
    for name, port in ports.items():
        out += [
            f"  server {{ listen 127.0.0.1:{port}; server_name {name}; root {prefix}/sites/{name};",
            f"    index index.html; access_log {prefix}/{name}.access.log combined;",
            *(f"    {loc}" for loc in reqs[name].locations),
            "    location / { try_files $uri $uri.html $uri/ =404; } }",
        ]
    return "\n".join([*out, "}"]) + "\n"


def _docroots(prefix: Path) -> None:
    from opsconsole.lab.scenarios.sites import docroot_file

    for name, site in sites().items():
        for url in site.files:
            path = prefix / "sites" / name / docroot_file(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"lab file\n")


@pytest.mark.lab
@pytest.mark.usefixtures("needs_nginx")
def test_a_replay_into_nginx_serving_the_lab_requirements_answers_and_logs_what_labels_say(
    tmp_path: Path,
) -> None:
    nginx = find_nginx()
    assert nginx
    for sub in (
        "logs",
        "temp/client_body",
        "temp/proxy",
        "temp/fastcgi",
        "temp/uwsgi",
        "temp/scgi",
    ):
        (tmp_path / sub).mkdir(parents=True)
    _docroots(tmp_path)
    ports = dict(zip(sites(), free_ports(len(sites())), strict=True))
    (tmp_path / "nginx.conf").write_text(_nginx_conf(tmp_path, ports))
    proc = subprocess.Popen(
        nginx_argv(nginx, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "nginx.pid").exists():
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "error.log"
            ).read_text()
            time.sleep(0.05)
        sample: list[LabeledRequest] = []
        for name in SCENARIOS:  # every kind of answer to every kind of client, and a spread
            kinds: dict[tuple[str, int, str], list[LabeledRequest]] = defaultdict(list)
            for r in run(name):
                kinds[r.actor, r.status, r.method].append(r)
            sample += [r for group in kinds.values() for r in group[:: max(1, len(group) // 25)]]
        assert {r.status for r in sample} >= {200, 304, 400, 403, 404}
        sample.sort(key=lambda r: r.service)
        conns: dict[str, http.client.HTTPConnection] = {}
        sent: dict[str, list[LabeledRequest]] = defaultdict(list)
        for req in sample:
            conn = conns.setdefault(
                req.service, http.client.HTTPConnection("127.0.0.1", ports[req.service])
            )
            last_modified = None
            if req.status == 304:
                conn.request("HEAD", path_of(req.target))
                head = conn.getresponse()
                head.read()
                last_modified = head.getheader("Last-Modified")
            conn.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", req.service)
            for key, value in replay_headers(req, last_modified).items():
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
            response.read()
            assert response.status == req.status, req
            if response.getheader("Connection") == "close":
                conns.pop(req.service).close()
            sent[req.service].append(req)
    finally:
        proc.terminate()
        proc.wait(10)
    # The HEAD requests sent for Last-Modified are logged too: every labeled line must be there.
    for service, reqs in sent.items():
        logged = (tmp_path / f"{service}.access.log").read_bytes().splitlines(True)
        theirs = {_fields(line) for line in logged}
        ours = [_fields(combined_line(r)) for r in reqs]
        assert not [f for f in ours if f not in theirs], [f for f in ours if f not in theirs][:3]


def _fields(line: bytes) -> tuple[bytes, ...]:
    """What a replay must reproduce of a line: client, request, status, referer, user agent.

    nginx logs 127.0.0.1 for a request it rejects (400) before reading the headers, since
    ``realip`` runs later: the client is left out of those.
    """
    parts = line.split(b'"')  # nginx escapes every quote inside a field
    status = parts[2].split()[0]
    client = b"" if status == b"400" else parts[0].split()[0]
    return client, parts[1], status, parts[3], parts[5]
