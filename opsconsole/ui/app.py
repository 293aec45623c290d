"""The Textual application: screens over a :class:`~.source.ConsoleSource`, themes, workers.

Built by ``opsconsole`` (no command) and ``opsconsole demo`` (:mod:`opsconsole.cli.tui`) with a
:class:`~opsconsole.session.LiveSession`, and by the snapshot tests with a fake.  The app owns
what every screen shares: the source, the theme (and saving the operator's choice), the last
control state of each service (the session's watch tells the app, which posts it as a message;
news such as a server reverting an unconfirmed change becomes a toast), quitting (asking first
only while a change awaits confirmation), and the one place worker failures are handled
(:meth:`OpsConsoleApp.on_worker_state_changed`): a core call that raises becomes a message on
screen, never a traceback and never the end of the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.theme import Theme
from textual.worker import Worker, WorkerState

from ..errors import OpsConsoleError, UsageError
from ..session import ControlsEvent, Intent, Settle
from ..transport import TransportError
from .commands import ActionsProvider
from .keymap import load_keymap
from .messages import ControlsRead, CoreFailed
from .palette import Palette
from .persist import save_theme
from .source import ConsoleSource
from .themes import shipped_themes, user_themes

if TYPE_CHECKING:
    from ..detect.analysis import Suggestion

log = logging.getLogger(__name__)

DEFAULT_THEME = "opsconsole-dark"


def describe_error(error: BaseException | None) -> str:
    """What the operator reads about a failed core call: our errors speak for themselves."""
    if error is None:
        return "unknown error"
    if isinstance(error, OpsConsoleError | TransportError):
        return str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"internal error ({type(error).__name__}: {error}); see the log"


class OpsConsoleApp(App[int]):
    """The incident console."""

    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="app.interrupt"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("A", "audit", "Audit", id="app.audit"),
        Binding("T", "change_theme", "Theme", show=False, id="app.theme"),
    ]

    def __init__(
        self,
        source: ConsoleSource,
        *,
        config_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        subtitle: str | Callable[[], str] = "",
        watch_controls: bool = True,
    ) -> None:
        """``subtitle``: a note on every screen's header, or a function giving it (the demo's
        "flood since 19:17:05")."""
        super().__init__()
        self.source = source
        self.config_path = config_path
        self.clock = clock
        self.watch_controls = watch_controls
        self.controls: dict[str, ControlsEvent] = {}
        self.palette = Palette.plain()
        self._targets: dict[Worker[Any], MessagePump] = {}
        self._saved_theme = source.config.console.theme
        self._theme_errors: list[str] = []
        self._note = subtitle
        for theme in shipped_themes():
            self.register_theme(theme)
        for item in user_themes():
            if isinstance(item, Theme):
                self.register_theme(item)
            else:
                self._theme_errors.append(str(item))
        wanted = source.config.console.theme
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme = DEFAULT_THEME
            self._theme_errors.append(
                f"{source.config.path}: console.theme: no theme {wanted!r}; using {DEFAULT_THEME}"
            )
        if config_path is not None:
            try:
                self.set_keymap(load_keymap(config_path))
            except OpsConsoleError as e:
                self._theme_errors.append(str(e))

    # -- theme ------------------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Built-in Textual themes lack opsconsole's variables: derive them from the theme."""
        t = self.current_theme
        return {
            "status-ok": t.success or t.primary,
            "status-warn": t.warning or t.primary,
            "status-down": t.error or t.primary,
            "status-maintenance": t.accent or t.primary,
            "status-blocked": t.warning or t.primary,
        }

    def _theme_changed(self, theme: Theme) -> None:
        self.palette = Palette.from_variables(self.theme_variables)
        if theme.name == self._saved_theme or self.config_path is None:
            return
        try:
            backup = save_theme(self.config_path, theme.name)
        except OpsConsoleError as e:
            self.notify(str(e), title="Theme not saved", severity="error", timeout=10, markup=False)
            return
        self._saved_theme = theme.name
        self.notify(
            f"{theme.name} saved in {self.config_path} (previous file: {backup.name})",
            title="Theme",
            markup=False,
        )

    # -- life cycle -------------------------------------------------------------------------

    async def on_mount(self) -> None:
        from .screens.fleet import FleetScreen

        self.set_class(self.source.read_only, "-read-only")
        self.palette = Palette.from_variables(self.theme_variables)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        for text in self._theme_errors:
            self.notify(text, title="Config", severity="warning", timeout=10, markup=False)
        self.source.on_controls(self._controls_heard)
        await self.source.start(watch_controls=self.watch_controls)
        await self.push_screen(FleetScreen())

    async def action_quit(self) -> None:
        """``q`` and Ctrl-C: quit at once, unless a change awaits confirmation (quitting would
        leave it to revert by itself): then ask first."""
        from .screens.quit import QuitModal

        pending = self.pending_confirmations()
        if pending and not isinstance(self.screen, QuitModal):
            self.push_screen(QuitModal(pending), self._quit_answered)
            return
        await self.stop_and_exit()

    async def _quit_answered(self, quit: bool | None) -> None:
        if quit:
            await self.stop_and_exit()

    async def stop_and_exit(self) -> None:
        self.notify("stopping…", timeout=2)
        try:
            await asyncio.wait_for(self.source.stop(), 5.0)
        except Exception as e:  # quitting must always work
            log.warning("stopping the source: %s", e)
        self.exit(0)

    def pending_confirmations(self) -> dict[str, str]:
        """Service -> confirm deadline, for every change that awaits confirmation."""
        out = {}
        for service, event in self.controls.items():
            deadline = event.deadline()
            if deadline is not None:
                out[service] = deadline
        return out

    @property
    def note(self) -> str:
        return self._note() if callable(self._note) else self._note

    # -- workers ----------------------------------------------------------------------------

    def run_core(
        self,
        work: Awaitable[Any],
        *,
        target: MessagePump,
        done: Callable[[Any], Message],
        name: str,
        group: str = "core",
        exclusive: bool = False,
    ) -> Worker[None]:
        """Run one core call in a worker; post ``done(result)`` to ``target``.  If it raises,
        ``target`` gets :class:`CoreFailed` (see :meth:`on_worker_state_changed`)."""

        async def job() -> None:
            result = await work
            target.post_message(done(result))

        worker = self.run_worker(
            job(), name=name, group=group, exclusive=exclusive, exit_on_error=False
        )
        self._targets[worker] = target
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one handler of worker failures: a message on screen, never a crash."""
        worker = event.worker
        if event.state is WorkerState.ERROR:
            text = describe_error(worker.error)
            log.error("worker %s failed: %s", worker.name, text, exc_info=worker.error)
            target = self._targets.pop(worker, None)
            if target is not None and target.is_attached:
                target.post_message(CoreFailed(worker.name, text))
            else:
                self.notify(
                    text, title=f"{worker.name} failed", severity="error", timeout=10, markup=False
                )
        elif event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED):
            self._targets.pop(worker, None)

    def _controls_heard(self, event: ControlsEvent) -> None:
        self.post_message(ControlsRead(event))

    def refresh_controls(self, service: str) -> None:
        """Read one service's controls now (after an action)."""
        self.run_worker(
            self.source.refresh_controls(service), name=f"controls {service}", group="read"
        )

    def on_controls_read(self, message: ControlsRead) -> None:
        event = message.event
        self.controls[event.service] = event
        if event.message:
            self.notify(
                event.message, title=f"{event.service}: reverted", severity="warning",
                timeout=20, markup=False,
            )  # fmt: skip

    # -- actions shared by the screens ------------------------------------------------------

    def decorate(self, text: str) -> str:
        """A screen's header subtitle, with the read-only mark and the app's note."""
        parts = ["READ-ONLY: actions refused"] if self.source.read_only else []
        parts.append(text)
        if self.note:
            parts.append(self.note)
        return " · ".join(p for p in parts if p)

    def refuse_if_read_only(self) -> bool:
        if self.source.read_only:
            self.notify(
                "read-only mode (console.read_only = true): no change is made",
                title="Refused",
                severity="warning",
            )
            return True
        return False

    def start_action(self, service: str, intent: Intent) -> None:
        """Preview ``intent`` on ``service``, then apply it if the operator confirms."""
        from .screens.action import ActionModal

        if not self.refuse_if_read_only():
            self.push_screen(ActionModal(service, intent))

    def apply_suggestion(self, service: str, suggestion: Suggestion) -> None:
        """A suggested rule, through the same preview → confirm path as every change."""
        try:
            intent = suggestion.rule.edit(suggestion.reason)
        except UsageError as e:  # a rule the validators refuse is never applied
            self.notify(str(e), title="Refused", severity="error")
            return
        self.start_action(service, intent)

    def settle(self, service: str, mode: Settle) -> None:
        """``confirm`` or ``rollback`` the change awaiting confirmation on ``service``."""
        self.start_action(service, mode)

    def maintenance_on(self, service: str) -> bool | None:
        event = self.controls.get(service)
        return event.maintenance if event is not None else None

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_audit(self) -> None:
        from .screens.audit import AuditScreen

        if not isinstance(self.screen, AuditScreen):
            self.push_screen(AuditScreen())

    def open_service(self, service: str) -> None:
        from .screens.service import ServiceScreen

        while isinstance(self.screen, ServiceScreen) or len(self.screen_stack) > 2:
            self.pop_screen()
        self.push_screen(ServiceScreen(service))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # ours stops the pipelines first
                yield command
        yield SystemCommand("Quit", "Stop following the fleet and quit", self.action_quit)
