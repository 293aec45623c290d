"""The forms that turn a key press into an intent: block, filter, maintenance (and rate limit).

Opened from the service and fleet screens.  Each form asks what the CLI's flags ask (a block's
reason and TTL; a filter's reason and answer; maintenance's allow list and message, pre-filled
with what the servers hold), builds the edit with the core's own constructors
(:mod:`opsconsole.controls.edits`, which validate every value) and hands it to the app's
preview-and-confirm flow.  Invalid input is explained under the form, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ...controls import Edit, edits
from ...durations import parse_duration
from ...errors import UsageError
from ...text import shown

if TYPE_CHECKING:
    from ..app import OpsConsoleApp

Field = tuple[str, str, str]
"""(id, label, initial value) of one text input."""


class FormModal(ModalScreen[None]):
    """A titled column of inputs, an error line and Preview / Cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel", id="form.cancel"),
    ]

    def __init__(self, service: str, title: str, fields: list[Field]) -> None:
        super().__init__()
        self.service = service
        self.title_text = title
        self.fields = fields

    @property
    def console(self) -> OpsConsoleApp:
        return cast("OpsConsoleApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text, "bold"), id="form-title")
            for fid, label, value in self.fields:
                yield Label(label)
                yield Input(value, id=f"form-{fid}")
            yield from self.extra()
            yield Static(id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Preview", variant="primary", id="form-ok")
                yield Button("Cancel", id="form-cancel")

    def extra(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        if self.fields:
            self.query_one(f"#form-{self.fields[0][0]}", Input).focus()

    def value(self, fid: str) -> str:
        return self.query_one(f"#form-{fid}", Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-ok":
            self.submit()
        else:
            self.dismiss()

    def build(self) -> Edit:
        raise NotImplementedError

    def submit(self) -> None:
        try:
            edit = self.build()
        except UsageError as e:
            self.query_one("#form-error", Static).update(Text(str(e)))
            return
        self.dismiss()
        self.console.start_action(self.service, edit)

    def action_close(self) -> None:
        self.dismiss()


def _ttl(text: str) -> float | None:
    if not text or text.lower() in ("none", "never", "permanent"):
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(f"TTL: {e}") from None


class BlockForm(FormModal):
    """``b`` on an IP or subnet: block it, with a reason and an optional TTL."""

    def __init__(self, service: str, target: str) -> None:
        super().__init__(
            service,
            f"Block {shown(target)} on {service}",
            [
                ("reason", "reason (stored with the block and in the audit trail)", "flood"),
                ("ttl", "expires after (e.g. 30m, 1h, 2d; empty: never)", "1h"),
            ],
        )
        self.target = target

    def build(self) -> Edit:
        return edits.block([self.target], reason=self.value("reason"), ttl=_ttl(self.value("ttl")))


class FilterForm(FormModal):
    """``b`` on a path or user agent: refuse requests carrying exactly that value."""

    def __init__(self, service: str, field: str, value: str) -> None:
        what = "path" if field == "path" else "user agent"
        super().__init__(
            service,
            f"Refuse requests whose {what} is exactly {shown(value, 60)!r} on {service}",
            [("reason", "reason (stored with the filter and in the audit trail)", "flood")],
        )
        self.field_name = field
        self.match_value = value

    def extra(self) -> ComposeResult:
        yield Label("answer")
        yield Select(
            [("403 Forbidden", "403"), ("444: close the connection", "444")],
            value="403",
            allow_blank=False,
            id="form-action",
        )

    def build(self) -> Edit:
        action = str(self.query_one("#form-action", Select).value)
        return edits.add_filter(
            self.field_name, self.match_value, match="exact", action=action,
            reason=self.value("reason"),
        )  # fmt: skip


class MaintenanceForm(FormModal):
    """``m`` on a site that is not in maintenance: the allow list and the page's message."""

    def __init__(self, service: str, allow: tuple[str, ...], message: str) -> None:
        super().__init__(
            service,
            f"Maintenance on {service}: a 503 page for everyone but the allow list",
            [
                ("allow", "allow (addresses or networks, space-separated; empty: nobody)",
                 " ".join(allow)),
                ("message", "message on the page (empty: the default text)", message),
            ],
        )  # fmt: skip

    def build(self) -> Edit:
        allow = self.value("allow").split()
        return edits.maintenance(True, allow=allow or ["none"], message=self.value("message"))


def maintenance_form(app: OpsConsoleApp, service: str) -> Callable[[], None]:
    """What ``m`` does: the form when switching on (pre-filled from the servers), the preview of
    ``maintenance off`` when the site is in maintenance."""

    def go() -> None:
        if app.refuse_if_read_only():
            return
        event = app.controls.get(service)
        if event is not None and event.maintenance:
            app.start_action(service, edits.maintenance(False))
            return
        allow: tuple[str, ...] = ()
        message = ""
        if event is not None and event.report is not None:
            states = [s.state for s in event.report.servers.values() if s.state is not None]
            if states:
                allow, message = states[0].maintenance.allow, states[0].maintenance.message
        app.push_screen(MaintenanceForm(service, allow, message))

    return go
