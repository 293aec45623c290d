"""The session layer (DESIGN §2): the one service layer both front ends call.

:class:`Session` carries out every intent on the controls — connect, read, preview, apply what
was previewed, confirm or roll back, expire, the audit timeline — for the CLI and the TUI alike;
:class:`LiveSession` adds what a running console holds: the live traffic pipelines, the health
loop, the expiry of ``--ttl`` blocks and the watch on every service's controls (which notices a
server reverting an unconfirmed change by itself).  Progress is typed
(:class:`~opsconsole.controls.progress.Progress`), states and verdicts are the core's enums.
Never imports a front end or Textual.
"""

from ..controls.progress import OnProgress, Progress, Stage
from ..controls.settle import Settle
from .core import CONNECT_ATTEMPTS, Intent, Preview, ReadOnlyError, Session
from .live import ControlsEvent, LiveSession

__all__ = [
    "CONNECT_ATTEMPTS",
    "ControlsEvent",
    "Intent",
    "LiveSession",
    "OnProgress",
    "Preview",
    "Progress",
    "ReadOnlyError",
    "Session",
    "Settle",
    "Stage",
]
