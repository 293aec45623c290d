"""Verdicts: readings compared with the ``[health]`` thresholds of the config.

Role: pure functions from a probe result to ``ok`` / ``warn`` / ``down`` with the reasons an
operator reads ("nginx stopped", "memory 91% > 85%").  Called by :mod:`.check` and :mod:`.monitor`;
kept apart so the rules are in one place and testable without any network.

- A server is **down** when it cannot be reached or its nginx is not running; **warn** when memory
  or disk use is above the threshold, the 1-minute load per CPU is above the threshold, SYN_RECV
  reaches ``syn_recv_warn``, or a metric (or every metric) could not be read.
- A service is **down** when its URL gives no HTTP answer (refused, timeout, not HTTP, invalid
  certificate) or a 5xx; **warn** on a 4xx, an answer slower than ``latency_warn_ms``, or a
  certificate expiring within ``tls_warn_days``; **unknown** when it has no URL.

Imports: the standard library, :mod:`opsconsole.config` and :mod:`.report`.
"""

from __future__ import annotations

from ..config import HealthConfig
from .report import HostMetrics, HttpResult, ServerHealth, ServiceHealth, Status


def _worst(statuses: list[Status]) -> Status:
    return Status.worst(statuses)


def judge_server(
    name: str,
    limits: HealthConfig,
    *,
    metrics: HostMetrics | None = None,
    ssh_error: str | None = None,
    error: str | None = None,
) -> ServerHealth:
    if ssh_error is not None:
        return ServerHealth(name, Status.DOWN, (f"ssh: {ssh_error}",), ssh_error=ssh_error)
    if metrics is None:
        reason = error or "host metrics unavailable"
        return ServerHealth(name, Status.WARN, (reason,), error=reason)

    found: list[tuple[Status, str]] = []
    m = metrics
    if m.nginx is not None:
        for n in m.nginx:
            if not n.running:
                where = f" (prefix {n.prefix})" if n.prefix else ""
                found.append((Status.DOWN, f"nginx stopped{where}"))
    if m.memory_percent is not None and m.memory_percent > limits.memory_warn_percent:
        found.append(
            (Status.WARN, f"memory {m.memory_percent:.0f}% > {limits.memory_warn_percent:g}%")
        )
    for path, used in m.disks.items():
        if used > limits.disk_warn_percent:
            found.append((Status.WARN, f"disk {path} {used:.0f}% > {limits.disk_warn_percent:g}%"))
    per_cpu = m.load_per_cpu
    if per_cpu is not None and per_cpu > limits.load_warn_per_cpu:
        found.append((Status.WARN, f"load {per_cpu:.1f} per CPU > {limits.load_warn_per_cpu:g}"))
    syn_recv = (m.tcp or {}).get("SYN_RECV", 0)
    if syn_recv >= limits.syn_recv_warn:
        found.append((Status.WARN, f"SYN_RECV {syn_recv} >= {limits.syn_recv_warn}"))
    for what, why in m.errors.items():
        found.append((Status.WARN, f"{what} unavailable: {why}"))
    return ServerHealth(
        name,
        _worst([s for s, _ in found]),
        tuple(r for _, r in found),
        metrics=metrics,
    )


def judge_service(
    name: str, url: str | None, limits: HealthConfig, probe: HttpResult | None
) -> ServiceHealth:
    if url is None or probe is None:
        return ServiceHealth(name, url, Status.UNKNOWN, ("no url configured",))
    found: list[tuple[Status, str]] = []
    if probe.error is not None:
        found.append((Status.DOWN, probe.error))
    elif probe.http_status is not None:
        if probe.http_status >= 500:
            found.append((Status.DOWN, f"HTTP {probe.http_status}"))
        elif probe.http_status >= 400:
            found.append((Status.WARN, f"HTTP {probe.http_status}"))
    if probe.latency_ms is not None and probe.latency_ms > limits.latency_warn_ms:
        found.append(
            (Status.WARN, f"slow: {probe.latency_ms:.0f} ms > {limits.latency_warn_ms:g} ms")
        )
    if probe.tls_days_left is not None and probe.tls_days_left < limits.tls_warn_days:
        found.append((Status.WARN, f"TLS certificate expires in {probe.tls_days_left} days"))
    return ServiceHealth(
        name, url, _worst([s for s, _ in found]), tuple(r for _, r in found), probe=probe
    )
