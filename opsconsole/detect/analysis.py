"""What separates the attack from real visitors (DESIGN §10): the analysis behind ``suggest``.

Called by the session layer with a :class:`~.table.RequestLog` (a history read, or the live
console's buffer) — in the fleet's worker thread, never on a front end's event loop.

1. The window (default the last 10 min) is compared with the baseline (the 30 min before): the
   *excess* is what the window holds beyond the baseline's rate.  Requests the active controls
   already refuse are set aside (and counted).  A window within the baseline's range is
   ``no-anomaly``; an empty window, or a baseline too short or too quiet to compare with, is
   ``not-enough-data`` — never a rule on nothing.
2. Every client of the window is judged by what it does: one that fetches a page's assets with
   this site as referer behaves like a person's browser; crawlers, package managers, feed
   readers, monitors and git clients are clients the site wants.  A rule whose window hits are
   such clients is not offered, which is what spares a flash crowd of real browsers.
3. Candidates are rules nginx enforces (:mod:`.rules`): filters on the path (exact, or the
   *shape* of a flood's invented paths), the user agent (exact or family), the referer and the
   method, and on two or three of them together; blocks of the broadest clean networks that hold
   the attack (:mod:`.prefixes`); rate limits above what every baseline client did.  Each is
   replayed over the window and the baseline with nginx's matching: ``attack_share`` is the share
   of the excess it stops (its window hits minus what the baseline's rate predicts),
   ``collateral`` the share of baseline requests it stops, ``collateral_clients`` how many
   baseline clients.
4. The recommended set is chosen greedily by marginal gain over what the rules already chosen
   stop (overlap is counted once), within the collateral budget.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..controls.state import ControlState
from ..durations import format_duration
from ..errors import UsageError
from . import values
from .prefixes import Addresses, choose
from .rules import (
    Columns,
    Condition,
    Rule,
    block_mask,
    exact_condition,
    filter_mask,
    limit_mask,
    state_masks,
    valid_conditions,
)
from .shapes import path_candidates
from .table import BoolArray, RequestLog, Table

MIN_BASELINE_REQUESTS = 30
MIN_BASELINE_SECONDS = 300.0
HUMAN_SHARE_MAX = 0.02
"""A rule whose window hits come from real-looking visitors more than this is not offered."""
PRECISION_MIN = 0.8
"""A rule must stop mostly excess: at least this share of its window hits."""
MAX_SUGGESTIONS = 12


@dataclass(frozen=True)
class Suggestion:
    id: str
    kind: str
    rule: Rule
    attack_share: float
    collateral: float
    collateral_clients: int
    window_share: float
    recommended: bool
    explanation: str
    samples: tuple[str, ...]
    command: str
    human_share: float = 0.0
    wanted_hits: tuple[str, ...] = ()
    """Clients the site wants that the rule would stop, by name (``Googlebot: 3 requests``)."""
    stopped: int = 0
    """Window requests it stops."""
    reason: str = ""
    """The reason its command records (the console applies it with the same)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "rule": self.rule.to_dict(),
            "attack_share": round(self.attack_share, 4),
            "collateral": round(self.collateral, 5),
            "collateral_clients": self.collateral_clients,
            "window_share": round(self.window_share, 4),
            "recommended": self.recommended,
            "explanation": self.explanation,
            "samples": list(self.samples),
            "command": self.command,
            "human_share": round(self.human_share, 4),
            "wanted_hits": list(self.wanted_hits),
            "stopped_requests": self.stopped,
        }


@dataclass(frozen=True)
class Analysis:
    service: str
    window: float
    baseline: float
    status: str
    """ok, no-anomaly or not-enough-data."""
    reason: str | None = None
    window_requests: int = 0
    baseline_requests: int = 0
    excess_requests: int = 0
    suggestions: tuple[Suggestion, ...] = ()
    findings: tuple[str, ...] = ()
    """What the analysis saw, in words, for the operator (the incident channel's summary)."""
    notes: tuple[str, ...] = ()
    recall: float = 0.0
    """Estimated share of the excess the recommended set stops (overlap counted once)."""
    collateral: float = 0.0
    already_stopped: int = 0
    """Window requests the active controls already refuse (set aside)."""
    active_rules: tuple[tuple[str, int], ...] = ()
    """Per rule in force (``blocks``, a filter id, ``rate limit``): window requests it refuses."""
    window_rps: float = 0.0
    baseline_rps: float = 0.0
    anchored_at: float | None = None
    seconds: float = 0.0
    onset: float | None = None
    """When the flood began, if inside the baseline (the baseline was cut there)."""
    baseline_flooded: bool = False
    """The baseline looked like a flood itself (compare with an older one)."""
    baseline_end: float | None = None
    """Set when the baseline was a saved slice ending then, not the span before the window."""

    @property
    def recommended(self) -> list[Suggestion]:
        return [s for s in self.suggestions if s.recommended]

    def to_dict(self) -> dict[str, Any]:
        """``suggest --json`` (DESIGN §7; keys after ``suggestions`` are additions)."""
        out: dict[str, Any] = {
            "service": self.service,
            "window": format_duration(self.window),
            "baseline": format_duration(self.baseline),
            "status": self.status,
            "window_requests": self.window_requests,
            "baseline_requests": self.baseline_requests,
            "excess_requests": self.excess_requests,
            "suggestions": [s.to_dict() for s in self.suggestions],
        }
        out["reason"] = self.reason  # null when ok
        out.update(
            findings=list(self.findings),
            notes=list(self.notes),
            recall=round(self.recall, 4),
            collateral=round(self.collateral, 5),
            already_stopped=self.already_stopped,
            active_rules=[{"rule": r, "window_requests": n} for r, n in self.active_rules],
            window_rps=round(self.window_rps, 2),
            baseline_rps=round(self.baseline_rps, 2),
            anchored_at=_iso(self.anchored_at) if self.anchored_at else None,
            seconds=round(self.seconds, 2),
            onset=_iso(self.onset) if self.onset else None,
            baseline_flooded=self.baseline_flooded,
            baseline_until=_iso(self.baseline_end) if self.baseline_end else None,
        )
        return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --- the analysis --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Scored:
    rule: Rule
    mask: BoolArray
    explanation: str
    stopped_w: int = 0
    stopped_b: int = 0
    unseen_b: int = 0
    excess: float = 0.0
    human: int = 0
    score: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def analyze(
    log: RequestLog,
    service: str,
    *,
    window: float = 600.0,
    baseline: float = 1800.0,
    budget: float = 0.005,
    now: float | None = None,
    own_hosts: Iterable[str] = (),
    state: ControlState | None = None,
    config_arg: str | None = None,
    baseline_end: float | None = None,
) -> Analysis:
    """Compare the window with the baseline and suggest rules; see the module docstring.
    ``baseline_end``: the baseline is the ``baseline`` seconds before it (a saved slice of
    normal traffic, from before a flood older than the default baseline), not those just before
    the window."""
    began = time.monotonic()
    empty = Analysis(service, window, baseline, "not-enough-data")
    latest = log.latest()
    if latest is None:
        why = "no request could be read from the log" + (
            f" ({log.unparsed} lines did not parse as the configured log_format)"
            if log.unparsed
            else " (it is empty, or does not exist yet)"
        )
        return replace(empty, reason=why)
    end = time.time() if now is None else now
    notes: list[str] = []
    anchored = None
    if latest <= end - window:
        anchored = end = float(latest)
        notes.append(
            f"no request in the last {format_duration(window)}: the log's newest line is "
            f"{format_duration(time.time() - latest)} old, so the window is the "
            f"{format_duration(window)} before it"
        )
    if baseline_end is not None and baseline_end >= end - window:
        baseline_end = None  # not a slice apart: the usual baseline
    start = (end - window if baseline_end is None else baseline_end) - baseline
    table = log.table(start, end - window, end)
    cols = columns(table, own_hosts)
    analyzer = _Analyzer(table, cols, service, window, baseline, budget, state, config_arg)
    analyzer.baseline_end = baseline_end
    result = analyzer.run()
    return replace(
        result,
        notes=tuple(notes) + result.notes,
        anchored_at=anchored,
        seconds=time.monotonic() - began,
    )


def columns(table: Table, own_hosts: Iterable[str] = ()) -> Columns:
    """The table's distinct values as nginx matches them (and this site's own referer hosts)."""
    targets = [values.target(t) for t in table.targets]
    agents = [values.agent(a) for a in table.agents]
    refs = [values.referer(r, frozenset()) for r in table.referers]
    # This site's own hosts: the configured one (its health-check URL, which may well be an
    # internal name or address) and the referer hosts most assets are fetched with (the name
    # visitors' browsers use).
    hosts = frozenset(h.lower().encode() for h in own_hosts) | _own_hosts(table, targets, refs)
    refs = [values.referer(r, hosts) for r in table.referers]
    return Columns(table, [t.uri for t in targets], targets, agents, refs, table.methods)


def _own_hosts(
    table: Table, targets: list[values.Target], refs: list[values.Referer]
) -> frozenset[bytes]:
    asset = np.array([t.asset for t in targets], dtype=bool)[table.target]
    ok = (table.status < 400) & asset
    hosts = Counter(refs[i].host for i in table.referer[ok].tolist() if refs[i].host)
    return frozenset(h for h, _ in hosts.most_common(2))


class _Analyzer:
    def __init__(
        self,
        table: Table,
        cols: Columns,
        service: str,
        window: float,
        baseline: float,
        budget: float,
        state: ControlState | None,
        config_arg: str | None,
    ) -> None:
        self.t = table
        self.cols = cols
        self.service = service
        self.window = window
        self.baseline = baseline
        self.budget = budget
        self.state = state
        self.config_arg = config_arg
        self.base = Analysis(service, window, baseline, "not-enough-data")
        self.addresses: Addresses | None = None
        self.notes: list[str] = []
        self.baseline_end: float | None = None
        self.flooded = False
        self.active: dict[str, int] = {}
        """Window requests each rule in force refuses (the first rule that matches)."""

    # -- 1. the excess ----------------------------------------------------------------------

    def run(self) -> Analysis:
        t = self.t
        active = self._already_refused()
        self.W = t.window & ~active
        self.B = t.baseline & ~active
        n_w, n_b = int(self.W.sum()), int(self.B.sum())
        stopped = int((t.window & active).sum())
        base = replace(
            self.base, window_requests=n_w, baseline_requests=n_b, already_stopped=stopped,
            active_rules=tuple(self.active.items()),
        )  # fmt: skip
        if n_w == 0:
            why = "no request in the window"
            if stopped:
                why = f"every window request ({stopped}) is already refused by the active rules"
            return replace(base, reason=why)
        if self.baseline_end is not None:  # a saved slice: only what lies in it
            self.B = self.B & (t.t < self.baseline_end)
            n_b = int(self.B.sum())
            base = replace(base, baseline_requests=n_b, baseline_end=self.baseline_end)
        covered_b = self._covered(t.split if self.baseline_end is None else self.baseline_end)
        if n_b < MIN_BASELINE_REQUESTS or covered_b < MIN_BASELINE_SECONDS:
            return replace(base, reason=self._too_little(n_b, covered_b))
        self.n_w, self.n_b = n_w, n_b
        self.ratio = t.window_seconds / covered_b
        self._judge_clients()
        if self.baseline_end is not None:
            self.notes.append(
                f"the baseline is the {format_duration(60 * round(covered_b / 60))} before "
                f"{time.strftime('%H:%M', time.gmtime(self.baseline_end))} UTC, before the flood"
            )
        onset = self._onset() if self.baseline_end is None else None
        if onset is not None:
            # The flood began inside the baseline: what came after it (and the minute before,
            # which may hold its first requests) is not normal traffic.
            self.B = self.B & (t.t < onset - 60)
            n_b, covered_b = int(self.B.sum()), self._covered(onset - 60)
            stamp = time.strftime("%H:%M", time.gmtime(onset))
            if n_b < MIN_BASELINE_REQUESTS or covered_b < MIN_BASELINE_SECONDS:
                return replace(
                    base,
                    baseline_requests=n_b,
                    reason=(
                        f"the odd traffic began at {stamp} UTC, inside the baseline: the "
                        f"{format_duration(max(covered_b, 0))} of baseline before it "
                        f"({n_b} requests) are too little to tell what is normal; "
                        + (
                            "the log holds nothing older"
                            if self._log_younger()
                            else "try a longer --baseline (such as 2h), which is cut where "
                            "the flood began"
                        )
                    ),
                )
            base = replace(base, onset=onset)
            self.notes.append(
                f"the odd traffic began at {stamp} UTC, inside the baseline: the baseline is "
                f"the {format_duration(60 * round(covered_b / 60))} before it"
            )
            self.n_b = n_b
            self.ratio = t.window_seconds / covered_b
            self._judge_clients()
        expected = n_b * self.ratio
        self.excess_total = n_w - expected
        self.normal_w = max(expected, 1.0)
        """Real visitors' requests the window should hold (the baseline's rate)."""
        base = replace(
            base,
            baseline_requests=n_b,
            window_rps=n_w / t.window_seconds,
            baseline_rps=n_b / covered_b,
            excess_requests=max(0, round(self.excess_total)),
            notes=tuple(self.notes),
        )
        self._judge_clients()
        # What needs explaining is the excess of clients that do not behave like real visitors:
        # more people reading the site (a busy hour, a flash crowd) is no attack.
        odd = ~(self.human | self.wanted)
        odd_w, odd_b = int((self.W & odd).sum()), int((self.B & odd).sum())
        odd_expected = odd_b * self.ratio
        self.excess_total = odd_w - odd_expected
        base = replace(base, excess_requests=max(0, round(self.excess_total)))
        noise = 3 * math.sqrt(odd_expected + 1) + 30
        # An attack worth rules at least doubles the odd traffic and is a tenth of the window.
        if self.excess_total < max(odd_expected, noise, 0.1 * n_w):
            change = (n_w / expected - 1) * 100 if expected else 0.0
            if (
                n_w - expected > max(0.5 * expected, noise)
                and (self.W & self.human).sum() > 0.3 * n_w
            ):
                reason = self._why_nothing()
            elif self.active:
                reason = (
                    f"what goes around the rules in force ({base.window_rps:.1f} req/s, "
                    f"{change:+.0f} % on the baseline's {base.baseline_rps:.1f} req/s) is "
                    "within the baseline's range: nothing more to separate"
                )
            else:
                reason = (
                    f"the window's traffic ({base.window_rps:.1f} req/s, {change:+.0f} % on the "
                    f"baseline's {base.baseline_rps:.1f} req/s) holds nothing beyond the "
                    "baseline's range that real visitors would not explain: nothing to separate"
                )
                reason += self._flooded_baseline(odd)
            return replace(
                base,
                status="no-anomaly",
                reason=reason,
                findings=tuple(self._findings(base)),
                baseline_flooded=self.flooded,
            )
        candidates = self._candidates()
        chosen = self._select(candidates)
        findings = self._findings(base)
        if not chosen:
            return replace(
                base, status="no-anomaly", reason=self._why_nothing(), findings=tuple(findings)
            )
        suggestions = self._suggestions(candidates, chosen)
        recall, collateral = self._coverage(chosen)
        return replace(
            base,
            status="ok",
            suggestions=tuple(suggestions),
            findings=tuple(findings),
            recall=recall,
            collateral=collateral,
        )

    def _covered(self, until: float) -> float:
        """Seconds of baseline the log covers before ``until`` (a log younger than the
        baseline covers less)."""
        t = self.t
        first = int(t.t[self.B].min()) if self.B.any() else None
        return until - max(t.start, first - 1) if first is not None else 0.0

    def _flooded_baseline(self, odd: BoolArray) -> str:
        """A warning when the baseline itself looks like a flood (most of it from clients that
        behave like no visitor, mostly answered with errors): the window is then compared with
        the flood, not with normal traffic."""
        t = self.t
        odd_b = self.B & odd
        share = float(odd_b.sum()) / max(self.n_b, 1)
        errors = float((odd_b & (t.status >= 400)).sum()) / max(int(odd_b.sum()), 1)
        if share < 0.3 or errors < 0.5:
            return ""
        self.flooded = True
        older = (
            "the log holds nothing older"
            if self._log_younger()
            else "if the flood is older than the baseline, compare with a longer one "
            "(--baseline 2h or more: it is cut where the flood began)"
        )
        return (
            f" — but the baseline looks flooded too: {share * 100:.0f} % of it comes from "
            f"clients that behave like no visitor, {errors * 100:.0f} % of that answered with "
            f"errors; {older}"
        )

    def _log_younger(self) -> bool:
        """Whether the log begins inside the baseline (a longer one would add nothing)."""
        t = self.t
        return bool(self.B.any()) and float(t.t[self.B].min()) > t.start + 60

    def _too_little(self, n_b: int, covered_b: float) -> str:
        return (
            f"the baseline ({format_duration(self.baseline)} before the window) has {n_b} "
            f"requests over {format_duration(max(covered_b, 0))}: too little to tell what is "
            "normal (it needs 5 minutes and some traffic); try a longer --baseline"
        )

    def _onset(self) -> float | None:
        """When the odd traffic (clients that behave neither like real visitors nor like
        clients the site wants) rose to the window's level, if that was inside the baseline
        with normal traffic before it; else None."""
        t = self.t
        odd = ~(self.human | self.wanted)
        return flood_onset(t.t[(self.W | self.B) & odd], float(t.t[self.B].min()), t.split, t.end)

    def _already_refused(self) -> BoolArray:
        """Requests the rules in force refuse — whether they were logged before or after the
        rule came (the window goes on holding the flood that was answered before it) — and
        those the rate limit refused (429: its decisions depend on the timing nginx saw).
        Each rule's share of the window is kept for the findings."""
        t = self.t
        out = np.zeros(len(t), dtype=bool)
        st = self.state
        if st is None or not (st.blocks or st.filters or st.rate_limit.rate):
            return out
        for rule, mask in state_masks(st, self.cols).items():
            n = int((mask & t.window & ~out).sum())
            if n:
                self.active[rule] = n
            out |= mask
        if st.rate_limit.rate:
            limited = t.status == 429
            n = int((limited & t.window & ~out).sum())
            if n:
                self.active["rate limit"] = n
            out |= limited
        return out

    # -- 2. who the window's clients are ----------------------------------------------------

    def _judge_clients(self) -> None:
        t, cols = self.t, self.cols
        key = t.client.astype(np.int64) * (len(t.agents) + 1) + t.agent
        self.key = key
        asset = np.array([x.asset for x in cols.targets], dtype=bool)[t.target]
        self_ref = np.array([r.kind == "self" for r in cols.referers], dtype=bool)[t.referer]
        browser = np.array([a.kind == "browser" for a in cols.agents], dtype=bool)[t.agent]
        loads = (t.status < 400) & asset & self_ref & browser
        human_keys = np.unique(key[loads])
        self.human = np.isin(key, human_keys)
        self.claims = np.array([a.wanted for a in cols.agents], dtype=bool)[t.agent]
        """Requests whose user agent names a client the site wants (true or not)."""
        self.wanted = self.claims & self._verified()
        self.vouched = self.human | self.wanted
        """Requests of clients that show who they are: real browsers, wanted clients."""
        self.baseline_clients = np.unique(t.client[self.B])
        self.known_client = np.isin(t.client, self.baseline_clients)

    def _verified(self) -> BoolArray:
        """Requests of wanted clients that are who they say: crawlers and surveys only from
        networks (IPv4 /16, IPv6 /32) where the baseline saw the same one; the others (package
        managers, feed readers, monitors, git) as they are."""
        t, cols = self.t, self.cols
        checked = np.array([a.verified_by_network for a in cols.agents], dtype=bool)[t.agent]
        if self.addresses is None:
            self.addresses = Addresses.of(t.clients)
        a = self.addresses
        net = np.where(a.version == 4, a.value >> np.uint64(16), a.value >> np.uint64(32))
        net = net.astype(np.uint64) * np.uint64(8) + a.version.astype(np.uint64)
        names = {n: i for i, n in enumerate(sorted({x.name for x in cols.agents}))}
        name = np.array([names[x.name] for x in cols.agents], dtype=np.uint64)[t.agent]
        key = net[t.client] * np.uint64(len(names) + 1) + name
        seen = np.unique(key[self.B & checked])
        ok: BoolArray = ~checked | np.isin(key, seen)
        return ok

    # -- 3. candidates ----------------------------------------------------------------------

    def _score(self, rule: Rule, mask: BoolArray, explanation: str) -> _Scored:
        s = _Scored(rule, mask, explanation)
        s.stopped_w = int((mask & self.W).sum())
        s.stopped_b = int((mask & self.B).sum())
        s.unseen_b = int((mask & self.B & ~self.vouched).sum())
        s.excess = s.stopped_w - self.ratio * s.stopped_b
        s.human = int((mask & self.W & self.vouched).sum())
        return s

    def _cost(self, unseen_b: float, human: float) -> float:
        """The real visitors' window requests a rule (or a set) would stop, estimated high.

        Two parts that do not overlap: the window's requests of clients that show they are real
        visitors (they load the pages' assets) or wanted clients, counted as they are; and the
        real visitors the window cannot tell apart (cached assets, API and feed clients), whose
        share the baseline's hits *by clients of that kind* predict — an upper bound of it,
        since a baseline is a small sample."""
        b = unseen_b
        predicted = self.ratio * (b + 2 * math.sqrt(b) + (1 if b else 0))
        return human + predicted

    def _within(self, stopped_b: float, unseen_b: float, human: float) -> bool:
        """Whether a rule (or a set) keeps within the budget: its estimated cost in the window,
        and the share of the baseline it would have stopped (the ``collateral`` it shows)."""
        if stopped_b > self.budget * self.n_b:
            return False
        return self._cost(unseen_b, human) <= self.budget * self.normal_w

    def _eligible(self, s: _Scored) -> bool:
        if s.stopped_w == 0 or s.excess < max(0.005 * self.excess_total, 10):
            return False
        if s.excess < PRECISION_MIN * s.stopped_w:
            return False
        if s.human > HUMAN_SHARE_MAX * s.stopped_w:
            return False
        return self._within(s.stopped_b, s.unseen_b, s.human)

    def _candidates(self) -> list[_Scored]:
        out: list[_Scored] = []
        singles = self._single_conditions()
        scored_singles = []
        for cond, why in singles:
            s = self._score(Rule("filter", conditions=(cond,)), filter_mask(self.cols, [cond]), why)
            scored_singles.append(s)
        # Single conditions that stop mostly excess are candidates; those that stop some excess
        # with collateral are combined (AND) with conditions of other fields.
        useful = [s for s in scored_singles if s.excess > 0.01 * self.excess_total]
        out.extend(s for s in scored_singles if self._eligible(s))
        useful.sort(key=lambda s: -s.excess)
        by_field: dict[str, list[_Scored]] = {}
        for s in useful:
            by_field.setdefault(s.rule.conditions[0].field, []).append(s)
        tops = [s for group in by_field.values() for s in group[:14]]
        for i, a in enumerate(tops):
            for b in tops[i + 1 :]:
                fa, fb = a.rule.conditions[0].field, b.rule.conditions[0].field
                if fa == fb:
                    continue
                pair = _ordered((a.rule.conditions[0], b.rule.conditions[0]))
                if not valid_conditions(pair):
                    continue
                mask = a.mask & b.mask
                s = self._score(Rule("filter", conditions=pair), mask,
                                f"{a.explanation}, and {b.explanation}")  # fmt: skip
                if s.excess > 0.01 * self.excess_total:
                    out.append(s)
                    if self._eligible(s):
                        continue  # good as it is: a third condition would only narrow it
                    for c in tops:
                        fc = c.rule.conditions[0].field
                        if fc in (fa, fb):
                            continue
                        trio = _ordered((*pair, c.rule.conditions[0]))
                        if valid_conditions(trio):
                            out.append(self._score(
                                Rule("filter", conditions=trio), mask & c.mask,
                                f"{s.explanation}, and {c.explanation}",
                            ))  # fmt: skip
        out.extend(self._limit_candidates())
        return out

    def _single_conditions(self) -> list[tuple[Condition, str]]:
        """Conditions on one field worth trying: values far more common in the window."""
        t, cols = self.t, self.cols
        out: list[tuple[Condition, str]] = []
        floor = max(0.01 * self.excess_total, 10)

        def excess_by(column: np.ndarray[Any, Any], n: int) -> np.ndarray[Any, Any]:
            w = np.bincount(column[self.W], minlength=n)
            b = np.bincount(column[self.B], minlength=n)
            return np.asarray(w - self.ratio * b)

        # User agents, exact and by family.
        ex = excess_by(t.agent, len(t.agents))
        families: Counter[bytes] = Counter()
        for i in np.flatnonzero(ex > floor).tolist():
            a = cols.agents[i]
            if a.family:
                families[a.family] += 0
            try:
                cond = exact_condition("user_agent", a.text)
            except UsageError:
                continue
            out.append((cond, f"the user agent {_quote(a.text)}"))
        fam_of = [a.family for a in cols.agents]
        for fam in families:
            members = np.array([f == fam for f in fam_of], dtype=bool)
            pattern = fam.decode("latin-1")
            if valid_conditions([Condition("user_agent", pattern)]) and members.any():
                name = next(a.name for a in cols.agents if a.family == fam)
                out.append((Condition("user_agent", pattern), f"user agents of {name}"))
        # Referers: none, or one that is far more common.
        ex = excess_by(t.referer, len(t.referers))
        kinds: Counter[str] = Counter()
        for i in np.flatnonzero(ex > floor).tolist():
            r = cols.referers[i]
            if r.kind == "none":
                kinds["none"] += 1
                continue
            try:
                out.append((exact_condition("referer", r.text), f"the referer {_quote(r.text)}"))
            except UsageError:
                continue
        if kinds["none"] or any(r.kind == "none" for r in cols.referers):
            out.append((Condition("referer", "^$"), "no referer"))
        out.append((Condition("user_agent", values.BROWSER_UA), "a browser's user agent"))
        # Methods other than the usual ones.
        ex = excess_by(t.method, len(t.methods))
        for i in np.flatnonzero(ex > floor).tolist():
            m = t.methods[i].decode("latin-1")
            if m.isalpha() and m != "GET":
                out.append((Condition("method", m), f"the method {m}"))
        # Paths: exact ones far more common, and the shapes of paths the baseline never saw.
        out.extend(path_candidates(self, floor))
        return out

    def _limit_candidates(self) -> list[_Scored]:
        """A per-address limit above what every baseline client (and each wanted one) did."""
        t = self.t
        base_idx = np.flatnonzero(self.B)
        if not len(base_idx):
            return []
        # The most any baseline client sent in one minute (per address).
        minute = (t.t[base_idx] // 60).astype(np.int64)
        keyed = t.client[base_idx].astype(np.int64) * 1_000_000_000 + minute
        _u, counts = np.unique(keyed, return_counts=True)
        peak = int(counts.max()) if len(counts) else 0
        w_idx = np.flatnonzero(self.W)
        if not len(w_idx):
            return []
        wkeyed = t.client[w_idx].astype(np.int64) * 1_000_000_000 + (t.t[w_idx] // 60)
        _wu, wcounts = np.unique(wkeyed, return_counts=True)
        if not len(wcounts) or wcounts.max() <= 2 * peak + 10:
            return []  # no window client is much busier than the busiest baseline client
        per_minute = max(60, int(peak * 1.5) + 10)
        rate = f"{per_minute}r/m" if per_minute % 60 else f"{per_minute // 60}r/s"
        rule = Rule("limit", rate=rate, burst=max(10, peak // 2), key="ip")
        order = np.argsort(t.t, kind="stable")
        mask = limit_mask(rule, self.cols, order)
        why = (f"no baseline client sent more than {peak} requests in a minute; window clients "
               f"sent up to {int(wcounts.max())}")  # fmt: skip
        return [self._score(rule, mask, why)]

    def _block_candidate(self, stopped: BoolArray) -> _Scored | None:
        """Block the broadest clean networks holding the attack that the other rules miss.

        Before any filter (``stopped`` empty) the attack is every client the baseline never saw
        that does not behave like a real visitor.  After filters, only clients they caught are
        taken as attackers (their other requests slipped through), and every other window client
        keeps its network open: a network is blocked only for what is proven of it."""
        t = self.t
        odd = self.W & ~self.human & ~self.wanted & ~self.known_client
        if stopped.any():
            caught = np.zeros(len(t.clients), dtype=bool)
            caught[t.client[self.W & stopped]] = True
            suspect = odd & ~stopped & caught[t.client]
            others = self.W & ~caught[t.client]
        else:
            alike, akin = self._like_the_bulk(odd)
            suspect = odd & alike
            # A client unlike the bulk keeps its network open when it is busy (a scanner), or
            # when both its user agent's kind and its answers differ from every habit of the
            # bulk (a scanner's tool probing for 404s among a flood of browsers fetching pages);
            # a flood's address that sent one odd request is just not counted.
            busy = np.bincount(t.client[self.W], minlength=len(t.clients)) >= 8
            apart = odd & ~alike & (busy[t.client] | ~akin)
            others = self.W & (self.vouched | apart)
        if not suspect.any():
            return None
        if self.addresses is None:
            self.addresses = Addresses.of(t.clients)
        addrs = self.addresses
        counts = np.bincount(t.client[suspect], minlength=len(t.clients))
        ids = np.flatnonzero(counts & (addrs.version > 0)).tolist()
        pairs = [((int(addrs.version[i]), int(addrs.value[i])), int(counts[i])) for i in ids]
        known_ids = np.unique(np.concatenate([t.client[self.B], t.client[others]]))
        known_ids = known_ids[addrs.version[known_ids] > 0]
        known = list(zip(addrs.version[known_ids].tolist(), addrs.value[known_ids].tolist(),
                         strict=True))  # fmt: skip
        per_b = np.bincount(t.client[self.B])
        busiest = float(per_b.max()) * self.ratio if len(per_b) else 0.0
        host = max(10, int(3 * busiest))  # a single address: far busier than any baseline client
        prefixes = choose([p for p, _ in pairs], [n for _, n in pairs], known, host_requests=host)
        if not prefixes:
            return None
        prefixes.sort(key=lambda p: (-p.addresses, p.version, p.value))
        cidrs = tuple(p.cidr() for p in prefixes)
        rule = Rule("block", targets=cidrs)
        n_addr = sum(p.addresses for p in prefixes)
        why = (f"{len(cidrs)} network{'s' if len(cidrs) != 1 else ''} holding {n_addr} attacking "
               "addresses and no address that sent a baseline request or behaves like a real "
               "visitor")  # fmt: skip
        return self._score(rule, block_mask(addrs.within(prefixes), self.cols), why)

    def _like_the_bulk(self, odd: BoolArray) -> tuple[BoolArray, BoolArray]:
        """Requests of clients that behave like the bulk of the odd traffic: the same kind of
        user agent, the same status class and the same referer habit as the clients that send
        most of it.  A scanner passing through a network the flood also uses is not the
        flood, and keeps that network from being blocked.  Second: requests of clients whose
        habitual user agent is of a kind (browser, tool, bot…) the bulk's clients also use, or
        whose habitual status class is one of the bulk's."""
        t, cols = self.t, self.cols
        n = len(t.clients)
        kind_ids = {k: i for i, k in enumerate(sorted({a.kind for a in cols.agents}))}
        kind = np.array([kind_ids[a.kind] for a in cols.agents], dtype=np.int64)[t.agent]
        cls = np.clip(t.status // 100, 1, 5).astype(np.int64)
        ref = np.array([r.kind != "none" for r in cols.referers], dtype=np.int64)[t.referer]
        # Each client's habit: its most frequent (status class, referer, agent kind).
        habit = (cls * 2 + ref) * len(kind_ids) + kind
        n_habits = 12 * len(kind_ids)
        idx = np.flatnonzero(odd)
        counts = np.bincount(t.client[idx] * n_habits + habit[idx], minlength=n * n_habits)
        per_client = counts.reshape(n, n_habits).argmax(axis=1)
        weight = np.bincount(per_client[t.client[idx]], minlength=n_habits)
        bulk = weight >= 0.1 * max(len(idx), 1)
        out: BoolArray = odd & bulk[per_client[t.client]]
        k = len(kind_ids)
        bulk_kinds = np.zeros(k, dtype=bool)
        bulk_kinds[np.flatnonzero(bulk) % k] = True
        bulk_classes = np.zeros(6, dtype=bool)
        bulk_classes[np.flatnonzero(bulk) // (2 * k)] = True
        mine = per_client[t.client]
        akin: BoolArray = bulk_kinds[mine % k] | bulk_classes[mine // (2 * k)]
        return out, akin

    # -- 4. the recommended set -------------------------------------------------------------

    def _select(self, candidates: list[_Scored]) -> list[_Scored]:
        """Greedy by marginal gain: each round takes the rule that stops the most excess not
        yet stopped, within what is left of the budget.  Networks are blocked for what the
        filters leave of the attackers they caught — or, when no filter separates anything, for
        the attack as a whole."""
        stopped = np.zeros(len(self.t), dtype=bool)
        chosen: list[_Scored] = []
        pool = [c for c in candidates if self._eligible(c)]
        residual_tried = False
        first_block = self._block_candidate(stopped)
        if first_block is not None and self._eligible(first_block):
            pool.append(first_block)
        while len(chosen) < 8:
            best, best_gain = None, 0.0
            for c in pool:
                g = self._gain(c, stopped)
                if g <= best_gain:
                    continue
                union = stopped | c.mask
                if self._within(
                    float((union & self.B).sum()),
                    float((union & self.B & ~self.vouched).sum()),
                    float((union & self.W & self.vouched).sum()),
                ):
                    best, best_gain = c, g
            if best is None or best_gain < max(0.01 * self.excess_total, 10):
                if residual_tried or not chosen:
                    break
                residual_tried = True
                block = self._block_candidate(stopped)
                if block is not None and self._eligible(block):
                    pool.append(block)
                    continue
                break
            stopped |= best.mask
            best.extra["gain"] = best_gain
            chosen.append(best)
            pool.remove(best)
            if self._coverage(chosen)[0] > 0.995:
                break
        return chosen

    def _gain(self, c: _Scored, stopped: BoolArray) -> float:
        new = c.mask & ~stopped
        return float((new & self.W).sum()) - self.ratio * float((new & self.B).sum())

    def _coverage(self, chosen: list[_Scored]) -> tuple[float, float]:
        if not chosen:
            return 0.0, 0.0
        mask = np.logical_or.reduce([c.mask for c in chosen])
        w, b = int((mask & self.W).sum()), int((mask & self.B).sum())
        recall = (w - self.ratio * b) / self.excess_total if self.excess_total > 0 else 0.0
        return max(0.0, min(1.0, recall)), b / self.n_b if self.n_b else 0.0

    # -- output -----------------------------------------------------------------------------

    def _suggestions(
        self, candidates: list[_Scored], chosen: list[_Scored], limit: int = MAX_SUGGESTIONS
    ) -> list[Suggestion]:
        rest = sorted(
            (c for c in candidates if c not in chosen and c.excess > 0),
            key=lambda c: -(c.excess - 50 * c.stopped_b - 10 * c.human),
        )
        seen = {c.rule for c in chosen}
        ordered: list[tuple[_Scored, bool]] = [(c, True) for c in chosen]
        for c in rest:
            if c.rule not in seen and len(ordered) < limit:
                seen.add(c.rule)
                ordered.append((c, False))
        return [self._suggestion(i, c, rec) for i, (c, rec) in enumerate(ordered, 1)]

    def _suggestion(self, i: int, c: _Scored, recommended: bool) -> Suggestion:
        t = self.t
        hit_b = c.mask & self.B
        clients_b = len(np.unique(t.client[hit_b])) if hit_b.any() else 0
        reason = (
            f"suggested {time.strftime('%H:%M', time.gmtime(t.end))} UTC: stops "
            f"{max(0.0, min(1.0, c.excess / self.excess_total)) * 100:.0f} % of the excess"
        )
        return Suggestion(
            id=f"s{i}",
            kind=c.rule.kind,
            rule=c.rule,
            attack_share=max(0.0, min(1.0, c.excess / self.excess_total)),
            collateral=c.stopped_b / self.n_b,
            collateral_clients=clients_b,
            window_share=c.stopped_w / self.n_w,
            recommended=recommended,
            explanation=self._explain(c),
            samples=self._samples(c.mask & self.W),
            command=c.rule.command(self.service, _reason(reason), self.config_arg),
            reason=_reason(reason),
            human_share=c.human / c.stopped_w if c.stopped_w else 0.0,
            wanted_hits=self._wanted_hits(c.mask),
            stopped=c.stopped_w,
        )

    def _explain(self, c: _Scored) -> str:
        share = c.excess / self.excess_total * 100
        text = f"Stops {share:.0f} % of the excess: {c.explanation}."
        if c.stopped_b:
            text += f" It would have stopped {c.stopped_b} of {self.n_b} baseline requests."
        else:
            text += " No baseline request matches it."
        return text

    def _wanted_hits(self, mask: BoolArray) -> tuple[str, ...]:
        """The clients the site wants that a rule would stop (window and baseline), by name;
        a name claimed from a network it was never seen in says "unverified"."""
        t, cols = self.t, self.cols
        hit = mask & self.claims
        if not hit.any():
            return ()
        names: Counter[str] = Counter()
        for a, ok in zip(t.agent[hit].tolist(), self.wanted[hit].tolist(), strict=True):
            names[cols.agents[a].name + ("" if ok else " (unverified)")] += 1
        return tuple(
            f"{name}: {n} request{'s' if n != 1 else ''}" for name, n in names.most_common()
        )

    def _samples(self, mask: BoolArray, n: int = 3) -> tuple[str, ...]:
        t = self.t
        idx = np.flatnonzero(mask)
        if not len(idx):
            return ()
        picks = idx[np.linspace(0, len(idx) - 1, num=min(n, len(idx))).astype(int)]
        out = []
        for i in picks.tolist():
            stamp = time.strftime("%H:%M:%S", time.gmtime(int(t.t[i])))
            out.append(
                f"{t.clients[t.client[i]].decode('ascii', 'replace')} [{stamp}] "
                f'"{t.methods[t.method[i]].decode("latin-1")} '
                f'{t.targets[t.target[i]].decode("latin-1")}" {int(t.status[i])} '
                f'"{t.referers[t.referer[i]].decode("latin-1")}" '
                f'"{t.agents[t.agent[i]].decode("latin-1")}"'
            )
        return tuple(out)

    def _findings(self, base: Analysis) -> list[str]:
        t = self.t
        W = self.W
        excess = self.excess_total
        lines = []
        if self.active:
            total = self.n_w + base.already_stopped
            each = ", ".join(f"{rule} {n}" for rule, n in self.active.items())
            lines.append(
                f"The rules in force refuse {base.already_stopped} of the window's {total} "
                f"requests ({base.already_stopped / total * 100:.0f} %: {each}); set aside, what "
                "follows is the traffic that goes around them."
            )
        lines += [
            f"{self.n_w} requests in the window ({base.window_rps:.1f}/s) against "
            f"{base.baseline_rps:.1f}/s before: {excess / self.n_w * 100:.0f} % of them are "
            "beyond the baseline's rate."
        ]
        clients = np.unique(t.client[W & ~self.known_client])
        per = np.bincount(t.client[W & ~self.known_client])
        per = per[per > 0]
        if len(clients):
            sent = int((W & ~self.known_client).sum())
            lines.append(
                f"{_n(len(clients), 'address', 'addresses')} the baseline never saw sent "
                f"{_n(sent, 'request')}"
                + (
                    f", {float(np.median(per)):.0f} each (median), at most {int(per.max())}."
                    if len(clients) > 1
                    else "."
                )
            )
        status = t.status[W]
        share404 = float((status == 404).mean()) if len(status) else 0.0
        share404_b = float((t.status[self.B] == 404).mean()) if self.n_b else 0.0
        lines.append(f"404 answers: {share404 * 100:.0f} % of the window, "
                     f"{share404_b * 100:.0f} % of the baseline.")  # fmt: skip
        human_share = float((W & self.human).sum()) / self.n_w
        lines.append(f"{human_share * 100:.0f} % of window requests come from clients that load "
                     "pages' assets like a person's browser.")  # fmt: skip
        return lines

    def _why_nothing(self) -> str:
        W = self.W
        human = float((W & self.human).sum()) / self.n_w
        new_human = float((W & self.human & ~self.known_client).sum())
        if human > 0.3:
            return (
                f"the window has {self.excess_total:.0f} requests more than the baseline's rate, "
                f"but they come from clients that behave like real visitors ({human * 100:.0f} % "
                f"of window requests, {new_human:.0f} from new visitors, load pages' assets with "
                "this site as referer): a flash crowd, not an attack — no rule separates them"
            )
        return (
            f"the window has {self.excess_total:.0f} requests more than the baseline's rate, but "
            "no rule nginx can enforce stops them without stopping real visitors within the "
            f"budget ({self.budget * 100:g} % of baseline requests)"
        )


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _ordered(conditions: Iterable[Condition]) -> tuple[Condition, ...]:
    order = ("path", "user_agent", "method", "referer")
    return tuple(sorted(conditions, key=lambda c: order.index(c.field)))


def _quote(text: bytes, limit: int = 60) -> str:
    s = text.decode("utf-8", "backslashreplace")
    return repr(s if len(s) <= limit else s[: limit - 1] + "…")


def _reason(text: str) -> str:
    """A reason the validators accept (printable, at most 200 characters)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:200]


def flood_onset(
    times: np.ndarray[Any, Any], start: float, split: float, end: float
) -> float | None:
    """The start of the minute where a flood began inside the baseline ``[start, split)``, from
    the times of the suspicious requests: the window's level (its mean per minute, which a
    burst raises too) must be well above the early baseline's, and from the onset until the
    window nearly every minute stays above the early baseline's range, at a good part of the
    window's level — the flood ran on into the window, in bursts or not.  None when there is
    no such rise, or it came with the window, or fewer than three minutes of baseline came
    before it."""
    n = int((end - start) // 60)
    first_w = int((split - start) // 60) + 1  # the first whole minute of the window
    if n - first_w < 1 or first_w < 6:
        return None
    minute = ((times - start) // 60).astype(np.int64)
    counts = np.bincount(minute[(minute >= 0) & (minute < n)], minlength=n).astype(float)
    level = float(counts[first_w:].mean())
    early = float(np.median(counts[: max(3, min(5, (first_w - 1) // 3))]))  # its first minutes
    noise = early + 3 * math.sqrt(early) + 5
    if level < 2 * early + 3 * math.sqrt(early) + 5:
        return None
    above = counts[:first_w] > noise
    # The share of minutes above the range from minute k to the window, for every k.
    tail = np.cumsum(above[::-1])[::-1] / np.arange(first_w, 0, -1)
    for k in range(3, first_w):  # up to the minute the window begins in, if it began before
        if start + k * 60 >= split:
            break
        if above[k] and tail[k] >= 0.9 and counts[k:first_w].mean() >= 0.25 * level:
            return start + k * 60
    return None
