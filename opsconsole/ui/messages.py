"""Typed messages from workers (which call the core) to the widgets that show the result.

Workers are thin: they await one core call and post one of these.  Messages about the same thing
implement ``can_replace`` so that a burst (a slow screen, 50 services polled at once) collapses to
the newest value instead of queueing stale ones.
"""

from __future__ import annotations

from textual.message import Message

from ..controls import ApplyReport, Timeline
from ..controls.progress import Progress
from ..session import ControlsEvent, Preview


class ControlsRead(Message):
    """The session's watch read a service's controls (or could not)."""

    def __init__(self, event: ControlsEvent) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # A newer read replaces an older one, but never one carrying news (a revert).
        return (
            isinstance(message, ControlsRead)
            and message.event.service == self.event.service
            and not message.event.message
        )


class CoreFailed(Message):
    """A worker's core call raised; ``text`` is what the operator reads (never a traceback)."""

    def __init__(self, job: str, text: str) -> None:
        super().__init__()
        self.job = job
        self.text = text


class PreviewReady(Message):
    """The dry run of an intent: the rendered diff on every server."""

    def __init__(self, preview: Preview) -> None:
        super().__init__()
        self.preview = preview


class ActionProgress(Message):
    """One server reached a stage of an action (typed, from the session)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, ActionProgress) and message.progress.server == self.progress.server
        )


class ActionDone(Message):
    """An apply, confirm or rollback finished (per-server results inside, failures included)."""

    def __init__(self, report: ApplyReport) -> None:
        super().__init__()
        self.report = report


class TimelineRead(Message):
    """The servers' audit trails, merged with the local one (errors name unread servers)."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline
