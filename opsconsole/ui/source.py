"""What the console's screens read and ask for: the one seam between the UI and the core.

The app runs on a :class:`~opsconsole.session.LiveSession` (``opsconsole``, ``opsconsole demo``);
:class:`ConsoleSource` is the part of it the app needs, so the snapshot tests can give the app an
in-process fake with fixed data instead (only there: every behaviour is proven on the real lab).
Reads are cheap and synchronous (in-memory state); anything that talks to a server is a
coroutine of the session that the app runs in a worker.  Screens never see a transport, a file
or a parser, and decide nothing the session decides.  No Textual here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ..config import Config
from ..controls import ApplyReport, Timeline
from ..controls.stage import SiteStage
from ..fleet import ServerFeed
from ..health import FleetHealth
from ..session import ControlsEvent, Intent, OnProgress, Preview
from ..session.live import ControlsListener, SuggestEvent
from ..stats.snapshot import Snapshot
from ..transport import ServerStatus

TIMELINE_BYTES = 1 << 20
"""The audit screen reads the last MiB of each server's trail (thousands of events)."""


class ConsoleSource(Protocol):
    """What the app reads and asks for (implemented by :class:`~opsconsole.session.LiveSession`)."""

    config: Config

    @property
    def read_only(self) -> bool: ...

    @property
    def operator(self) -> str: ...

    async def start(self, *, watch_controls: bool = True) -> None: ...

    async def stop(self) -> None: ...

    def services(self) -> list[str]: ...

    def snapshot(self, service: str, top_n: int = 10) -> Snapshot: ...

    def feeds(self, service: str) -> dict[str, ServerFeed]: ...

    def links(self) -> dict[str, ServerStatus]: ...

    def health(self) -> FleetHealth: ...

    def refresh_health(self) -> None: ...

    def local_events(self, services: Iterable[str] | None = None) -> list[dict[str, Any]]: ...

    async def timeline(
        self, services: Iterable[str] | None = None, *, max_bytes: int | None = None
    ) -> Timeline: ...

    def on_controls(self, listener: ControlsListener) -> None: ...

    async def refresh_controls(self, service: str) -> ControlsEvent: ...

    def known_controls(self, service: str) -> ControlsEvent | None: ...

    def known_suggestions(self, service: str) -> SuggestEvent | None: ...

    def watch_suggestions(self, service: str, on: bool = True) -> None: ...

    def refresh_suggestions(self, service: str) -> None: ...

    def notify_errors(self) -> list[str]: ...

    def known_stage(self, service: str) -> SiteStage | None: ...

    async def preview(
        self,
        service: str,
        intent: Intent,
        *,
        confirm_within: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> Preview: ...

    async def apply(
        self,
        preview: Preview,
        *,
        confirm_within: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> ApplyReport: ...
