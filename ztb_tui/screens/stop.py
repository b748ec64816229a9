"""The stop countdown: kill-file first, then SIGTERM to the process group, then SIGKILL, each
after its own timeout. The escalation runs in a thread worker (`ztb_core.runtime.stopper.stop_run`,
the same code as `ztb stop --force`); this screen only draws its progress and the outcome, and
records the outcome as an event in each run.

The countdown is the worker's, and the worker waits for the process to exit as well as for the
final state. A run that has written its final state but whose process is still tearing down
(closing env workers, flushing logs) is stopped as far as a person is concerned: the dialog
watches each run's status the way the header does and, as soon as it is final, says so and stops
counting (the worker still escalates if the process never exits, as `ztb stop --force` would)."""

from __future__ import annotations

import functools
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, ProgressBar, Static

from ztb_core.runs import FINAL_STATES, RunSummary
from ztb_core.runtime.stopper import StopOutcome, record_event, stop_run

from ..context import context
from ..poller import Poller

PHASE_TEXT = {"kill-file": "waiting for a safe stop (kill-file written)", "SIGTERM": "SIGTERM sent; waiting"}
NEXT_STEP = {"kill-file": "SIGTERM", "SIGTERM": "SIGKILL"}


class StopScreen(ModalScreen[list[StopOutcome]]):
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, run_dirs: list[Path], timeout_s: float, kill_timeout_s: float, reason: str = "console STOP"):
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.timeout_s = timeout_s
        self.kill_timeout_s = kill_timeout_s
        self.reason = reason
        self.outcomes: list[StopOutcome] = []
        self.done = False
        #: run id -> the final state its status.json shows (from the status poll, before the worker ends)
        self.settled: dict[str, str] = {}
        self.poller: Poller | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog stop-dialog"):
            names = ", ".join(p.name for p in self.run_dirs) or "no active runs"
            yield Label(f"[b red]STOP[/] {names}", id="stop-title")
            yield Static("", id="phase")
            yield ProgressBar(total=self.timeout_s, show_eta=False, id="countdown")
            yield Static("", id="outcome")
            yield Button("Close (enter)", id="close", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#phase", Static).update(PHASE_TEXT["kill-file"] + f": {self.timeout_s:.0f}s before SIGTERM")
        self.query_one("#countdown", ProgressBar).update(progress=0)
        self._stop_all()
        app = context(self)
        source = app.runs_source  # the source the header and the runs list read
        dirs = list(self.run_dirs)
        self.poller = Poller(
            self,
            "stop-status",
            lambda: [source.one(d) for d in dirs],
            self._apply_status,
            min(app.refresh_s, 1.0),
        )
        self.poller.start()

    def _apply_status(self, rows: list[RunSummary]) -> None:
        """Runs whose status is final are stopped: say so, stop their countdown."""
        newly = {r.run_id: r.state for r in rows if r.state in FINAL_STATES and r.run_id not in self.settled}
        if not newly or self.done:
            return
        self.settled.update(newly)
        if len(self.settled) == len(self.run_dirs):
            if self.poller is not None:
                self.poller.stop()
            states = ", ".join(
                f"{rid} [{'green' if state in ('stopped', 'completed') else 'red'}]{state}[/]"
                for rid, state in self.settled.items()
            )
            self.query_one("#phase", Static).update(f"{states}: final state written; the process is exiting")
            bar = self.query_one("#countdown", ProgressBar)
            bar.update(total=1, progress=1)
            self._enable_close()

    @work(thread=True, exclusive=True, group="stop")
    def _stop_all(self) -> None:
        outcomes = []
        for run_dir in self.run_dirs:
            try:
                outcome = stop_run(
                    run_dir,
                    wait=True,
                    timeout_s=self.timeout_s,
                    force=True,
                    kill_timeout_s=self.kill_timeout_s,
                    reason=self.reason,
                    # (phase, seconds left) -> self._progress(run id, phase, seconds left) on the UI thread
                    on_progress=functools.partial(self.app.call_from_thread, self._progress, run_dir.name),
                )
                record_event(run_dir, "console_stop", final_state=outcome.final_state, actions=outcome.actions)
            except Exception as exc:  # shown to the person; the run folder is left as it was
                outcome = StopOutcome(
                    run_id=run_dir.name,
                    final_state="unknown",
                    actions=[f"stop failed: {exc.__class__.__name__}: {exc}"],
                )
            outcomes.append(outcome)
        try:
            self.app.call_from_thread(self._finished, outcomes)
        except RuntimeError:
            pass  # the console quit during the stop: the outcome is in each run's events

    def _progress(self, run_id: str, phase: str, left: float) -> None:
        if run_id in self.settled or not self._shown():
            return  # stopped already (its process is only exiting), or the dialog was closed
        total = self.timeout_s if phase == "kill-file" else self.kill_timeout_s
        nxt = NEXT_STEP.get(phase, "")
        text = f"{run_id}: {PHASE_TEXT.get(phase, phase)}: [b]{left:.0f}s[/] before {nxt}"
        self.query_one("#phase", Static).update(text)
        self.query_one("#countdown", ProgressBar).update(total=total, progress=max(0.0, total - left))

    def _finished(self, outcomes: list[StopOutcome]) -> None:
        self.outcomes = outcomes
        self.done = True
        if self.poller is not None:
            self.poller.stop()
        if not self._shown():
            return  # closed once its runs were stopped: the outcome is in each run's events
        lines = []
        for o in outcomes:
            colour = "green" if o.stopped else "red"
            lines.append(f"[b]{o.run_id}[/]: final state [{colour}]{o.final_state}[/]")
            lines.extend(f"  • {a}" for a in o.actions)
        self.query_one("#phase", Static).update("done" if outcomes else "nothing to stop")
        bar = self.query_one("#countdown", ProgressBar)
        bar.update(total=1, progress=1)
        self.query_one("#outcome", Static).update("\n".join(lines) or "no active runs")
        self._enable_close()

    def _shown(self) -> bool:
        return self.is_attached and self in self.app.screen_stack

    def _enable_close(self) -> None:
        button = self.query_one("#close", Button)
        button.disabled = False
        button.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_close()

    def action_close(self) -> None:
        if self.done or (self.run_dirs and len(self.settled) == len(self.run_dirs)):
            self.dismiss(self.outcomes)
        else:
            self.notify("the stop is still in progress; it finishes on its own", severity="warning")
