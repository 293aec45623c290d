"""The server strip: every server's connection state and last error, on every screen.

Fed each second by the screen with the pool's link states and the health verdicts, so an
unreachable server or a refused host key is visible without leaving the screen.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import Static

from ...fleet import link_status
from ...health import FleetHealth, HostMetrics, Status
from ...text import shown
from ...transport import ServerStatus
from ..palette import Palette

_MARK = {Status.OK: "● ", Status.DOWN: "✕ "}


def server_lines(
    links: Mapping[str, ServerStatus],
    health: FleetHealth,
    palette: Palette,
    only: list[str] | None = None,
    notes: list[str] | None = None,
) -> Text:
    # One line per server, cut at the screen's edge rather than wrapped: a wrapped line loses
    # the space it was broken at ("web1" / "connected" read as "web1connected").
    text = Text(no_wrap=True, overflow="ellipsis")
    names = only if only is not None else list(links)
    for i, name in enumerate(names):
        link = links.get(name)
        kind = link_status(link)
        h = health.servers.get(name)
        if i:
            text.append("\n")
        text.append(_MARK.get(kind, "◐ "), palette[kind])
        text.append(name, "bold")
        text.append(f" {shown(link.describe()) if link else 'unknown'}")
        if h is not None and h.metrics is not None:
            text.append(f"  {host_summary(h.metrics)}", palette["muted"])
        if h is not None and h.status is not Status.OK:
            detail = "; ".join(h.reasons) or h.status.value
            text.append(f"  health {h.status.value}: {shown(detail)}", palette[h.status])
    for note in notes or ():  # a webhook of [notify] that failed
        text.append("\n")
        text.append("⚠ ", palette["warn"])
        text.append(shown(note), palette["warn"])
    return text


def host_summary(m: HostMetrics) -> str:
    """``load 0.42  mem 41%  disk 63%  estab 120  syn-recv 3``: what the box is doing."""
    parts = []
    if m.load is not None:
        parts.append(f"load {m.load[0]:.2f}")
    if m.memory_percent is not None:
        parts.append(f"mem {m.memory_percent:.0f}%")
    if m.disk_percent is not None:
        parts.append(f"disk {m.disk_percent:.0f}%")
    if m.tcp is not None:
        parts.append(f"estab {m.tcp.get('ESTABLISHED', 0)}  syn-recv {m.tcp.get('SYN_RECV', 0)}")
    return "  ".join(parts)


class ServerStrip(Static):
    """One line per server (scrolls if there are many)."""

    def show(self, text: Text) -> None:
        self.update(text)
