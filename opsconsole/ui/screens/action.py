"""The action modal: preview an intent, confirm it, watch it apply per server, read the result.

Opened by the app for every change (block, filter, limit, maintenance) and for confirm /
rollback.  It asks the session for a preview (:meth:`opsconsole.session.Session.preview`) and
shows what will change, the rendered nginx diff and the servers it goes to; ``y`` applies exactly
that preview (a server whose controls someone changed meanwhile refuses: "changed by … re-read"),
``n`` / Esc cancels.  While it applies, each server's stage is shown as the session reports it;
then each server's result, with nginx's own message when it refused, and what the site answers
now.  A commit-confirmed change reads "applied — awaiting confirmation (1:58)", and ``c`` keeps
it (``u`` rolls it back) right here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...controls import ApplyReport, Edit
from ...controls.progress import Progress, Stage
from ...controls.report import Outcome, probe_text
from ...health import Status
from ...session import Intent, Preview, Settle
from ...text import shown
from ..messages import ActionDone, ActionProgress, CoreFailed, PreviewReady
from ..rows import countdown

if TYPE_CHECKING:
    from ..app import OpsConsoleApp

CONFIRM_CHOICES: tuple[tuple[float | None, str], ...] = (
    (None, "automatic (risky changes must be confirmed within 2 min)"),
    (60.0, "must be confirmed within 60 s, or it reverts by itself"),
    (0.0, "off (the change stays)"),
)

_DONE_WORDS = {
    Outcome.OK: "done",
    Outcome.UNCHANGED: "unchanged (already so)",
    Outcome.CONFIRMED: "confirmed",
    Outcome.ROLLED_BACK: "rolled back",
    Outcome.NOTHING: "nothing to do",
}


class ActionModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "go", "Apply", id="action.apply"),
        Binding("n,escape", "close", "Cancel/close", id="action.cancel"),
        Binding("w", "window", "Commit-confirmed", id="action.window"),
        Binding("c", "keep", "Confirm", id="action.confirm"),
        Binding("u", "undo", "Rollback", id="action.rollback"),
    ]

    def __init__(self, service: str, intent: Intent) -> None:
        super().__init__()
        self.service = service
        self.intent = intent
        self.phase = "preview"
        self.window_choice = 0
        self.preview: Preview | None = None
        self.stages: dict[str, tuple[str, Status]] = {}
        self.site_now: tuple[Status, str] | None = None
        """After a change: the verdict and text of the post-change probe of the site's URL."""
        self.deadline: str | None = None

    @property
    def console(self) -> OpsConsoleApp:
        return cast("OpsConsoleApp", self.app)

    @property
    def settling(self) -> bool:
        return isinstance(self.intent, Settle)

    def title_text(self) -> str:
        if self.intent is Settle.CONFIRM:
            return f"Confirm the change awaiting confirmation on {self.service}"
        if self.intent is Settle.ROLLBACK:
            return f"Roll back the last change on {self.service}"
        if self.preview is not None:
            return f"{self.service}: {self.preview.action}"
        assert isinstance(self.intent, Edit)
        return f"{self.service}: {self.intent.action}"

    def compose(self) -> ComposeResult:
        servers = self.console.source.config.service(self.service).servers
        with Vertical(id="dialog"):
            yield Static(Text(shown(self.title_text()), "bold"), id="action-title")
            yield Static(Text(f"on servers: {', '.join(servers)}"), id="action-servers")
            yield Static(id="action-policy")
            with VerticalScroll(id="action-body"):
                yield Static(id="action-diff")
            yield Static(id="action-progress")
            yield Static(id="action-hint")

    def on_mount(self) -> None:
        self.stages = {s: ("", Status.UNKNOWN) for s in self.console.source.config.service(
            self.service).servers}  # fmt: skip
        self.query_one("#action-diff", Static).update(Text("preparing the preview (dry run)…"))
        self.console.run_core(
            self.console.source.preview(
                self.service, self.intent, confirm_within=self._window(),
                on_progress=self._progress,
            ),
            target=self,
            done=PreviewReady,
            name=f"preview {self.service}",
        )  # fmt: skip
        self.set_interval(1.0, self._render_state)
        self._render_state()

    def _window(self) -> float | None:
        return None if self.settling else CONFIRM_CHOICES[self.window_choice][0]

    # -- what the operator sees ---------------------------------------------------------------

    def _render_state(self) -> None:
        p = self.console.palette
        policy = self.query_one("#action-policy", Static)
        if not self.settling:
            _value, text = CONFIRM_CHOICES[self.window_choice]
            policy.update(Text(f"commit-confirmed: {text}  (w to change)"))
        else:
            policy.update("")
        progress = Text()
        for server, (stage, status) in self.stages.items():
            if stage:
                progress.append(f"{server}: ", "bold")
                progress.append(f"{shown(stage)}\n", p[status])
        if self.site_now is not None:
            status, text = self.site_now
            progress.append("site now: ", "bold")
            progress.append(f"{shown(text)}\n", p[status])
        if self.deadline:
            left = countdown(self.deadline, self.console.clock())
            progress.append(
                f"applied — awaiting confirmation ({left} left): c to keep it, u to roll back "
                "now; unconfirmed, the servers revert it by themselves\n",
                p["warn"],
            )
        self.query_one("#action-progress", Static).update(progress)
        hints = {
            "preview": "preparing… · n/Esc cancel",
            "ready": "y apply · n/Esc cancel",
            "applying": "applying… (the servers finish even if you close this)",
            "done": "c confirm · u roll back · Esc close" if self.deadline else "Esc close",
            "failed": "Esc close",
        }
        hint = hints[self.phase]
        if self.phase == "ready" and self.settling:
            hint = f"y {self.intent} · n/Esc cancel"
        self.query_one("#action-hint", Static).update(Text(hint))

    def _diff_text(self, report: ApplyReport) -> Text:
        p = self.console.palette
        text = Text()
        first_diff = None
        svc = self.console.source.config.service(self.service)
        for server, r in report.results.items():
            # The servers' diffs differ only by their control dirs when they agree.
            same = r.diff.replace(svc.control_dir_on(server), "<control_dir>")
            if r.status is Outcome.FAILED:
                text.append(f"{server}: cannot preview: {shown(r.reason)}\n", p["down"])
            elif r.status in (Outcome.UNCHANGED, Outcome.NOTHING):
                why = r.reason or "already so"
                text.append(f"{server}: {shown(why)}, nothing to change\n", p["muted"])
            elif not r.diff:
                versions = f"version {r.before_version}"
                text.append(f"{server}: {versions}\n", "bold")
            elif first_diff is None or same != first_diff:
                text.append(f"{server}: version {r.before_version} → {r.after_version}\n", "bold")
                for line in r.diff.splitlines():
                    style = (
                        p["ok"]
                        if line.startswith("+") and not line.startswith("+++")
                        else p["down"]
                        if line.startswith("-") and not line.startswith("---")
                        else p["muted"]
                        if line.startswith("@@")
                        else ""
                    )
                    text.append(shown(line) + "\n", style)
                first_diff = first_diff or same
            else:
                text.append(f"{server}: the same diff\n", p["muted"])
        for note in report.notes:
            text.append(f"{shown(note)}\n", p["warn"])
        if report.risk and not self.settling:
            text.append(f"risky ({report.risk}): commit-confirmed by default\n", p["warn"])
        return text

    # -- messages from the workers ------------------------------------------------------------

    def on_preview_ready(self, message: PreviewReady) -> None:
        self.preview = preview = message.preview
        report = preview.report
        self.query_one("#action-title", Static).update(Text(shown(self.title_text()), "bold"))
        self.query_one("#action-diff", Static).update(self._diff_text(report))
        self.stages = {s: ("", Status.UNKNOWN) for s in self.stages}
        if preview.changes:
            self.phase = "ready"
        elif report.failures():
            self.phase = "failed"
        else:
            self.phase = "done"
            self.stages = {s: (r.reason or "unchanged (nothing to do)", Status.UNKNOWN)
                           for s, r in report.results.items()}  # fmt: skip
            self.notify(report.summary(), title=self.service, markup=False)
        self._render_state()

    def on_action_progress(self, message: ActionProgress) -> None:
        event = message.progress
        if event.stage is not Stage.DONE:
            status = Status.DOWN if event.stage is Stage.UNREACHABLE else Status.WARN
            suffix = "" if event.stage is Stage.UNREACHABLE else "…"
            self.stages[event.server] = (event.text() + suffix, status)
            self._render_state()

    def on_action_done(self, message: ActionDone) -> None:
        report = message.report
        self.deadline = report.confirm_deadline if not self.settling else None
        for server, r in report.results.items():
            if r.ok:
                versions = ""
                if r.before_version is not None and r.after_version is not None:
                    versions = f" (version {r.before_version} → {r.after_version})"
                timing = f", nginx -t {r.test_ms} ms, reload {r.reload_ms} ms" if r.test_ms else ""
                words = _DONE_WORDS.get(r.status, r.status.value)
                if r.status is Outcome.OK and r.confirm_deadline and not self.settling:
                    words = "applied — awaiting confirmation"
                if r.status is Outcome.NOTHING and r.reason:
                    words = r.reason
                self.stages[server] = (f"{words}{versions}{timing}", Status.OK)
            else:
                back = " — rolled back, nothing changed" if r.rolled_back else ""
                self.stages[server] = (f"failed: {r.reason}{back}", Status.DOWN)
        site = report.site_status()
        if site is not None and report.probe is not None:
            self.site_now = (site, probe_text(report.probe))
        self.phase = "done" if report.ok else "failed"
        if report.ok:
            title = "Awaiting confirmation" if self.deadline else "Applied"
            self.notify(report.summary(), title=title, markup=False)
        else:
            self.notify(f"{report.summary()}: see the dialog", severity="error", markup=False)
        self.console.refresh_controls(self.service)
        self._render_state()

    def on_core_failed(self, message: CoreFailed) -> None:
        self.phase = "failed"
        self.query_one("#action-diff", Static).update(
            Text(f"{message.job} failed: {shown(message.text)}", self.console.palette["down"])
        )
        self.stages = {s: ("", Status.UNKNOWN) for s in self.stages}
        self._render_state()

    # -- keys -------------------------------------------------------------------------------

    def _progress(self, event: Progress) -> None:
        self.post_message(ActionProgress(event))

    def action_go(self) -> None:
        if self.phase != "ready" or self.preview is None:
            return
        self.phase = "applying"
        work = self.console.source.apply(
            self.preview, confirm_within=self._window(), on_progress=self._progress
        )
        self.console.run_core(
            work, target=self, done=ActionDone, name=f"{self.intent} {self.service}"
        )
        self._render_state()

    def action_window(self) -> None:
        if not self.settling and self.phase in ("preview", "ready"):
            self.window_choice = (self.window_choice + 1) % len(CONFIRM_CHOICES)
            self._render_state()

    def action_keep(self) -> None:
        if self.deadline and self.phase == "done":
            self._settle(Settle.CONFIRM)

    def action_undo(self) -> None:
        if self.deadline and self.phase == "done":
            self._settle(Settle.ROLLBACK)

    def _settle(self, mode: Settle) -> None:
        """Confirm or roll back the change this dialog just applied, without a second preview:
        the operator is looking at it."""
        self.intent = mode
        self.phase = "applying"
        self.query_one("#action-title", Static).update(Text(self.title_text(), "bold"))
        source = self.console.source

        async def settle() -> ApplyReport:
            preview = await source.preview(self.service, mode, on_progress=self._progress)
            return await source.apply(preview, on_progress=self._progress)

        self.console.run_core(settle(), target=self, done=ActionDone, name=f"{mode} {self.service}")
        self._render_state()

    def action_close(self) -> None:
        self.dismiss()
