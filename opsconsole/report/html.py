"""The incident report as one self-contained HTML page (``opsconsole report --html FILE``).

The same facts as the Markdown (:mod:`.markdown`, worded by :mod:`.words`), with real charts:
per service, inline SVG of the requests per minute stacked by answer (2xx/3xx, other 4xx,
refused, 5xx), of the refused and 5xx shares, and of the unique and new IPs, the degraded
periods shaded and every action marked.  Nothing is fetched: no script, no external stylesheet,
font or image, so the page opens the same offline and years later.  Every text from outside is
HTML-escaped.  Pure logic over :class:`~.incident.Report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from . import words
from .incident import Report, ServiceReport
from .traffic import Minute

WIDTH, HEIGHT = 960, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 10, 24

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, monospace; background: #f4f4f4; }
pre { padding: .5em; overflow-x: auto; }
.note { color: #555; font-style: italic; }
.unread { color: #a00; }
svg { display: block; margin: .5em 0; }
svg text { font: 11px sans-serif; fill: #444; }
.axis { stroke: #999; stroke-width: 1; }
.ok { fill: #4c9a52; } .other4 { fill: #e0a030; } .refused { fill: #7a5bd0; }
.e5 { fill: #d03c3c; } .degraded { fill: #f6d5d5; opacity: .6; }
.line-refused { stroke: #7a5bd0; fill: none; stroke-width: 1.5; }
.line-5xx { stroke: #d03c3c; fill: none; stroke-width: 1.5; }
.line-ips { stroke: #3070c0; fill: none; stroke-width: 1.5; }
.line-new { stroke: #30a0a0; fill: none; stroke-width: 1.5; }
.action { stroke: #000; stroke-dasharray: 3 2; }
.legend span { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 1em; }
.legend .ok { background: #4c9a52; } .legend .other4 { background: #e0a030; }
.legend .refused { background: #7a5bd0; } .legend .e5 { background: #d03c3c; }
"""


def e(text: object) -> str:
    return escape(str(text), quote=True)


def render_html(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(words.title(report))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{e(words.title(report))}</h1>",
    ]
    unread = words.unread_lines(report)
    if unread:
        parts.append('<p class="unread"><b>Not read</b> (the rest is reported):</p><ul>')
        parts += [f'<li class="unread">{e(u)}</li>' for u in unread]
        parts.append("</ul>")
    for s in report.services:
        parts += _service(s)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = False) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    cls = ' class="n"' if numeric else ""
    body = "".join(
        "<tr>" + "".join(f"<td{cls if i else ''}>{e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _service(s: ServiceReport) -> list[str]:
    read = f"<p>{e(words.servers_line(s))}<br>{e(words.estimate_note(s))}</p>"
    out = [f"<h2>{e(s.service)}</h2>", read]
    out.append("<h3>Traffic</h3>")
    if not s.minutes:
        out.append("<p>No request was logged in the period.</p>")
    else:
        assert s.covered is not None
        out.append(
            f"<p>{s.requests:,} requests logged from {e(words.when(s.covered[0]))} to "
            f"{e(words.when(s.covered[1]))} UTC, per minute. Shaded: degraded; dashed: actions.</p>"
        )
        out.append(
            '<p class="legend"><span class="ok"></span>2xx/3xx<span class="other4"></span>'
            'other 4xx<span class="refused"></span>refused (403/444/429)<span class="e5"></span>'
            "5xx</p>"
        )
        out.append(_stacked(s))
        out.append(
            '<p class="legend"><span class="refused"></span>refused share'
            '<span class="e5"></span>5xx share</p>'
        )
        out.append(_lines(s, [("line-refused", _share(s.minutes, "refused")),
                              ("line-5xx", _share(s.minutes, "5xx"))], top=1.0))  # fmt: skip
        out.append(
            '<p class="legend"><span style="background:#3070c0"></span>unique IPs'
            '<span style="background:#30a0a0"></span>new IPs</p>'
        )
        out.append(_lines(s, [("line-ips", [float(m.unique_ips) for m in s.minutes]),
                              ("line-new", [float(m.new_ips) for m in s.minutes])]))  # fmt: skip
        out.append(_table(words.TIMELINE_HEADER, words.timeline_rows(s), numeric=True))
        out.append(f'<p class="note">{e(words.timeline_caption(s))}</p>')
    out.append("<h3>Degraded and recovered</h3>")
    if s.degraded:
        periods = "".join(f"<li>{e(words.degraded_text(d))}</li>" for d in s.degraded)
        out.append(f"<ul>{periods}</ul>")
    else:
        out.append(f"<p>{e(words.not_degraded_text() if s.minutes else 'Nothing to judge.')}</p>")
    out.append(f'<p class="note">{e(words.DEGRADED_RULE)}</p>')
    out.append("<h3>Actions</h3>")
    if s.actions:
        rows = [(str(i), *words.action_cells(a)) for i, a in enumerate(s.actions, start=1)]
        out.append(_table(("#", *words.ACTION_HEADER), rows))
    else:
        out.append("<p>No control action was recorded in the period.</p>")
    out.append("<h3>Controls in force now</h3>")
    if s.stage is not None:
        out.append(f"<p>Stage now: <b>{e(s.stage.stage.value)}</b> — {e(s.stage.summary())}</p>")
    rules, remarks = words.controls_summary(s)
    items = [f"<li>{e(r)}</li>" for r in rules] + [f'<li class="note">{e(r)}</li>' for r in remarks]
    out.append("<ul>" + "".join(items) + "</ul>")
    out.append("<h3>What suggest would still recommend</h3>")
    sentence, recommended = words.suggest_lines(s)
    out.append(f"<p>{e(sentence)}</p>")
    for rule, command in recommended:
        out.append(f"<p>{e(rule)}</p><pre>{e(command)}</pre>")
    return out


# --- charts ---------------------------------------------------------------------------------


def _share(minutes: Sequence[Minute], what: str) -> list[float]:
    return [
        (m.refused if what == "refused" else m.classes[4]) / m.requests if m.requests else 0.0
        for m in minutes
    ]


class _Frame:
    """The coordinates of one chart: minute index -> x, value -> y."""

    def __init__(self, count: int, top: float) -> None:
        self.count, self.top = max(count, 1), top if top > 0 else 1.0

    def x(self, i: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * i / self.count

    def y(self, v: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - v / self.top)


def _frame_svg(s: ServiceReport, frame: _Frame, body: list[str], top_label: str) -> str:
    """Axes, time labels, degraded shading and action marks around ``body``."""
    first = s.minutes[0].start
    out = [f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">']
    for d in s.degraded:
        end = d.end if d.end is not None else s.minutes[-1].start + 60
        x0, x1 = frame.x((d.start - first) / 60), frame.x((end - first) / 60)
        out.append(
            f'<rect class="degraded" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{HEIGHT - TOP - BOTTOM}">'
            f"<title>{e(words.degraded_text(d))}</title></rect>"
        )
    out += body
    bottom = HEIGHT - BOTTOM
    out.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>')
    out.append(f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end">{e(top_label)}</text>')
    out.append(f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end">0</text>')
    ticks = min(8, len(s.minutes))
    for k in range(ticks):
        i = round(k * (len(s.minutes) - 1) / max(ticks - 1, 1))
        out.append(
            f'<text x="{frame.x(i):.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{words.hhmm(s.minutes[i].start)}</text>"
        )
    for n, a in enumerate(s.actions, start=1):
        x = frame.x((a.time - first) / 60)
        out.append(
            f'<line class="action" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}">'
            f"<title>{e(words.when(a.time))} {e(a.operator)}: "
            f"{e(a.action)}</title></line>"
            f'<text x="{x + 2:.1f}" y="{TOP + 10}">{n}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _path(frame: _Frame, upper: Sequence[float], lower: Sequence[float] | None = None) -> str:
    """An area between ``lower`` and ``upper`` (a line words.when ``lower`` is None), one point per
    minute at its middle."""
    pts = [f"{frame.x(i + 0.5):.1f},{frame.y(v):.1f}" for i, v in enumerate(upper)]
    if lower is None:
        return "M" + " L".join(pts)
    back = [f"{frame.x(i + 0.5):.1f},{frame.y(v):.1f}" for i, v in reversed(list(enumerate(lower)))]
    return "M" + " L".join(pts + back) + " Z"


def _stacked(s: ServiceReport) -> str:
    layers = [
        ("ok", [m.classes[0] + m.classes[1] + m.classes[2] for m in s.minutes]),
        ("other4", [max(m.classes[3] - m.refused, 0) for m in s.minutes]),
        ("refused", [m.refused for m in s.minutes]),
        ("e5", [m.classes[4] for m in s.minutes]),
    ]
    frame = _Frame(len(s.minutes), float(max(m.requests for m in s.minutes)))
    base = [0.0] * len(s.minutes)
    body = []
    for cls, values in layers:
        upper = [b + v for b, v in zip(base, values, strict=True)]
        if any(values):
            body.append(f'<path class="{cls}" d="{_path(frame, upper, base)}"/>')
        base = upper
    return _frame_svg(s, frame, body, f"{frame.top:,.0f}/min")


def _lines(s: ServiceReport, series: list[tuple[str, list[float]]], top: float = 0.0) -> str:
    peak = top or max((max(v) for _, v in series if v), default=0.0)
    frame = _Frame(len(s.minutes), peak)
    body = [f'<path class="{cls}" d="{_path(frame, values)}"/>' for cls, values in series]
    label = "100 %" if top == 1.0 else f"{frame.top:,.0f}"
    return _frame_svg(s, frame, body, label)
