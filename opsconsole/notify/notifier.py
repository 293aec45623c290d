"""The notifier: posts each intent's message to every configured webhook, in the background.

The session layer owns one :class:`Notifier` (``Session.notifier``) and tells it of every
intent's report (:meth:`Notifier.changed`, from ``Session.execute`` and ``expire_due``); whoever
reads a service's controls first after its servers reverted an unconfirmed change by themselves
hands it over (:meth:`Notifier.reverted`, from ``Session.controls``); the recovery stages call
:meth:`Notifier.stage_changed`.  Each call
returns at once: delivery runs in tasks of its own, so a webhook that is slow, down or refusing
never delays or fails a change.  A delivery is tried ``attempts`` times with exponential backoff
(1 s, 2 s, 4 s…); one that fails for good is kept as the webhook's last error
(:meth:`Notifier.errors`, for the console's server strip) and written to the local state file
(:mod:`.failures`, for ``opsconsole check``).  :meth:`Notifier.aclose` waits for what is pending,
for a bounded time (the CLI: ``EXIT_WAIT`` at exit), and returns what failed.

A webhook's URL is a secret: only its shown form (:func:`opsconsole.config.shown_url`) appears
in errors, logs and the state file.  Never imports a front end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Config, shown_url
from ..controls.audit import default_trail, state_diff
from ..controls.report import ApplyReport
from ..controls.state import ControlState, utc_text
from . import delivery, message
from .failures import DeliveryFailure, claim, record_failure, record_success, state_path
from .message import Kind, Message

log = logging.getLogger(__name__)

ATTEMPTS = 4
"""Tries per message and webhook."""
BACKOFF = 1.0
"""Seconds before the second try; doubled before each next one (1, 2, 4)."""
TIMEOUT = 5.0
"""Seconds one try may take."""
EXIT_WAIT = 5.0
"""Seconds a one-shot command waits at exit for deliveries still pending."""
SENT_KEPT = 100
"""Messages kept in :attr:`Notifier.sent`."""
LOOK_BACK = 1 << 20
"""Bytes of the local trail searched for the change a confirm or rollback settles."""
PROBE_WAIT = 3.0
"""Seconds a message waits for the site's answer after a rollback or revert (then goes without)."""

SiteProbe = Callable[[str], Awaitable[Mapping[str, Any] | None]]
"""The site's answer now for a service (None: it has no URL)."""
Listener = Callable[[], None]


@dataclass(frozen=True)
class Webhook:
    url: str
    """The secret: never shown."""
    name: str
    """How it is shown: ``https://hooks.slack.com/…`` (with its ``notify.webhooks[i]`` key
    when two would read the same)."""


def webhooks_of(urls: Sequence[str]) -> tuple[Webhook, ...]:
    shown = [shown_url(u) for u in urls]
    return tuple(
        Webhook(u, s if shown.count(s) == 1 else f"{s} (notify.webhooks[{i}])")
        for i, (u, s) in enumerate(zip(urls, shown, strict=True))
    )


class _Delivery:
    """One message on its way to one webhook (what a flush reports if it is still going)."""

    def __init__(self, webhook: Webhook) -> None:
        self.webhook = webhook
        self.what = "a message"
        """The message's short name, once it is built."""
        self.attempts = 0
        self.error = ""
        self.done = False


class Notifier:
    """Posts messages to webhooks in the background; knows the last error of each."""

    def __init__(
        self,
        webhooks: Sequence[str],
        *,
        operator: str,
        audit_trail: Path | None = None,
        site_probe: SiteProbe | None = None,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        timeout: float = TIMEOUT,
    ) -> None:
        """``audit_trail``: the local trail, whose events say what a change did (their diff)
        and beside which the state file of failures is kept."""
        self.webhooks = webhooks_of(webhooks)
        self.operator = operator
        self.audit_trail = audit_trail or default_trail()
        self.state_file = state_path(self.audit_trail)
        self.site_probe = site_probe
        self.attempts, self.backoff, self.timeout = max(1, attempts), backoff, timeout
        self._client: delivery.Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: set[_Delivery] = set()
        self._errors: dict[str, DeliveryFailure] = {}
        self._listeners: list[Listener] = []
        self.sent: deque[Message] = deque(maxlen=SENT_KEPT)
        """The last messages handed to the webhooks, in order (what was announced)."""

    @classmethod
    def for_config(cls, config: Config, *, audit_trail: Path | None = None) -> Notifier:
        """The notifier of a config's ``[notify]`` webhooks (none: it posts nothing)."""
        from ..controls.apply import probe_site

        async def answer(service: str) -> Mapping[str, Any] | None:
            svc = config.services.get(service)
            return await probe_site(config, svc.url) if svc is not None and svc.url else None

        return cls(
            config.notify.webhooks,
            operator=config.console.operator,
            audit_trail=audit_trail,
            site_probe=answer,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.webhooks)

    # -- what the front ends show ------------------------------------------------------------

    def errors(self) -> dict[str, DeliveryFailure]:
        """Per webhook (shown name), its last failed delivery, until one succeeds again: the
        console's server strip shows these."""
        return dict(self._errors)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` when :meth:`errors` changes (from the event loop)."""
        self._listeners.append(listener)

    # -- what is posted ----------------------------------------------------------------------

    def mark(self) -> int:
        """Where the local audit trail ends now: :meth:`changed` reads the events after it."""
        try:
            return self.audit_trail.stat().st_size
        except OSError:
            return 0

    def changed(self, report: ApplyReport, kind: Kind, *, mark: int | None = None) -> None:
        """One intent's report (every server's result): posted once, unless nothing changed.
        ``mark`` (:meth:`mark` before the intent): its audit events say what it changed."""
        if not self.enabled or not message.worth_posting(report):
            return
        service = report.service
        after = self._events(mark) if mark is not None else []
        diff = next(
            (e["diff"] for e in after if e.get("service") == service and e.get("diff")), None
        )
        settled = None
        if kind in (Kind.CONFIRM, Kind.ROLLBACK):
            settled = self._made(service, {r.before_version for r in report.results.values()})
        probe_after = kind is Kind.ROLLBACK and report.probe is None

        async def build() -> Message | None:
            probe = await self._probe(service) if probe_after else None
            done = report if probe is None else replace(report, probe=dict(probe))
            return message.from_report(
                done, kind, operator=self.operator, diff=diff, settled=settled
            )

        self._post(build)

    def reverted(
        self,
        service: str,
        states: Mapping[str, tuple[ControlState, ControlState]],
        *,
        when: str | None = None,
    ) -> None:
        """Servers of ``service`` reverted an unconfirmed change by themselves: ``states`` maps
        each to its (pending, reverted-to) state; ``when``: the server's time of the revert.
        Posted with the site's answer.  The caller makes sure it is announced once (the
        session takes each revert from its server, where nobody else can take it again)."""
        if not self.enabled or not states:
            return
        pending, back = next(iter(states.values()))
        diff = state_diff(back, pending)
        versions = {n: (p.version, b.version) for n, (p, b) in states.items()}
        at = None
        if when:
            with contextlib.suppress(ValueError):
                at = datetime.fromisoformat(when.replace("Z", "+00:00"))

        async def build() -> Message | None:
            probe = await self._probe(service)
            return message.reverted(
                service,
                versions,
                changed_by=pending.updated_by or "?",
                diff=diff,
                probe=probe,
                when=at,
            )

        self._post(build)

    def stage_changed(
        self,
        service: str,
        old: object,
        new: object,
        detail: str = "",
        *,
        key: str | None = None,
        claim: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """A service's recovery stage went from ``old`` (None: it had none) to ``new`` (an
        enum is shown by its value); ``detail`` says why, in a few words.  Nothing is posted
        when ``old == new``.  ``key`` (e.g. the service, stage and time it began): when several
        consoles or commands of this machine see the same change, the first to claim its key
        posts it, the others not; ``claim`` then asks whether this one is also the first of
        every machine (on the servers).  Call it from the event loop; it returns at once."""
        if not self.enabled or old == new:
            return
        if key is not None and not self._claim(f"stage {service} {key}"):
            return
        msg = message.stage(service, old, new, detail, operator=self.operator)

        async def build() -> Message | None:
            if claim is not None:
                try:
                    first = await claim()
                except Exception:  # better twice than never
                    first = True
                if not first:
                    return None
            return msg

        self._post(build)

    # -- delivery ----------------------------------------------------------------------------

    def _claim(self, key: str) -> bool:
        try:
            return claim(self.state_file, key)
        except OSError as e:  # better twice than never
            log.info("cannot claim %r in %s: %s", key, self.state_file, e.strerror or e)
            return True

    def _events(self, start: int) -> list[dict[str, Any]]:
        """The local trail's events from byte ``start`` on: those of the intent just carried
        out, when ``start`` is its :meth:`mark` (each server's event carries its diff)."""
        try:
            with self.audit_trail.open("rb") as f:
                f.seek(start)
                data = f.read()
        except OSError:
            return []
        out = []
        for line in data.decode("utf-8", "replace").splitlines():
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                if isinstance(ev, dict):
                    out.append(ev)
        return out

    def _made(self, service: str, versions: set[int | None]) -> dict[str, Any] | None:
        """The diff of the change that made one of ``versions`` of ``service`` — what a confirm
        keeps or a rollback undoes — when this machine's trail holds it (its last ``LOOK_BACK``
        bytes)."""
        start = max(0, self.mark() - LOOK_BACK)
        for ev in reversed(self._events(start)):
            made = ev.get("after_version")
            if ev.get("service") == service and made in versions and ev.get("result") == "ok":
                diff = ev.get("diff")
                if isinstance(diff, dict) and diff and made != ev.get("before_version"):
                    return diff
        return None

    async def _probe(self, service: str) -> Mapping[str, Any] | None:
        if self.site_probe is None:
            return None
        try:
            return await asyncio.wait_for(self.site_probe(service), PROBE_WAIT)
        except Exception:  # the message goes without the site's answer
            return None

    def _post(self, build: Callable[[], Awaitable[Message | None]]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(build), name="notify")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, build: Callable[[], Awaitable[Message | None]]) -> None:
        jobs = [_Delivery(w) for w in self.webhooks]
        self._pending.update(jobs)
        try:
            msg = await build()
            if msg is None:  # another console announces it
                return
            self.sent.append(msg)
            if self._client is None:
                self._client = delivery.make_client([w.url for w in self.webhooks], self.timeout)
            await asyncio.gather(*(self._deliver(job, msg) for job in jobs))
        finally:
            self._pending.difference_update(jobs)

    async def _deliver(self, job: _Delivery, msg: Message) -> None:
        assert self._client is not None
        webhook, job.what = job.webhook, msg.what
        while True:
            job.attempts += 1
            attempt = await delivery.post(self._client, webhook.url, msg.body, self.timeout)
            if attempt is None:
                job.done = True
                self._delivered(webhook)
                return
            job.error = attempt.error
            if not attempt.retry or job.attempts >= self.attempts:
                job.done = True
                self._failed(job)
                return
            await asyncio.sleep(self.backoff * 2 ** (job.attempts - 1))

    def _delivered(self, webhook: Webhook) -> None:
        with contextlib.suppress(OSError):
            record_success(self.state_file, webhook.name)
        if self._errors.pop(webhook.name, None) is not None:
            self._tell()

    def _failed(self, job: _Delivery, *, gave_up: str = "") -> None:
        error = "; ".join(x for x in (job.error, gave_up) if x)
        failure = DeliveryFailure(
            webhook=job.webhook.name,
            error=delivery.scrub(error, job.webhook.url),
            what=job.what,
            attempts=job.attempts,
            time=utc_text(datetime.now(UTC)),
        )
        log.info("%s", failure.line())  # the front ends show it; a log line would repeat it
        try:
            record_failure(self.state_file, failure)
        except OSError as e:  # the failure is still shown; only `check` will not know
            log.warning("cannot write %s: %s", self.state_file, e.strerror or e)
        self._errors[job.webhook.name] = failure
        self._tell()

    def _tell(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("notify listener failed")

    async def flush(self, timeout: float = EXIT_WAIT) -> list[DeliveryFailure]:
        """Wait at most ``timeout`` seconds for the deliveries under way; those still going
        then are given up (and recorded as failed).  Returns each webhook's last error."""
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            stuck = [job for job in self._pending if not job.done]
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
            for job in stuck:
                self._failed(job, gave_up=f"given up at exit after {timeout:g} s")
        return list(self._errors.values())

    async def aclose(self, timeout: float = EXIT_WAIT) -> list[DeliveryFailure]:
        """:meth:`flush`, then close the HTTP client."""
        failures = await self.flush(timeout)
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.aclose()
        return failures
