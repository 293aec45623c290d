"""Traffic for the lab: :func:`send` for tests, and the engine of the background generator.

:func:`send` is called by tests that want one precise request in a log.  :class:`Generator` is run
by the generator process (:mod:`opsconsole.lab.trafficd`): real browsing on every site and, after
``flood_after`` seconds, a flood, both planned by :mod:`opsconsole.lab.population`.  It is bounded:
never more than a fixed number of requests in flight (it drops rather than queues).  Every request
goes to loopback; the client address travels in ``X-Forwarded-For``, which only the lab's nginx
trusts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import httpx

from .population import Browsing, Flood, PlannedRequest

DEFAULT_USER_AGENT = "opsconsole-lab-test/1.0"
LEGIT_RPS = 3.0
"""Default real-visitor requests per second, per site."""
FLOOD_RPS = 100.0
"""Default flood requests per second, all sites together, once ramped up.  httpx costs about
3 ms of CPU per request: 100 req/s keeps the generator near a third of one core."""
FLOOD_RAMP = 10.0
"""Seconds over which the flood grows from nothing to its full rate."""
MAX_IN_FLIGHT = 96
"""Requests waiting for an answer at most; beyond that new ones are dropped (and counted)."""
CONNECTIONS = 16
"""Keep-alive connections to the sites (a larger httpx pool costs CPU for nothing on loopback)."""
MAX_DURATION = 4 * 3600.0
SILENCE_LIMIT = 60.0
"""Seconds without any HTTP answer from any site after which the generator gives up (the lab's
nginx processes are gone even though its state file is not)."""


def _check_loopback(url: httpx.URL) -> None:
    host = url.host
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"lab traffic only goes to loopback addresses, not to {url}")


def send(
    url: str,
    n: int = 1,
    *,
    client_ip: str = "198.51.100.1",
    path: str = "/",
    user_agent: str = DEFAULT_USER_AGENT,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> list[int]:
    """Send ``n`` requests for ``path`` to the site at ``url`` (loopback only) as ``client_ip``.

    Returns the status codes.  ``path`` replaces the path (and query) of ``url``.  A connection
    that nginx closes without an answer (``return 444``) counts as status 444.
    """
    target = httpx.URL(url).join(path)
    _check_loopback(target)
    ipaddress.ip_address(client_ip)  # ValueError for anything that is not one address
    h = {"X-Forwarded-For": client_ip, "User-Agent": user_agent, **(headers or {})}
    codes = []
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(n):
            try:
                codes.append(client.request(method, target, headers=h).status_code)
            except httpx.RemoteProtocolError:
                codes.append(444)
    return codes


class Generator:
    """Paces planned requests onto the sites and keeps a tally of what came back."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        targets: Mapping[str, Sequence[str]],
        browsing: Browsing,
        flood: Flood,
        *,
        legit_rps: float,
        flood_rps: float,
        flood_after: float | None,
    ) -> None:
        self.client = client
        self.targets = {s: list(urls) for s, urls in targets.items()}
        self.browsing = browsing
        self.flood = flood
        self.legit_rps = legit_rps
        self.flood_rps = flood_rps
        self.flood_after = flood_after
        self.tally: Counter[str] = Counter()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._last_modified: dict[str, str] = {}
        self._turn = 0
        self._legit_turn = 0
        self._last_answer = time.monotonic()
        self._unanswered = 0

    def flood_rate(self, elapsed: float) -> float:
        if self.flood_after is None or elapsed < self.flood_after:
            return 0.0
        return self.flood_rps * min(1.0, (elapsed - self.flood_after) / FLOOD_RAMP)

    def launch(self, planned: PlannedRequest) -> None:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self.tally["dropped"] += 1
            return
        task = asyncio.create_task(self._send(planned))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, planned: PlannedRequest) -> None:
        urls = self.targets[planned.service]
        self._turn += 1
        url = f"{urls[self._turn % len(urls)].rstrip('/')}{planned.path}"
        headers = {"X-Forwarded-For": planned.client_ip, "User-Agent": planned.user_agent}
        if planned.referer:
            headers["Referer"] = planned.referer
        if planned.conditional and url in self._last_modified:
            headers["If-Modified-Since"] = self._last_modified[url]
        kind = "legit" if planned.legit else "flood"
        try:
            response = await self.client.request(planned.method, url, headers=headers)
        except httpx.HTTPError:
            self.tally[f"{kind} error"] += 1
            self._unanswered += 1
            return
        self.tally[f"{kind} {response.status_code}"] += 1
        self._last_answer = time.monotonic()
        self._unanswered = 0
        if planned.legit and "last-modified" in response.headers:
            self._last_modified[url] = response.headers["last-modified"]

    async def run(
        self,
        *,
        keep_going: Callable[[float], bool],
        stop: asyncio.Event,
        max_duration: float,
        report: Callable[[str], None],
    ) -> None:
        """Send until ``stop`` is set, ``keep_going(elapsed)`` turns false or time runs out.

        Rates are kept by accumulating fractional requests every 50 ms; what is asked, by whom,
        depends only on the seed, not on how fast the sites answer.
        """
        start = last = self._last_answer = time.monotonic()
        legit_due = flood_due = 0.0
        next_check, next_report = start + 1.0, start + 10.0
        services = list(self.targets)
        reason = "stopped"
        while not stop.is_set():
            now = time.monotonic()
            elapsed = now - start
            if elapsed > max_duration:
                reason = "max duration reached"
                break
            if self._unanswered and now - self._last_answer > SILENCE_LIMIT:
                reason = f"no site answered for {SILENCE_LIMIT:g}s"
                break
            if now >= next_check:
                next_check = now + 1.0
                if not keep_going(elapsed):
                    reason = "lab stopped"
                    break
            if now >= next_report:
                next_report = now + 10.0
                report(self.summary())
            legit_due += self.legit_rps * len(services) * (now - last)
            flood_due += self.flood_rate(elapsed) * (now - last)
            last = now
            while legit_due >= 1.0:
                legit_due -= 1.0
                self._legit_turn += 1
                self.launch(self.browsing.next(services[self._legit_turn % len(services)]))
            while flood_due >= 1.0:
                flood_due -= 1.0
                self.launch(self.flood.next())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        report(f"{reason}; {self.summary()}")

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.tally.items())) or "nothing sent yet"
