"""The ztb operations console (Textual). It reads run folders and drops kill-files; it never
trains. Runs it launches are detached, so closing the console (or losing SSH) leaves them be."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ztb_core.paths import configs_dir, global_kill_file
from ztb_core.runs import ACTIVE_STATES, RunSummary
from ztb_core.runtime.killfile import request_stop

from .context import ConsoleContext
from .launching import Launched, launch, resume
from .messages import (
    ClearGlobalStopRequested,
    LaunchRequested,
    OpenCompare,
    OpenRun,
    Painted,
    ResumeRequested,
    RunsListed,
    StopAllRequested,
    StopRequested,
)
from .poller import Poller
from .prefs import state_file
from .screens.compare import CompareScreen
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.launch import LaunchRequest, LaunchScreen
from .screens.run import RunScreen
from .screens.runs import RunsScreen
from .screens.stop import StopScreen
from .sources import HostSample, HostSource, RunsSource
from .widgets.resources import HostBar, ResourcesPanel

#: the keys that change something, and what they would do: refused with a notice when read-only
REFUSED = {
    "n": "launch a run",
    "s": "STOP",
    "S": "stop all runs",
    "X": "remove the global kill-file",
    "R": "resume from a checkpoint",
    "d": "delete a checkpoint",
    "B": "reset the circuit breakers",
}


class ZtbApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "ztb"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", show=False),
        # a read-only console answers its screens' refused keys here (they fall through to the app)
        *(Binding(key, f"refused({key!r})", "", show=False) for key in REFUSED),
    ]

    def __init__(
        self,
        artifacts: Path,
        readonly: bool = False,
        refresh_s: float = 1.0,
        stop_timeout_s: float = 30.0,
        kill_timeout_s: float = 10.0,
        gpu: Any = None,
        host: HostSource | None = None,
        now: Callable[[], float] = time.time,
        configs: Path | None = None,
        stale_after_s: float = 30.0,
        open_run: str | None = None,
        prefs_path: Path | None = None,
    ):
        super().__init__()
        self.artifacts = Path(artifacts).resolve()
        self.readonly = readonly
        self.refresh_s = refresh_s
        self.stop_timeout_s = stop_timeout_s
        self.kill_timeout_s = kill_timeout_s
        self.configs = configs or configs_dir()
        self.now = now
        self.runs_source = RunsSource(self.artifacts, now=now, stale_after_s=stale_after_s)
        self.host_source = host if host is not None else HostSource(gpu=gpu, disk_path=self.artifacts)
        self.host_sample: HostSample | None = None
        self._gpu_said: str | None = None  # the GPU problem already told (said once, then an icon)
        self.runs_snapshot: list[RunSummary] = []
        self.launched: list[Launched] = []
        self.initial_run = open_run
        #: the sort order and compare marks remembered between starts (prefs.py: where and why)
        self.prefs_path = prefs_path or state_file()
        self.first_paint_at: float | None = None
        #: called with (what, wall time) when a screen first shows its data (benchmarks, tests)
        self.on_paint: Callable[[str, float], None] | None = None
        #: what the screens read of the console (they ask for actions with messages.py's messages)
        self.console_context = ConsoleContext(
            artifacts=self.artifacts,
            artifacts_label=self.artifacts_label,
            readonly=readonly,
            refresh_s=refresh_s,
            now=now,
            runs_source=self.runs_source,
            prefs_path=self.prefs_path,
        )

    @property
    def artifacts_label(self) -> str:
        try:
            return str(self.artifacts.relative_to(Path.cwd().resolve())) or "."
        except ValueError:
            return str(self.artifacts)

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())
        if self.initial_run:
            self.open_run(self.runs_source.root / self.initial_run)
        self.host_poller = Poller(self, "host", self.host_source.poll, self._apply_host, max(self.refresh_s, 2.0))
        self.host_poller.start()
        self.set_interval(max(self.refresh_s, 1.0), self._reap_launches, name="reap")

    def _apply_host(self, sample: HostSample) -> None:
        if not sample.gpu_available and sample.gpu_reason != self._gpu_said:
            self._gpu_said = sample.gpu_reason
            self.notify(f"GPU: unavailable — {sample.gpu_reason} (GPU ✗ below)", timeout=8)
        self.host_sample = sample
        for screen in self.screen_stack:
            for bar in screen.query(HostBar):
                bar.show(sample)
            for panel in screen.query(ResourcesPanel):
                panel.host_changed(sample)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "refused":
            return self.readonly  # otherwise the key belongs to its screen alone
        return True

    def action_refused(self, key: str) -> None:
        self.notify(
            f"read-only console: {key} ({REFUSED.get(key, 'a change')}) is disabled; start it without --readonly",
            severity="warning",
            timeout=4,
        )

    def mark_painted(self, what: str, at: float | None = None) -> None:
        now = time.time() if at is None else at
        if what == "runs" and self.first_paint_at is None:
            self.first_paint_at = now
        if self.on_paint is not None:
            self.on_paint(what, now)

    # ---- what the screens ask (messages.py) -------------------------------------------
    def on_painted(self, message: Painted) -> None:
        self.mark_painted(message.what, message.at)

    def on_runs_listed(self, message: RunsListed) -> None:
        self.runs_snapshot = message.rows

    def on_open_run(self, message: OpenRun) -> None:
        self.open_run(message.run_dir)

    def on_open_compare(self, message: OpenCompare) -> None:
        self.open_compare(message.run_dirs)

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self.action_launch()

    def on_stop_requested(self, message: StopRequested) -> None:
        self.confirm_stop(message.run_dir, message.on_done)

    def on_stop_all_requested(self, message: StopAllRequested) -> None:
        self.action_stop_all()

    def on_clear_global_stop_requested(self, message: ClearGlobalStopRequested) -> None:
        self.action_clear_global_stop()

    def on_resume_requested(self, message: ResumeRequested) -> None:
        self.resume_run(message.kind, message.run_dir, message.checkpoint)

    # ---- navigation ------------------------------------------------------------------
    def open_run(self, run_dir: Path) -> None:
        self.push_screen(RunScreen(run_dir))

    def open_compare(self, run_dirs: list[Path]) -> None:
        self.push_screen(CompareScreen(run_dirs))

    # ---- launching ---------------------------------------------------------------------
    def action_launch(self) -> None:
        if self.readonly:
            return
        gk = global_kill_file(self.artifacts)
        self.push_screen(LaunchScreen(self.configs, gk if gk.exists() else None), self._launch)

    def _launch(self, request: LaunchRequest | None) -> None:
        if request is None:
            return
        try:
            launched = launch(request.kind, self.artifacts, request.config, request.overrides, request.run_id)
        except Exception as exc:
            self.notify(f"launch failed: {exc}", severity="error")
            return
        self._track(launched, f"launched {launched.run_id} (pid {launched.pid}); output: {launched.output}")

    def resume_run(self, kind: str, run_dir: Path, checkpoint: Path) -> None:
        if self.readonly:
            return
        try:
            launched = resume(kind, run_dir, checkpoint, self.artifacts)
        except Exception as exc:
            self.notify(f"resume failed: {exc}", severity="error")
            return
        self._track(launched, f"resuming {run_dir.name} from {checkpoint.name} (pid {launched.pid})")

    def _track(self, launched: Launched, message: str) -> None:
        self.launched.append(launched)
        self.notify(message, timeout=6)
        for screen in self.screen_stack:
            if isinstance(screen, RunsScreen) and screen.poller is not None:
                screen.poller.poll_now()

    def _reap_launches(self) -> None:
        """Collect exited children (no zombies) and report launches that failed at once."""
        for item in list(self.launched):
            rc = item.proc.poll()
            if rc is None:
                continue
            self.launched.remove(item)
            if rc != 0:
                tail = _last_lines(item.output, 3)
                self.notify(f"{item.run_id} exited with code {rc}: {tail}", severity="error", timeout=12)

    # ---- stopping ---------------------------------------------------------------------
    def confirm_stop(self, run_dir: Path, on_done: Callable[[Any], None] | None = None) -> None:
        if self.readonly:
            return
        row = self.runs_source.one(run_dir)
        if row.state not in ACTIVE_STATES:
            self.notify(f"{row.run_id} is {row.liveness}: nothing to stop", severity="warning")
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.push_screen(StopScreen([run_dir], self.stop_timeout_s, self.kill_timeout_s), on_done)

        self.push_screen(
            ConfirmScreen(
                f"STOP {row.run_id}?",
                f"Writes its kill-file (finish the step, checkpoint, exit). If it is still running after "
                f"{self.stop_timeout_s:.0f}s: SIGTERM to its process group, then SIGKILL after "
                f"{self.kill_timeout_s:.0f}s more.",
                yes="STOP",
            ),
            go,
        )

    def action_stop_all(self) -> None:
        if self.readonly:
            return
        active = [r.dir for r in self.runs_source.poll() if r.state in ACTIVE_STATES and r.liveness != "dead"]
        path = global_kill_file(self.artifacts)

        def go(yes: bool | None) -> None:
            if not yes:
                return
            request_stop(path, reason="console stop all")
            self.notify(f"wrote global kill-file {path}; remove it before starting new runs", timeout=8)
            self.push_screen(StopScreen(active, self.stop_timeout_s, self.kill_timeout_s, reason="console stop all"))

        self.push_screen(
            ConfirmScreen(
                f"STOP ALL {len(active)} active run(s)?",
                f"Writes the global kill-file {path}, which stops every run (and any run started while it "
                f"exists), then escalates per run like STOP.",
                yes="STOP ALL",
            ),
            go,
        )

    def action_clear_global_stop(self) -> None:
        """Remove the global kill-file, after a confirmation (it is what stops every run)."""
        if self.readonly:
            return
        path = global_kill_file(self.artifacts)
        if not path.exists():
            self.notify("no global kill-file to remove")
            return

        def go(yes: bool | None) -> None:
            if not yes:
                return
            try:
                path.unlink()
                self.notify(f"removed global kill-file {path}")
            except FileNotFoundError:
                self.notify("no global kill-file to remove")
            self.action_refresh_all()

        self.push_screen(
            ConfirmScreen(
                "Remove the global kill-file?",
                f"{path}\nRuns still running keep going; new runs no longer stop at step 0.",
                yes="Remove",
            ),
            go,
        )

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_refresh_all(self) -> None:
        for screen in self.screen_stack:
            refresh = getattr(screen, "action_refresh", None)  # every console screen has one (`r`)
            if callable(refresh):
                refresh()

    # ---- command palette --------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Keys":  # Textual's keys panel does not close on Esc: ours does
                yield command
        yield SystemCommand("Keys", "Every key of the console (also ?)", self.action_help)
        yield SystemCommand("Refresh", "Poll every source now", self.action_refresh_all)
        if not self.readonly:
            yield SystemCommand("Launch a run", "pretrain / train / live dry-run / live minimal", self.action_launch)
            yield SystemCommand("Stop all runs", "Write the global kill-file and escalate", self.action_stop_all)
            yield SystemCommand(
                "Clear global kill-file", "Allow new runs again after a stop-all", self.action_clear_global_stop
            )
        for row in self.runs_snapshot:
            yield SystemCommand(
                f"Open run {row.run_id}",
                f"{row.kind} · {row.liveness}",
                lambda d=row.dir: self.open_run(d),
                discover=False,
            )


def _last_lines(path: Path, n: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 4096))
            lines = [ln for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return "(no output)"
    return " | ".join(lines[-n:]) or "(no output)"
