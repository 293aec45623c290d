"""Labeled requests as nginx writes them: ``combined`` log lines, and the labels beside them.

Used by :func:`opsconsole.lab.scenarios.write_log`, ``bench/gen_scenario.py`` and tests.
Standard library only.  The escaping is nginx's own (``access_log`` with the default
``escape=default``): ``"``, ``\\``, bytes below 0x20 and from 0x7f up become ``\\xHH`` (upper-case
hex), and an empty value is written ``-`` — checked against nginx 1.22.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .core import LabeledRequest

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')


def escape(value: str) -> bytes:
    """A header or request-line value as nginx logs it (``-`` when empty)."""
    raw = value.encode("utf-8", "surrogateescape")
    if not raw:
        return b"-"
    if not _NEEDS_ESCAPE.search(raw):
        return raw
    return _NEEDS_ESCAPE.sub(lambda m: b"\\x%02X" % m.group(0)[0], raw)


class _Clock:
    """``$time_local`` in UTC, formatted once per second (a log has few distinct seconds)."""

    def __init__(self) -> None:
        self.second = -1
        self.text = b""

    def __call__(self, t: float) -> bytes:
        s = int(t)
        if s != self.second:
            g = time.gmtime(s)
            self.second = s
            self.text = (
                f"{g.tm_mday:02d}/{_MONTHS[g.tm_mon - 1]}/{g.tm_year}:"
                f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000"
            ).encode()
        return self.text


_clock = _Clock()


def combined_line(req: LabeledRequest) -> bytes:
    """The ``combined`` log line of ``req``, with its final newline."""
    request = escape(f"{req.method} {req.target} HTTP/1.1")
    return b'%s - - [%s] "%s" %d %d "%s" "%s"\n' % (
        req.client_ip.encode(),
        _clock(req.time),
        request,
        req.status,
        req.bytes,
        escape(req.referer),
        escape(req.user_agent),
    )


@dataclass
class Summary:
    """What a written log holds, for a one-line report."""

    scenario: str
    requests: int = 0
    attack_requests: int = 0
    attack_ips: set[str] = field(default_factory=set)
    real_ips: set[str] = field(default_factory=set)
    by_service: Counter[str] = field(default_factory=Counter)
    attack_by_service: Counter[str] = field(default_factory=Counter)

    def add(self, req: LabeledRequest) -> None:
        self.requests += 1
        self.by_service[req.service] += 1
        if req.attack:
            self.attack_requests += 1
            self.attack_ips.add(req.client_ip)
            self.attack_by_service[req.service] += 1
        else:
            self.real_ips.add(req.client_ip)

    def attack_prefixes(self) -> str:
        """How concentrated the attack's addresses are: distinct /16s and /24s (IPv4), /32s
        and /48s (IPv6)."""
        v4 = [ip for ip in self.attack_ips if ":" not in ip]
        v6 = [int(ipaddress.IPv6Address(ip)) for ip in self.attack_ips if ":" in ip]
        n16, n24 = (
            len({ip.rsplit(".", 2)[0] for ip in v4}),
            len({ip.rsplit(".", 1)[0] for ip in v4}),
        )
        n32, n48 = len({a >> 96 for a in v6}), len({a >> 80 for a in v6})
        return (
            f"{len(v4)} IPv4 in {n16} /16s and {n24} /24s, "
            f"{len(v6)} IPv6 in {n32} /32s and {n48} /48s"
        )

    def line(self) -> str:
        share = self.attack_requests / self.requests if self.requests else 0.0
        services = ", ".join(f"{s} {n}" for s, n in self.by_service.items())
        text = (
            f"{self.scenario}: {self.requests} requests ({services}), attack share {share:.1%} "
            f"({self.attack_requests}), {len(self.attack_ips)} attack IPs"
        )
        if self.attack_ips:
            text += f" ({self.attack_prefixes()})"
        return text + f", {len(self.real_ips)} real-visitor IPs"


def write(
    requests: Iterable[LabeledRequest],
    log: BinaryIO,
    labels: BinaryIO,
    summary: Summary,
    per_service: dict[str, tuple[BinaryIO, BinaryIO]] | None = None,
) -> Summary:
    """Write ``requests`` to ``log`` and ``labels`` (and each to its service's pair)."""
    counts: Counter[str] = Counter()
    for n, req in enumerate(requests, 1):
        line = combined_line(req)
        label = f"{int(req.attack)}\t{req.actor}\t{req.service}\n".encode()
        log.write(line)
        labels.write(b"%d\t%s" % (n, label))
        if per_service is not None and req.service in per_service:
            counts[req.service] += 1
            slog, slabels = per_service[req.service]
            slog.write(line)
            slabels.write(b"%d\t%s" % (counts[req.service], label))
        summary.add(req)
    return summary


def write_files(
    requests: Iterable[LabeledRequest],
    name: str,
    path: Path,
    labels_path: Path,
    split_dir: Path | None = None,
    services: Iterable[str] = (),
) -> Summary:
    with ExitStack() as stack:
        log = stack.enter_context(path.open("wb"))
        labels = stack.enter_context(labels_path.open("wb"))
        per_service: dict[str, tuple[BinaryIO, BinaryIO]] | None = None
        if split_dir is not None:
            per_service = {
                s: (
                    stack.enter_context((split_dir / f"{s}.access.log").open("wb")),
                    stack.enter_context((split_dir / f"{s}.labels.tsv").open("wb")),
                )
                for s in services
            }
        return write(requests, log, labels, Summary(name), per_service)
