"""The action modal: preview a change, confirm it, watch it apply per server, read the result.

Opened by the app for every change (block, filter, limit, maintenance) and for confirm /
rollback.  For a change it first asks the core for a dry run (``apply_change(..., dry_run=True)``)
and shows what will change, the rendered nginx diff and the servers it goes to; ``y`` applies,
``n`` / Esc cancels.  While it applies, each server's stage is shown; then each server's result,
with nginx's own message when it refused.  A commit-confirmed change shows its countdown, and
``c`` keeps it (``u`` rolls it back) right here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...controls import ApplyReport, Edit
from ...controls.report import probe_text
from ..messages import ActionDone, ActionProgress, CoreFailed, PreviewReady
from ..rows import countdown

if TYPE_CHECKING:
    from ..app import OpsConsoleApp

CONFIRM_CHOICES: tuple[tuple[float | None, str], ...] = (
    (None, "automatic (risky changes must be confirmed within 2 min)"),
    (60.0, "must be confirmed within 60 s, or it reverts by itself"),
    (0.0, "off (the change stays)"),
)


class ActionModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "go", "Apply", id="action.apply"),
        Binding("n,escape", "close", "Cancel/close", id="action.cancel"),
        Binding("w", "window", "Commit-confirmed", id="action.window"),
        Binding("c", "keep", "Confirm", id="action.confirm"),
        Binding("u", "undo", "Rollback", id="action.rollback"),
    ]

    def __init__(self, service: str, *, edit: Edit | None = None, mode: str = "apply") -> None:
        super().__init__()
        self.service = service
        self.edit = edit
        self.mode = mode
        self.phase = "preview" if mode == "apply" else "ready"
        self.window_choice = 0
        self.stages: dict[str, str] = {}
        self.site_now: tuple[str, str] | None = None
        """After a change: (kind, text) of the post-change probe of the site's URL."""
        self.deadline: str | None = None

    @property
    def console(self) -> OpsConsoleApp:
        return cast("OpsConsoleApp", self.app)

    def title_text(self) -> str:
        if self.mode == "confirm":
            return f"Confirm the change awaiting confirmation on {self.service}"
        if self.mode == "rollback":
            return f"Roll back the last change on {self.service}"
        assert self.edit is not None
        return f"{self.service}: {self.edit.action}"

    def compose(self) -> ComposeResult:
        servers = self.console.source.config.service(self.service).servers
        with Vertical(id="dialog"):
            yield Static(Text(self.title_text(), "bold"), id="action-title")
            yield Static(f"on servers: {', '.join(servers)}", id="action-servers")
            yield Static(id="action-policy")
            with VerticalScroll(id="action-body"):
                yield Static(id="action-diff")
            yield Static(id="action-progress")
            yield Static(id="action-hint")

    def on_mount(self) -> None:
        self.stages = {s: "" for s in self.console.source.config.service(self.service).servers}
        if self.mode == "apply":
            assert self.edit is not None
            self.query_one("#action-diff", Static).update("preparing the preview (dry run)…")
            self.console.run_core(
                self.console.source.preview(self.service, self.edit),
                target=self,
                done=PreviewReady,
                name=f"preview {self.service}",
            )
        else:
            what = (
                "The servers keep the change and disarm their revert timers."
                if self.mode == "confirm"
                else "The servers restore the previous state (the pending change, or the last "
                "applied one) and reload nginx."
            )
            self.query_one("#action-diff", Static).update(what)
        self.set_interval(1.0, self._render_state)
        self._render_state()

    # -- what the operator sees ---------------------------------------------------------------

    def _render_state(self) -> None:
        p = self.console.palette
        policy = self.query_one("#action-policy", Static)
        if self.mode == "apply":
            _value, text = CONFIRM_CHOICES[self.window_choice]
            policy.update(f"commit-confirmed: {text}  (w to change)")
        else:
            policy.update("")
        progress = Text()
        for server, stage in self.stages.items():
            if stage:
                kind = (
                    "ok"
                    if stage.startswith(("ok", "confirmed", "rolled", "unchanged"))
                    else ("down" if stage.startswith("failed") else "warn")
                )
                progress.append(f"{server}: ", "bold")
                progress.append(f"{stage}\n", p[kind])
        if self.site_now is not None:
            kind, text = self.site_now
            progress.append("site now: ", "bold")
            progress.append(f"{text}\n", p[kind])
        if self.deadline:
            left = countdown(self.deadline, self.console.clock())
            progress.append(
                f"awaiting confirmation: {left} left — c to keep it, u to roll back now\n",
                p["warn"],
            )
        self.query_one("#action-progress", Static).update(progress)
        hints = {
            "preview": "preparing… · n/Esc cancel",
            "ready": "y apply · n/Esc cancel",
            "applying": "applying… (the servers finish even if you close this)",
            "done": "Esc close",
            "failed": "Esc close",
        }
        hint = hints[self.phase]
        if self.phase == "ready" and self.mode != "apply":
            hint = f"y {self.mode} · n/Esc cancel"
        self.query_one("#action-hint", Static).update(hint)

    def _diff_text(self, report: ApplyReport) -> Text:
        p = self.console.palette
        text = Text()
        first_diff = None
        svc = self.console.source.config.service(self.service)
        for server, r in report.results.items():
            # The servers' diffs differ only by their control dirs when they agree.
            same = r.diff.replace(svc.control_dir_on(server), "<control_dir>")
            if r.status == "failed":
                text.append(f"{server}: cannot preview: {r.reason}\n", p["down"])
            elif r.status == "unchanged":
                text.append(f"{server}: already so, nothing to change\n", p["muted"])
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
                    text.append(line + "\n", style)
                first_diff = first_diff or same
            else:
                text.append(f"{server}: the same diff\n", p["muted"])
        return text

    # -- messages from the workers ------------------------------------------------------------

    def on_preview_ready(self, message: PreviewReady) -> None:
        report = message.report
        self.query_one("#action-diff", Static).update(self._diff_text(report))
        changes = [r for r in report.results.values() if r.status == "dry-run"]
        if report.failures():
            self.phase = "failed"
        elif not changes:
            self.phase = "done"
            self.stages = {s: "unchanged (nothing to do)" for s in report.results}
        else:
            self.phase = "ready"
        self._render_state()

    def on_action_progress(self, message: ActionProgress) -> None:
        self.stages[message.server] = f"{message.stage}…"
        self._render_state()

    def on_action_done(self, message: ActionDone) -> None:
        report = message.report
        for server, r in report.results.items():
            if r.ok:
                versions = ""
                if r.before_version is not None and r.after_version is not None:
                    versions = f" (version {r.before_version} → {r.after_version})"
                timing = f", nginx -t {r.test_ms} ms, reload {r.reload_ms} ms" if r.test_ms else ""
                self.stages[server] = f"{r.status}{versions}{timing}"
            else:
                back = " — rolled back, nothing changed" if r.rolled_back else ""
                self.stages[server] = f"failed: {r.reason}{back}"
            if r.confirm_deadline:
                self.deadline = r.confirm_deadline
        if self.mode in ("confirm", "rollback") and report.ok:
            self.deadline = None
        if report.probe is not None:
            self.site_now = site_answer(report.probe)
        self.phase = "done" if report.ok else "failed"
        if report.ok:
            self.notify(f"{report.action} on {self.service}: done", title="Applied")
        else:
            failed = ", ".join(r.server for r in report.failures())
            self.notify(
                f"{report.action} on {self.service} failed on {failed}: see the dialog",
                severity="error",
            )
        self.console.refresh_controls(self.service)
        self._render_state()

    def on_core_failed(self, message: CoreFailed) -> None:
        self.phase = "failed"
        self.query_one("#action-diff", Static).update(
            Text(f"{message.job} failed: {message.text}", self.console.palette["down"])
        )
        self.stages = {s: "" for s in self.stages}
        self._render_state()

    # -- keys -------------------------------------------------------------------------------

    def _progress(self, server: str, stage: str) -> None:
        self.post_message(ActionProgress(server, stage))

    def action_go(self) -> None:
        if self.phase != "ready":
            return
        self.phase = "applying"
        self.stages = {s: "connecting…" for s in self.stages}
        source = self.console.source
        if self.mode == "apply":
            assert self.edit is not None
            work = source.apply(
                self.service,
                self.edit,
                confirm_within=CONFIRM_CHOICES[self.window_choice][0],
                progress=self._progress,
            )
        else:
            work = source.settle(self.service, self.mode, progress=self._progress)
        self.console.run_core(
            work, target=self, done=ActionDone, name=f"{self.mode} {self.service}"
        )
        self._render_state()

    def action_window(self) -> None:
        if self.mode == "apply" and self.phase in ("preview", "ready"):
            self.window_choice = (self.window_choice + 1) % len(CONFIRM_CHOICES)
            self._render_state()

    def action_keep(self) -> None:
        if self.deadline and self.phase == "done":
            self._settle("confirm")

    def action_undo(self) -> None:
        if self.deadline and self.phase == "done":
            self._settle("rollback")

    def _settle(self, mode: str) -> None:
        self.mode = mode
        self.phase = "applying"
        self.query_one("#action-title", Static).update(Text(self.title_text(), "bold"))
        self.stages = {s: "connecting…" for s in self.stages}
        work = self.console.source.settle(self.service, mode, progress=self._progress)
        self.console.run_core(work, target=self, done=ActionDone, name=f"{mode} {self.service}")
        self._render_state()

    def action_close(self) -> None:
        self.dismiss()


def site_answer(probe: dict[str, Any]) -> tuple[str, str]:
    """(kind, text) of the site probe after a change: what its visitors get now."""
    status = probe.get("http_status")
    if probe.get("error") is not None or status is None:
        kind = "down"
    elif status == 503:  # what maintenance mode answers
        kind = "maintenance"
    else:
        kind = "ok" if status < 400 else "warn" if status < 500 else "down"
    return kind, probe_text(probe)
