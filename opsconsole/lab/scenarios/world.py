"""One run of a scenario: its seed, time frame, sites and address space, and the request maker.

Built by :func:`opsconsole.lab.scenarios.generate` and handed to every traffic part (the visitor
and attack modules).  Standard library only.  :meth:`World.request` is the one place a
:class:`~.core.LabeledRequest` is made, so every label's status is the site's own answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .core import LabeledRequest, Timeline, rng_for
from .nets import Internet
from .sites import Site


@dataclass
class World:
    seed: int
    time: Timeline
    services: Sequence[str]
    sites: Mapping[str, Site]
    net: Internet

    def rng(self, *parts: object) -> random.Random:
        return rng_for(self.seed, *parts)

    @property
    def epoch(self) -> float:
        """The date the user agents are current for."""
        return self.time.start

    def request(
        self,
        t: float,
        site: Site,
        ip: str,
        method: str,
        target: str,
        ua: str,
        referer: str,
        actor: str,
        *,
        attack: bool = False,
        revalidate: bool = False,
    ) -> LabeledRequest:
        status, size = site.answer(method, target, revalidate=revalidate, msie="MSIE " in ua)
        if status == 400:
            # nginx rejects the request line before reading headers: the log has "-" for both.
            ua = referer = ""
        return LabeledRequest(
            t, site.name, ip, method, target, ua, referer, status, size, attack, actor
        )
