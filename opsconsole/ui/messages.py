"""Typed messages from workers (which call the core) to the widgets that show the result.

Workers are thin: they await one core call and post one of these.  Messages about the same thing
implement ``can_replace`` so that a burst (a slow screen, 50 services polled at once) collapses to
the newest value instead of queueing stale ones.
"""

from __future__ import annotations

from textual.message import Message

from ..controls import ApplyReport, ControlsReport, Timeline


class ControlsRead(Message):
    """The control state of a service was read from its servers (or could not be)."""

    def __init__(self, service: str, report: ControlsReport | None, error: str | None) -> None:
        super().__init__()
        self.service = service
        self.report = report
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ControlsRead) and message.service == self.service


class CoreFailed(Message):
    """A worker's core call raised; ``text`` is what the operator reads (never a traceback)."""

    def __init__(self, job: str, text: str) -> None:
        super().__init__()
        self.job = job
        self.text = text


class PreviewReady(Message):
    """The dry run of an edit: the rendered diff on every server."""

    def __init__(self, report: ApplyReport) -> None:
        super().__init__()
        self.report = report


class ActionProgress(Message):
    """One server reached a stage of an action ("connected", "applying")."""

    def __init__(self, server: str, stage: str) -> None:
        super().__init__()
        self.server = server
        self.stage = stage

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ActionProgress) and message.server == self.server


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
