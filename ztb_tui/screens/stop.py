"""The stop countdown: kill-file first, then SIGTERM to the process group, then SIGKILL, each
after its own timeout. The escalation runs in a thread worker (`ztb_core.runtime.stopper.stop_run`,
the same code as `ztb stop --force`); this screen only draws its progress and the outcome, and
records the outcome as an event in each run."""

from __future__ import annotations

import functools
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, ProgressBar, Static

from ztb_core.runtime.stopper import StopOutcome, record_event, stop_run

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
        self.app.call_from_thread(self._finished, outcomes)

    def _progress(self, run_id: str, phase: str, left: float) -> None:
        total = self.timeout_s if phase == "kill-file" else self.kill_timeout_s
        nxt = NEXT_STEP.get(phase, "")
        text = f"{run_id}: {PHASE_TEXT.get(phase, phase)}: [b]{left:.0f}s[/] before {nxt}"
        self.query_one("#phase", Static).update(text)
        self.query_one("#countdown", ProgressBar).update(total=total, progress=max(0.0, total - left))

    def _finished(self, outcomes: list[StopOutcome]) -> None:
        self.outcomes = outcomes
        self.done = True
        lines = []
        for o in outcomes:
            colour = "green" if o.stopped else "red"
            lines.append(f"[b]{o.run_id}[/]: final state [{colour}]{o.final_state}[/]")
            lines.extend(f"  • {a}" for a in o.actions)
        self.query_one("#phase", Static).update("done" if outcomes else "nothing to stop")
        bar = self.query_one("#countdown", ProgressBar)
        bar.update(total=1, progress=1)
        self.query_one("#outcome", Static).update("\n".join(lines) or "no active runs")
        button = self.query_one("#close", Button)
        button.disabled = False
        button.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_close()

    def action_close(self) -> None:
        if self.done:
            self.dismiss(self.outcomes)
        else:
            self.notify("the stop is still in progress; it finishes on its own", severity="warning")
