"""Sending labelled requests to the lab's sites over HTTP, byte for byte, from a pool of threads.

Used by the scenario replay (:mod:`opsconsole.lab.replay`) in the replay process.  Each request
goes to 127.0.0.1 only, on the port of its site on the server it was given to, with the target
exactly as labelled (``http.client``'s ``putrequest`` sends it as is; httpx would normalise it),
the site's public ``Host`` and :func:`~opsconsole.lab.scenarios.replay_headers`.  A fixed number
of worker threads keep their own keep-alive connections, so a slow answer never stops the
schedule; when every worker is busy and the queue is full, requests are dropped and counted
rather than queued without end.  A connection nginx closes without an answer (``return 444``)
counts as 444.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .scenarios import LabeledRequest, replay_headers
from .served import Served, host_header

WORKERS = 8
QUEUE = 4096
"""Requests waiting for a worker at most; beyond that new ones are dropped (and counted)."""
TIMEOUT = 10.0
NO_ANSWER = "error"
"""The outcome of a request that got no HTTP answer at all (refused, reset, timed out)."""


@dataclass(frozen=True)
class Job:
    req: LabeledRequest
    server: str
    due: float
    """Wall-clock time the request is scheduled for."""
    part: str


Outcome = int | str
"""An HTTP status, or :data:`NO_ANSWER`."""


class Sender:
    """Workers sending :class:`Job` s; ``done(job, outcome, sent_at)`` is called for each one
    from the worker's thread."""

    def __init__(
        self,
        ports: Mapping[tuple[str, str], int],
        served: Served,
        done: Callable[[Job, Outcome, float], None],
        *,
        workers: int = WORKERS,
    ) -> None:
        self.ports = dict(ports)
        self.served = served
        self.done = done
        self.hosts = {service: host_header(service) for service, _ in self.ports}
        self.queue: queue.Queue[Job | None] = queue.Queue(QUEUE)
        self.lock = threading.Lock()
        self.tally: Counter[str] = Counter()
        self.dropped = 0
        self.last_answer = time.monotonic()
        self.unanswered = 0
        self.started = time.time()
        """Requests due before this (while the past was being written) go at once: their delay
        is not the sender falling behind."""
        self._lag = 0.0
        self._threads = [
            threading.Thread(target=self._work, name=f"replay-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False (and counted as dropped) when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            with self.lock:
                self.dropped += 1
            return False
        return True

    def pending(self) -> int:
        return self.queue.qsize()

    def take_lag(self) -> float:
        """The largest delay (s) between a request's schedule and its sending since last asked."""
        with self.lock:
            lag, self._lag = self._lag, 0.0
        return lag

    def close(self, timeout: float = 5.0) -> None:
        """Let the workers finish what they are sending, drop what waits, and end them."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        conns: dict[int, http.client.HTTPConnection] = {}
        while True:
            job = self.queue.get()
            if job is None:
                break
            sent_at = time.time()
            outcome = self._send(conns, job)
            with self.lock:
                self._lag = max(self._lag, sent_at - max(job.due, self.started))
                self.tally[str(outcome)] += 1
                if outcome == NO_ANSWER:
                    self.unanswered += 1
                else:
                    self.unanswered = 0
                    self.last_answer = time.monotonic()
            self.done(job, outcome, sent_at)
        for conn in conns.values():
            conn.close()

    def _send(self, conns: dict[int, http.client.HTTPConnection], job: Job) -> Outcome:
        req = job.req
        port = self.ports[req.service, job.server]
        conn = conns.get(port)
        if conn is not None and _dropped(conn):
            conn.close()  # closed by nginx while idle (keep-alive timeout, a reload)
            conn = None
        if conn is None:
            conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        last_modified = self.served.last_modified(req, job.server) if req.status == 304 else None
        try:
            conn.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.hosts[req.service])
            for key, value in replay_headers(req, last_modified).items():
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
            response.read()
        except http.client.RemoteDisconnected:
            conns.pop(port).close()
            return 444  # nginx read the request and closed the connection: `return 444`
        except (OSError, http.client.HTTPException, UnicodeError):
            conns.pop(port).close()
            return NO_ANSWER
        if response.will_close:
            conns.pop(port).close()
        return response.status


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle keep-alive connection has been closed by the other end (it reads as
    ready: end of file), so the next request goes on a new connection instead of failing."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
