"""Charts as plain functions from numbers to text: sparklines, bar charts, status-mix columns.

Used by the fleet table (a sparkline per row) and the service screen (the rate charts and the
status mix over time).  Pure and deterministic — easy to test, and the snapshot tests stay stable.
Colours are applied by the caller with a :class:`~.palette.Palette`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from .palette import Palette

BLOCKS = " ▁▂▃▄▅▆▇█"
"""Eighths of a cell, empty to full."""


def resample(values: Sequence[float], columns: int) -> list[float]:
    """``values`` squeezed (or spread) into ``columns`` columns, each the mean of its span."""
    n = len(values)
    if columns <= 0 or n == 0:
        return []
    if n <= columns:
        factor = max(1, columns // n)  # spread a short series over the width
        return [float(v) for v in values for _ in range(factor)]
    out = []
    for c in range(columns):
        lo, hi = c * n // columns, (c + 1) * n // columns
        span = values[lo:hi] or values[lo : lo + 1]
        out.append(sum(span) / len(span))
    return out


def sparkline(values: Sequence[float], width: int) -> str:
    """One line of block characters; zero is a space, the largest value a full block."""
    cols = resample(values, width)
    top = max(cols, default=0.0)
    if top <= 0:
        return "▁" * len(cols) if cols else ""
    return "".join(BLOCKS[max(1, math.ceil(v / top * 8))] if v > 0 else " " for v in cols)


def human(n: float) -> str:
    """1234 -> 1.2k; small rates keep one decimal."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    if n >= 100 or n == int(n):
        return f"{n:.0f}"
    return f"{n:.1f}"


def bar_chart(
    values: Sequence[float], width: int, height: int, palette: Palette, *, unit: str = "/s"
) -> Text:
    """A column chart ``height`` lines high with the peak labelled on the left."""
    label_w = 7
    cols = resample(values, max(1, width - label_w))
    top = max(cols, default=0.0)
    lines = []
    for row in range(height):
        floor = (height - 1 - row) * 8
        cells = []
        for v in cols:
            level = 0 if top <= 0 else round(v / top * height * 8)
            cells.append(BLOCKS[max(0, min(8, level - floor))])
        if row == 0:
            label = f"{human(top)}{unit}"
        elif row == height - 1:
            label = f"0{unit}"
        else:
            label = ""
        lines.append((label.rjust(label_w - 1) + " ", "".join(cells)))
    text = Text()
    for i, (label, bars) in enumerate(lines):
        text.append(label, palette["muted"])
        text.append(bars, palette["chart"])
        if i < len(lines) - 1:
            text.append("\n")
    return text


def mix_columns(classes: Sequence[Sequence[int]], columns: int) -> list[tuple[int, int, int]]:
    """Per column, requests answered ok (1xx-3xx), 4xx and 5xx (summed over the column's span)."""
    n = len(classes)
    if columns <= 0 or n == 0:
        return []
    columns = min(columns, n)
    out = []
    for c in range(columns):
        lo, hi = c * n // columns, (c + 1) * n // columns
        ok = warn = down = 0
        for per in classes[lo:hi]:
            ok += sum(per[:3])
            warn += per[3] if len(per) > 3 else 0
            down += per[4] if len(per) > 4 else 0
        out.append((ok, warn, down))
    return out


def _split(parts: tuple[int, int, int], height: int) -> list[int]:
    """Cells for each part, proportional (largest remainder); a non-zero part gets at least one."""
    total = sum(parts)
    if total == 0:
        return [0, 0, 0]
    exact = [p / total * height for p in parts]
    cells = [int(e) for e in exact]
    for i in sorted(range(3), key=lambda i: exact[i] - cells[i], reverse=True):
        if sum(cells) >= height:
            break
        cells[i] += 1
    for i, p in enumerate(parts):
        if p and not cells[i]:
            j = max(range(3), key=lambda j: cells[j])
            cells[j] -= 1
            cells[i] = 1
    return cells


def mix_chart(classes: Sequence[Sequence[int]], width: int, height: int, palette: Palette) -> Text:
    """100 % stacked columns: ok at the bottom, 4xx above, 5xx on top; empty seconds blank."""
    label_w = 7
    cols = mix_columns(classes, max(1, width - label_w))
    stacks = [_split(c, height) for c in cols]
    labels = {0: "5xx ", height // 2: "4xx ", height - 1: "2-3xx "}
    text = Text()
    for row in range(height):
        text.append(labels.get(row, "").rjust(label_w), palette["muted"])
        level = height - row  # 1 = bottom line
        for ok, warn, down in stacks:
            if level <= ok:
                text.append("█", palette["ok"])
            elif level <= ok + warn:
                text.append("█", palette["warn"])
            elif level <= ok + warn + down:
                text.append("█", palette["down"])
            else:
                text.append(" ")
        if row < height - 1:
            text.append("\n")
    return text
