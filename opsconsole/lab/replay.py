"""A labelled scenario played into the running lab: its past written, its window sent live.

Run by the replay process (:mod:`opsconsole.lab.replayd`), which :meth:`opsconsole.lab.Lab.
start_scenario` starts for ``opsconsole lab up --scenario`` and ``opsconsole demo``.  One run of
:func:`opsconsole.lab.scenarios.generate` (a baseline of ordinary traffic, then a window holding
the scenario's event) is cut where the live traffic starts: ``flood_after`` seconds before the
event's first request (the start of the window when the scenario has no event).

* Everything before the cut — at least the scenario's 30 minutes of baseline — is written straight
  into the sites' access logs, time-shifted so that it ends now, each request on one server of its
  site (chosen by client address, so a client stays on one server), line for line as the lab's
  nginx would have logged it (:class:`~.served.Served`).  ``suggest`` has its baseline at once.
* The rest is sent live over HTTP (:class:`~.sender.Sender`), each request at its own time, so
  the console sees it arrive and the operator's blocks and filters really refuse it.
* After the window, the same seed's ordinary traffic goes on (``quiet``'s, without its window):
  the same visitors, crawlers and monitors, so the site neither goes silent nor fills with
  strangers.

Every request is written to ``labels.tsv`` (:class:`Labels`) with its ground truth.  Progress
goes to ``status.json`` in the same directory, which the lab waits on and ``lab status`` shows.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .model import LabError, Layout
from .scenarios import SCENARIOS, LabeledRequest, escape, generate
from .sender import Job, Outcome, Sender
from .served import Served, logged_client

BASELINE = 1800.0
WINDOW = 600.0
DEFAULT_SCALE = 0.5
"""The scenarios' volumes at half their benchmark size: an attack of about 125 req/s (surges to
twice that) over 15 req/s of ordinary traffic, which the lab sends on time on a shared 2-core
machine with the console running beside it (measured: the sender costs about 0.3 ms of CPU per
request, nginx about as much)."""
MAX_SCALE = 2.0
MAX_FLOOD_AFTER = 600.0
REPORT_EVERY = 10.0
"""Seconds between two reports in the traffic log."""
PUBLISH_EVERY = 2.0
"""Seconds between two updates of ``status.json``."""
BEHIND_WARNING = 2.0
"""Seconds a request may be sent after its time before the replay says it cannot keep up."""


def validate(name: str, scale: float, flood_after: float) -> None:
    """LabError (exit status 2, nothing started) for an unknown scenario or a bad value."""
    if name not in SCENARIOS:
        raise LabError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}", exit_status=2
        )
    if not 0 < scale <= MAX_SCALE:
        raise LabError(f"--scale must be more than 0 and at most {MAX_SCALE:g}", exit_status=2)
    if not 0 <= flood_after <= MAX_FLOOD_AFTER:
        raise LabError(
            f"--flood-after must be 0 to {MAX_FLOOD_AFTER:g} seconds with a scenario",
            exit_status=2,
        )


def is_event(name: str, req: LabeledRequest) -> bool:
    """The scenario's event: its attack, or the crowd of a flash crowd (real visitors)."""
    return req.attack or req.actor == name


@dataclass(frozen=True)
class Site:
    """One lab site as the replay needs it: its servers, their ports, its log format."""

    servers: tuple[str, ...]
    ports: Mapping[str, int]
    log_format: str

    def server_for(self, client_ip: str) -> str:
        return self.servers[zlib.crc32(client_ip.encode()) % len(self.servers)]


def sites_from_state(state: Mapping[str, Any]) -> dict[str, Site]:
    """The lab's sites from its state file (``lab.json``)."""
    services = state.get("services")
    if not isinstance(services, dict) or not services:
        raise ValueError("the lab state file names no services")
    return {
        name: Site(
            tuple(svc["servers"]),
            {server: int(svc["http_ports"][server]) for server in svc["servers"]},
            str(svc["log_format"]),
        )
        for name, svc in services.items()
    }


class Labels:
    """``labels.tsv``: one row per request written or sent, with a header.

    Columns: ``time`` (when it is logged, epoch seconds), ``part`` (``baseline`` written into the
    logs, ``window`` sent live, ``after`` the ordinary traffic after the window), ``server``,
    ``service``, ``client`` and ``request`` exactly as the access log shows them, ``status`` (the
    label: what the site answers without any control), ``answered`` (what it did answer; ``error``
    when nothing answered), ``attack`` (1 or 0) and ``actor``.  A live request is in the log a
    moment after its ``time``; when nginx has logged it, its row is here.
    """

    HEADER = "time\tpart\tserver\tservice\tclient\trequest\tstatus\tanswered\tattack\tactor\n"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("w", encoding="utf-8", errors="surrogateescape")
        self._file.write(self.HEADER)
        self._lock = threading.Lock()

    def row(
        self, when: float, part: str, server: str, req: LabeledRequest, answered: Outcome
    ) -> None:
        request = escape(f"{req.method} {req.target} HTTP/1.1").decode("ascii", "replace")
        line = (
            f"{when:.3f}\t{part}\t{server}\t{req.service}\t{logged_client(req)}\t{request}\t"
            f"{req.status}\t{answered}\t{int(req.attack)}\t{req.actor}\n"
        )
        with self._lock:
            self._file.write(line)

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class Status:
    """``status.json``, replaced atomically: what the replay is doing, for the lab to read."""

    def __init__(self, path: Path, **fixed: Any) -> None:
        self.path = path
        self.data: dict[str, Any] = {"pid": os.getpid(), **fixed}

    def update(self, **changes: Any) -> None:
        self.data.update(changes, updated=time.time())
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def cut(
    requests: Iterable[LabeledRequest], name: str, stop: threading.Event
) -> tuple[list[LabeledRequest], float | None, Iterator[LabeledRequest]]:
    """The run up to and including its event's first request, that request's time (None: no
    event), and the rest of the run."""
    stream = iter(requests)
    head: list[LabeledRequest] = []
    for req in stream:
        head.append(req)
        if is_event(name, req):
            return head, req.time, stream
        if len(head) % 4096 == 0 and stop.is_set():
            raise InterruptedError
    return head, None, iter(())


class Replay:
    """One scenario into one lab: :meth:`prepare` writes the past, :meth:`run` sends the rest."""

    def __init__(
        self,
        layout: Layout,
        sites: Mapping[str, Site],
        name: str,
        *,
        seed: int,
        scale: float,
        flood_after: float,
        report: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        validate(name, scale, flood_after)
        self.layout = layout
        self.sites = dict(sites)
        self.name = name
        self.seed = seed
        self.scale = scale
        self.flood_after = flood_after
        self.report = report
        self.stop = stop
        self.served = Served(layout, {s: site.log_format for s, site in self.sites.items()})
        layout.scenario_dir.mkdir(parents=True, exist_ok=True)
        self.labels = Labels(layout.scenario_labels)
        self.status = Status(
            layout.scenario_status,
            scenario=name,
            seed=seed,
            scale=scale,
            flood_after=flood_after,
            labels=str(layout.scenario_labels),
        )
        self.delta = 0.0
        """Seconds added to the run's times: its cut is now."""
        self.nominal_end = 0.0
        self._live: Iterator[LabeledRequest] = iter(())
        self._dropped_reported = 0
        self._lag = 0.0
        """The largest lag since the last report."""

    # -- the past --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Generate the run, write everything before the cut into the logs; status ``window``."""
        self.status.update(phase="baseline")
        baseline = BASELINE + self.flood_after  # so that at least BASELINE precedes the cut
        start = time.time() - baseline
        run = generate(
            self.name,
            seed=self.seed,
            baseline=baseline,
            window=WINDOW,
            scale=self.scale,
            start=start,
            services=list(self.sites),
        )
        head, event_at, rest = cut(run, self.name, self.stop)
        window_start = start + baseline
        self.nominal_end = window_start + WINDOW
        live_from = (window_start if event_at is None else event_at) - self.flood_after
        split = bisect.bisect_left([r.time for r in head], live_from)
        self.delta = time.time() - live_from
        written = self._write_past(head[:split])
        self._live = itertools.chain(head[split:], rest)
        first = head[0].time + self.delta if split else None
        self.status.update(
            phase="window",
            live_start=live_from + self.delta,
            attack_at=None if event_at is None else event_at + self.delta,
            window_end=self.nominal_end + self.delta,
            baseline={"lines": written, "from": first, "to": live_from + self.delta},
            sent=0,
            dropped=0,
            behind=0.0,
        )

    def _write_past(self, past: Sequence[LabeledRequest]) -> int:
        """Append ``past`` to the access logs (whole lines per write: nginx appends to the same
        files) and to the labels."""
        chunks: dict[tuple[str, str], list[bytes]] = {}
        for req in past:
            site = self.sites[req.service]
            server = site.server_for(req.client_ip)
            when = req.time + self.delta
            chunks.setdefault((req.service, server), []).append(self.served.line(req, server, when))
            self.labels.row(when, "baseline", server, req, req.status)
        for (service, server), lines in chunks.items():
            _append(self.layout.access_log(service, server), lines)
        self.labels.flush()
        return len(past)

    # -- the live part ---------------------------------------------------------------------

    def _continuation(self) -> Iterator[LabeledRequest]:
        """Ordinary traffic after the window: ``quiet``'s baseline, same seed, until stopped."""
        length = 24 * 3600.0
        run = generate(
            "quiet",
            seed=self.seed,
            baseline=length,
            window=1.0,
            scale=self.scale,
            start=self.nominal_end,
            services=list(self.sites),
        )
        end = self.nominal_end + length
        return (r for r in run if r.time < end and not r.attack)

    def run(self, keep_going: Callable[[], bool], max_duration: float) -> str:
        """Send the live part at its pace until the end of ``max_duration`` seconds, a stop, or
        ``keep_going()`` turning false; the reason it ended."""
        ports = {
            (service, server): port
            for service, site in self.sites.items()
            for server, port in site.ports.items()
        }
        sender = Sender(ports, self.served, self._done)
        began = time.monotonic()
        next_report = began + REPORT_EVERY
        next_publish = began + PUBLISH_EVERY
        next_check = began + 1.0
        phase = "window"
        reason = "stopped"
        requests = itertools.chain(self._live, _lazy(self._continuation))
        try:
            for req in requests:
                part = "window" if req.time < self.nominal_end else "after"
                if part != phase:
                    phase = part
                    self.report("the scenario's window is over: ordinary traffic goes on")
                    self.status.update(phase=phase)
                due = req.time + self.delta
                while True:
                    now = time.monotonic()
                    if self.stop.is_set():
                        return reason
                    if now - began > max_duration:
                        return "max duration reached"
                    if now >= next_check:
                        next_check = now + 1.0
                        if not keep_going():
                            return "lab stopped"
                        if sender.unanswered and now - sender.last_answer > 60.0:
                            return "no site answered for 60s"
                    if now >= next_publish:
                        next_publish = now + PUBLISH_EVERY
                        report = now >= next_report
                        if report:
                            next_report = now + REPORT_EVERY
                        self._progress(sender, phase, report=report)
                    wait = due - time.time()
                    if wait <= 0:
                        break
                    self.stop.wait(min(wait, 0.5))
                site = self.sites[req.service]
                sender.submit(Job(req, site.server_for(req.client_ip), due, part))
            return "the traffic ran out"
        finally:
            sender.close()
            self._progress(sender, phase, report=True, final=True)
            self.labels.close()

    def _done(self, job: Job, outcome: Outcome, sent_at: float) -> None:
        self.labels.row(job.due, job.part, job.server, job.req, outcome)

    def _progress(self, sender: Sender, phase: str, *, report: bool, final: bool = False) -> None:
        """Publish what was sent (and report it); warn when the replay does not keep up."""
        lag = max(self._lag, sender.take_lag())
        self._lag = 0.0 if report else lag
        with sender.lock:
            tally = dict(sender.tally)
            dropped = sender.dropped
        sent = sum(tally.values())
        pending = sender.pending()
        text = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())) or "nothing yet"
        if report:
            self.report(f"{phase}: sent {sent} ({text}), dropped {dropped}, behind {lag:.1f}s")
        if report and (lag > BEHIND_WARNING or dropped > self._dropped_reported):
            self._dropped_reported = dropped
            self.report(
                f"warning: the replay is {lag:.1f}s behind its schedule ({pending} waiting, "
                f"{dropped} dropped): this machine does not keep up with --scale "
                f"{self.scale:g}; a smaller --scale sends on time"
            )
        self.labels.flush()
        self.status.update(
            phase="stopped" if final else phase,
            sent=sent,
            answered=tally,
            dropped=dropped,
            behind=round(lag, 3),
        )


def _lazy(make: Callable[[], Iterator[LabeledRequest]]) -> Iterator[LabeledRequest]:
    yield from make()


def _append(path: Path, lines: Sequence[bytes], chunk: int = 1 << 16) -> None:
    """Append whole lines to a log nginx also appends to: every ``write`` ends at a newline, so
    a line nginx writes meanwhile lands between two of ours, never inside one."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        batch: list[bytes] = []
        size = 0
        for line in [*lines, None]:
            if line is not None:
                batch.append(line)
                size += len(line)
            if batch and (line is None or size >= chunk):
                data = memoryview(b"".join(batch))
                while data:
                    data = data[os.write(fd, data) :]
                batch, size = [], 0
    finally:
        os.close(fd)
