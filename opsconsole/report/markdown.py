"""The incident report as Markdown (what ``opsconsole report`` prints): for the post-mortem.

Per service: which logs were read (and whether the numbers are estimates), the traffic over
time as Unicode words.sparklines and a compact table, the degraded periods, every action with the
traffic before and after it, the controls in force and what ``suggest`` would still
recommend.  Text from outside (actions, reasons, operators) is escaped for Markdown.  Called by
the CLI; pure logic over :class:`~.incident.Report`.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import words
from .incident import Report, ServiceReport

_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#"})


def md(text: str) -> str:
    """Outside text as literal Markdown (no emphasis, links, HTML or table cells from it)."""
    return text.translate(_SPECIAL).replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(report: Report) -> str:
    lines = [f"# {words.title(report)}", ""]
    unread = words.unread_lines(report)
    if unread:
        lines += ["**Not read** (the rest is reported):", ""]
        lines += [f"- {md(u)}" for u in unread]
        lines.append("")
    if not report.services:
        lines.append("No service.")
    for s in report.services:
        lines += _service(s)
    return "\n".join(lines).rstrip() + "\n"


def _service(s: ServiceReport) -> list[str]:
    read = md(words.servers_line(s)) + "  "  # a line break
    lines = [f"## {md(s.service)}", "", read, words.estimate_note(s), ""]
    lines += ["### Traffic", ""]
    if not s.minutes:
        lines += ["No request was logged in the period.", ""]
    else:
        assert s.covered is not None
        per, sparks = words.sparklines(s)
        lines.append(
            f"{s.requests:,} requests logged from {words.when(s.covered[0])} to "
            f"{words.when(s.covered[1])} UTC; one character per "
            f"{per} minute{'s' if per != 1 else ''}, "
            f"{words.hhmm(s.minutes[0].start)} to {words.hhmm(s.minutes[-1].start)}:"
        )
        lines += ["", "```"]
        width = max(len(name) for name, _ in sparks)
        lines += [f"{name.ljust(width)}  {spark}" for name, spark in sparks]
        lines += ["```", ""]
        lines += table(words.TIMELINE_HEADER, words.timeline_rows(s))
        lines += ["", f"_{words.timeline_caption(s)}_"]
        lines.append("")
    lines += ["### Degraded and recovered", ""]
    if s.degraded:
        lines += [f"- {words.degraded_text(d)}" for d in s.degraded]
    elif s.minutes:
        lines.append(words.not_degraded_text())
    else:
        lines.append("Nothing to judge: no request was logged.")
    lines += ["", f"_{words.DEGRADED_RULE}_", "", "### Actions", ""]
    if s.actions:
        lines += table(words.ACTION_HEADER, [words.action_cells(a) for a in s.actions])
    else:
        lines.append("No control action was recorded in the period (audit trails of every server).")
    lines += ["", "### Controls in force now", ""]
    if s.stage is not None:
        lines += [f"Stage now: **{md(s.stage.stage.value)}** — {md(s.stage.summary())}", ""]
    rules, remarks = words.controls_summary(s)
    lines += [f"- {md(r)}" for r in rules]
    lines += [f"- _{md(r)}_" for r in remarks]
    lines += ["", "### What suggest would still recommend", ""]
    sentence, recommended = words.suggest_lines(s)
    lines.append(md(sentence))
    for rule, command in recommended:
        lines += ["", f"- {md(rule)}", "", "  ```sh", f"  {command}", "  ```"]
    lines.append("")
    return lines
