"""Controls of a service (DESIGN §5): state, validation, nginx rendering, the apply pipeline, audit.

Front ends use what is re-exported here: build an edit (``edits.block(...)``,
``edits.limit(...)``…; bad input raises ``UsageError`` before any server is contacted), then
``await apply_change(...)``, ``confirm_change``, ``rollback_change`` or ``read_controls`` with one
Transport per server, and print the returned report.

Modules: ``validate`` (operator input), ``state`` (data, JSON, pure operations), ``edits``
(intents), ``render`` (the only place that knows nginx syntax), ``serverside`` (the shell program
run on each server), ``remote``/``apply``/``settle`` (the pipeline), ``audit`` (events and the
local trail), ``report`` (results), ``expiry`` (``expire_due``: a running console removes blocks
that fall due), ``preview`` (what confirm/rollback would do), ``setup`` (snippets in place, and
nginx's proof that it includes them), ``timeline`` (server and local trails merged).  Never
imports Textual.
"""

from . import edits
from .apply import apply_change, rendered_diff
from .audit import default_trail, read_trail
from .edits import Edit
from .expiry import expire_due, next_expiry
from .preview import preview_settle
from .remote import read_controls
from .render import render
from .report import ApplyReport, ControlsReport, ServerControls, ServerResult
from .settle import confirm_change, rollback_change
from .setup import SetupReport, setup_service
from .state import ControlState, state_from_json, state_to_dict, state_to_json
from .timeline import Timeline, collect_timeline, local_events

__all__ = [
    "ApplyReport",
    "ControlState",
    "ControlsReport",
    "Edit",
    "ServerControls",
    "ServerResult",
    "SetupReport",
    "Timeline",
    "apply_change",
    "collect_timeline",
    "confirm_change",
    "default_trail",
    "edits",
    "expire_due",
    "local_events",
    "next_expiry",
    "preview_settle",
    "read_controls",
    "read_trail",
    "render",
    "rendered_diff",
    "rollback_change",
    "setup_service",
    "state_from_json",
    "state_to_dict",
    "state_to_json",
]
