"""The incident report (``opsconsole report``, DESIGN §7): what happened, for the post-mortem.

:meth:`opsconsole.session.Session.report` gathers, per service, the logs of the period (read as
``stats`` reads them, sampled where too long: :mod:`.reading`), the controls in force and what
``suggest`` recommends now, and the merged audit trail of every server; :func:`build_report`
(:mod:`.incident`) turns them into a :class:`Report`: per service a per-minute timeline
(:mod:`.traffic`), its degraded periods, every action with the traffic before and after it.
:func:`render_markdown` and :func:`render_html` show it (worded once, in :mod:`.words`);
:meth:`Report.to_dict` is ``report --json``.  Core only: never a front end or Textual.
"""

from collections.abc import Callable

from .html import render_html
from .incident import Action, Degraded, Report, ServiceFacts, ServiceReport, build_report
from .markdown import render_markdown
from .reading import READ_LIMIT, SAMPLE_BYTES, read_traffic
from .traffic import LogTraffic, Minute, ServerRead, Window

OnStage = Callable[[str], None]
"""on_stage(what): the report's gathering moves on to ``what`` (for a progress line)."""

__all__ = [
    "READ_LIMIT",
    "SAMPLE_BYTES",
    "Action",
    "Degraded",
    "LogTraffic",
    "Minute",
    "OnStage",
    "Report",
    "ServerRead",
    "ServiceFacts",
    "ServiceReport",
    "Window",
    "build_report",
    "read_traffic",
    "render_html",
    "render_markdown",
]
