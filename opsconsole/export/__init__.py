"""The live console's numbers in the Prometheus exposition format (DESIGN §11).

Past what one operator's console should hold, the numbers go to an existing time-series engine:
:class:`Exporter` serves ``/metrics`` (``prometheus_client``'s HTTP server, in its own thread)
for a running :class:`~opsconsole.session.LiveSession` — ``opsconsole export`` and the console
with ``[console] export`` set.  The series are rebuilt once a second on the session's event loop
(where its numbers live) and a scrape only returns the last set, so a scrape never races the
counting.  No series carries a client IP, path or user agent as a label: their number is the
attacker's to choose, and Prometheus's memory is not.

Series (every one labelled ``service`` and/or ``server``):

* ``opsconsole_requests_total{class}``: requests counted from each server's log since this
  process started following it (the window read back at start included), by status class;
  ``opsconsole_unparsed_lines_total``: its lines that did not parse.
* ``opsconsole_requests_per_second``, ``opsconsole_unique_ips`` (an estimate beyond 200,000, as
  ``stats`` says), ``opsconsole_new_ips_per_second``: the live window, per service.
* ``opsconsole_refused_requests{rule}`` and ``opsconsole_refused_per_second{rule}``: what each
  rule in force refused in the last minute of the log (as the service screen's effects; while
  the session analyses), and ``opsconsole_stage{stage}`` 1 for the recovery stage the site is at.
* ``opsconsole_follow_lag_seconds``, ``opsconsole_follow_up``: how far behind each server's log
  the counts are, and whether it is followed.
* ``opsconsole_server_up`` (SSH link), ``opsconsole_server_healthy``, load, CPU, memory, disk;
  ``opsconsole_service_healthy``, ``opsconsole_service_http_status``,
  ``opsconsole_service_latency_seconds``, ``opsconsole_service_tls_days_left``.
* ``process_*``: this process's CPU and memory (``prometheus_client``'s process collector).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import OperationError
from ..health.report import Status
from ..transport.base import LinkState

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ..session.live import LiveSession

log = logging.getLogger(__name__)

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


class _Families:
    """The families of one rebuild, by name (each created once, filled as the fleet is read)."""

    def __init__(self) -> None:
        self.all: dict[str, Metric] = {}

    def add(
        self,
        name: str,
        doc: str,
        labels: dict[str, str],
        value: float | None,
        *,
        counter: bool = False,
    ) -> None:
        if value is None:
            return  # not known: no sample, rather than a made-up 0
        family = self.all.get(name)
        if family is None:
            kind = CounterMetricFamily if counter else GaugeMetricFamily
            family = self.all[name] = kind(name, doc, labels=list(labels))
        family.add_metric(list(labels.values()), value)  # type: ignore[attr-defined]


def fleet_metrics(session: LiveSession) -> list[Metric]:
    """Every series of the module docstring, as the session knows them now."""
    f = _Families()
    links = session.links()
    health = session.health()
    for name in session.services():
        pipeline = session.pipelines[name]
        snap = pipeline.snapshot()
        svc = {"service": name}
        for server, feed in pipeline.feeds.items():
            at = {"service": name, "server": server}
            totals = pipeline.window.servers.get(server)
            if totals is not None:
                for cls, n in zip(CLASSES, list(totals.classes), strict=True):
                    f.add(
                        "opsconsole_requests",
                        "Requests counted from the server's access log, by status class.",
                        {**at, "class": cls},
                        n,
                        counter=True,
                    )
            f.add(
                "opsconsole_unparsed_lines",
                "Lines of the server's access log that did not parse.",
                at,
                totals.unparsed if totals is not None else 0,
                counter=True,
            )
            f.add(
                "opsconsole_follow_up",
                "1 while the server's access log is followed.",
                at,
                float(feed.connected),
            )
            f.add(
                "opsconsole_follow_lag_seconds",
                "Seconds the counts are behind the server's log (0: caught up).",
                at,
                feed.behind,
            )
        f.add("opsconsole_requests_per_second", "Requests in the last full second.", svc, snap.rps)
        f.add(
            "opsconsole_unique_ips",
            "Distinct client IPs in the live window (an estimate under a flood).",
            svc,
            snap.unique_ips,
        )
        f.add(
            "opsconsole_new_ips_per_second",
            "Client IPs not seen recently, per second over the last 10 s.",
            svc,
            snap.new_ips_per_s,
        )
        suggestion = session.known_suggestions(name)
        effects = suggestion.effects if suggestion is not None else None
        for effect in effects.rules if effects is not None else ():
            rule = {**svc, "rule": effect.rule}
            f.add(
                "opsconsole_refused_requests",
                "Requests the rule in force refused in the last minute of the log.",
                rule,
                effect.requests,
            )
            f.add(
                "opsconsole_refused_per_second",
                "Requests per second the rule in force refused over the last minute.",
                rule,
                effect.rps,
            )
        stage = session.known_stage(name)
        if stage is not None:
            f.add(
                "opsconsole_stage",
                "1 for the recovery stage the site is at (closed, staff only, protected, open, "
                "down).",
                {**svc, "stage": stage.stage.value},
                1.0,
            )
        probe = health.services.get(name)
        if probe is not None:
            result = probe.probe
            f.add("opsconsole_service_healthy", "1 healthy, 0 down.", svc, _flag(probe.healthy))
            if result is not None:
                f.add(
                    "opsconsole_service_http_status", "Status of the last probe.", svc,
                    result.http_status,
                )  # fmt: skip
                f.add(
                    "opsconsole_service_latency_seconds", "Time to the probe's answer headers.",
                    svc, None if result.latency_ms is None else result.latency_ms / 1000,
                )  # fmt: skip
                f.add(
                    "opsconsole_service_tls_days_left", "Days until the certificate expires.",
                    svc, result.tls_days_left,
                )  # fmt: skip
    for server, link in links.items():
        at = {"server": server}
        f.add(
            "opsconsole_server_up", "1 while the SSH connection is up.", at,
            float(link.state is LinkState.CONNECTED),
        )  # fmt: skip
    for server, h in health.servers.items():
        at = {"server": server}
        if h.status is not Status.UNKNOWN:
            f.add(
                "opsconsole_server_healthy", "1 ok, 0 warn or down (the host probe).", at,
                float(h.status is Status.OK),
            )  # fmt: skip
        m = h.metrics
        if m is None:
            continue
        f.add(
            "opsconsole_server_load1", "1-minute load average.", at, m.load[0] if m.load else None
        )
        f.add("opsconsole_server_cpu_percent", "CPU in use.", at, m.cpu_percent)
        f.add("opsconsole_server_memory_percent", "Memory in use.", at, m.memory_percent)
        f.add("opsconsole_server_disk_percent", "The fullest checked disk.", at, m.disk_percent)
    return list(f.all.values())


class _Latest(Collector):
    """What a scrape returns: the families of the last rebuild."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class Exporter:
    """Serves ``session``'s series on ``http://HOST:PORT/metrics`` until :meth:`stop`."""

    def __init__(self, session: LiveSession, listen: tuple[str, int], *, every: float = 1.0):
        self.session = session
        self.host, self.port = listen
        self.every = every
        self._latest = _Latest()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self._latest)
        ProcessCollector(registry=self.registry)
        self._server: WSGIServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Listen (OperationError saying why not: the port is taken, the address is not
        this machine's…) and rebuild the series every second from now on."""
        self._latest.families = fleet_metrics(self.session)
        try:
            self._server, _ = start_http_server(self.port, self.host, registry=self.registry)
        except OSError as e:
            raise OperationError(
                f"cannot serve metrics on {self.host}:{self.port}: {e.strerror or e}"
            ) from None
        self.port = self._server.server_port  # port 0: the one the system chose
        self._task = asyncio.create_task(self._rebuild(), name="prometheus export")

    async def _rebuild(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                self._latest.families = fleet_metrics(self.session)
            except Exception:  # a bug here must not stop the console; the last set stays
                log.exception("rebuilding the exported series")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.shutdown)
            server.server_close()
