"""What each rule in force stops now (DESIGN §10): its refusals in the recent log, by rule.

The log says *that* a request was refused (403 or 444 for blocks and filters, 429 for the rate
limit, 503 for maintenance) but not by which rule; each refusal is attributed to the first rule
that matches it in nginx's order (blocks, then filters in map order), with nginx's matching
(:func:`.rules.state_masks`).  Standard library, NumPy and the controls only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..controls.render import filter_order
from ..controls.state import ControlState
from ..durations import format_duration
from .rules import state_masks
from .table import RequestLog

SPAN = 60.0
"""The recent log the effects are measured on (seconds)."""


@dataclass(frozen=True)
class RuleEffect:
    rule: str
    """``blocks`` (every block together), a filter id, ``rate limit`` or ``maintenance``."""
    requests: int
    """Requests it refused in the span."""
    rps: float
    share: float
    """Of every request in the span."""
    what: str = ""
    """The rule in words (a filter's conditions; the number of blocks)."""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "requests": self.requests, "rps": round(self.rps, 2),
                "share": round(self.share, 4), "what": self.what}  # fmt: skip


@dataclass(frozen=True)
class Effects:
    span: float
    requests: int
    """Every request logged in the span."""
    rules: tuple[RuleEffect, ...] = ()
    unattributed: int = 0
    """Refusals no rule in force matches (another console's change, nginx's own 403s)."""
    statuses: tuple[tuple[int, int], ...] = ()
    """Every status answered in the span, with its count (what the site answers)."""

    @property
    def refused(self) -> int:
        """Requests the rules in force refused in the span (maintenance's 503s included)."""
        return sum(e.requests for e in self.rules)

    def of(self, rule: str) -> RuleEffect | None:
        return next((e for e in self.rules if e.rule == rule), None)

    def to_dict(self) -> dict[str, Any]:
        return {"span": format_duration(self.span), "requests": self.requests,
                "rules": [e.to_dict() for e in self.rules],
                "unattributed": self.unattributed}  # fmt: skip


def rule_effects(
    log: RequestLog, state: ControlState, *, span: float = SPAN, now: float | None = None
) -> Effects:
    """Each rule of ``state`` with what it refused in the last ``span`` seconds of ``log``."""
    from .analysis import columns

    end = time.time() if now is None else now
    table = log.table(end - span, end - span, end)
    n = len(table)
    if n == 0:
        return Effects(span, 0)
    seconds = max(1.0, min(span, float(table.t.max() - table.t.min()) + 1))
    status = table.status
    refused = np.isin(status, (403, 444))
    masks = state_masks(state, columns(table)) if state.blocks or state.filters else {}
    order = (["blocks"] if "blocks" in masks else []) + [
        f.id for f in filter_order(state.filters) if f.id in masks
    ]
    words = {f.id: " and ".join(c.describe() for c in f.when) for f in state.filters}
    words["blocks"] = f"{len(state.blocks)} block{'s' if len(state.blocks) != 1 else ''}"
    out: list[RuleEffect] = []
    left = refused.copy()
    for rule in order:
        hit = masks[rule] & left
        left &= ~hit
        k = int(hit.sum())
        out.append(RuleEffect(rule, k, k / seconds, k / n, words.get(rule, "")))
    if state.rate_limit.rate:
        k = int((status == 429).sum())
        rl = state.rate_limit
        what = f"{rl.rate} burst {rl.burst} per {rl.key}"
        out.append(RuleEffect("rate limit", k, k / seconds, k / n, what))
    if state.maintenance.on:
        k = int((status == 503).sum())
        out.append(RuleEffect("maintenance", k, k / seconds, k / n, "503 for all but the allowed"))
    codes, counts = np.unique(status, return_counts=True)
    statuses = tuple(zip(codes.tolist(), counts.tolist(), strict=True))
    return Effects(span, n, tuple(out), int(left.sum()), statuses)
