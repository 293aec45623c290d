"""Progress of an intent on each server, as typed events (not text to parse).

The control pipeline (:mod:`.apply`, :mod:`.settle`, :mod:`.remote`) and the session layer
(:mod:`opsconsole.session`, which adds the connection stages) call an :data:`OnProgress`
callback at each stage of each server; the CLI prints one line per event on a terminal and the
TUI's action dialog shows the latest stage of each server.  Standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Stage(enum.StrEnum):
    """What is happening on one server now; the values read as the CLI prints them."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNREACHABLE = "cannot connect"
    READING = "reading the controls"
    RECOVERING = "rolling back an interrupted earlier apply"
    APPLYING = "writing the files, nginx -t, reload"
    CONFIRMING = "confirming"
    ROLLING_BACK = "rolling back"
    DONE = "done"


@dataclass(frozen=True)
class Progress:
    server: str
    stage: Stage
    detail: str = ""
    """For UNREACHABLE the reason; for DONE the server's outcome (``ok``, ``failed``…)."""

    def text(self) -> str:
        return f"{self.stage.value}: {self.detail}" if self.detail else self.stage.value


OnProgress = Callable[[Progress], None]


def emit(on_progress: OnProgress | None, server: str, stage: Stage, detail: str = "") -> None:
    if on_progress is not None:
        on_progress(Progress(server, stage, detail))
