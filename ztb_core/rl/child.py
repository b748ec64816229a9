"""A `ztb train --headless` run started by another run (a study's trial, a walk-forward fold) and
followed through its run directory, like the console follows any run: its own process session,
its own run folder, stopped only through its kill-file (then, if it ignores it, its process group).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ..paths import runs_dir
from ..runs import JsonlTail, RunReader
from ..runtime.killfile import request_stop
from ..runtime.procs import launch_detached, ztb_argv

log = logging.getLogger("ztb.rl.child")

#: called with each new metrics row of the child; returns a reason to stop it, or None
RowHook = Callable[[dict], "str | None"]


def train_argv(run_id: str, config: str | None, overrides: list[str]) -> list[str]:
    args = ["train", "--headless", "--no-progress", "--run-id", run_id]
    if config:
        args += ["--config", str(Path(config).resolve())]
    for s in overrides:
        args += ["--set", s]
    return ztb_argv(*args)


class ChildTrainRun:
    def __init__(self, run_id: str, config: str | None, overrides: list[str], log_dir: Path):
        self.run_id = run_id
        self.run_dir = runs_dir() / run_id
        self.argv = train_argv(run_id, config, overrides)
        self.log_path = Path(log_dir) / f"{run_id}.out"

    def follow(
        self,
        on_row: RowHook,
        should_stop: Callable[[], bool],
        poll_s: float = 1.0,
        stop_timeout_s: float = 120.0,
    ) -> tuple[int, str | None]:
        """Start the run and follow its metrics until it exits: (exit code, why it was stopped or None).
        A reason from `on_row`, or `should_stop()` turning true, drops the run's kill-file (the run
        saves a checkpoint and exits); a run that ignores it for `stop_timeout_s` gets SIGTERM, then SIGKILL."""
        proc = launch_detached(self.argv, self.log_path)
        tail: JsonlTail | None = None
        stopped: str | None = None
        pending: str | None = None  # a kill-file to drop once the run's folder exists
        sent_at: float | None = None
        terminated = False
        while True:
            done = proc.poll() is not None
            if tail is None and (self.run_dir / "metrics.jsonl").exists():
                tail = RunReader(self.run_dir).metrics_tail()
            if tail is not None:
                for row in tail.poll().records:
                    why = on_row(row)
                    if why and stopped is None:
                        stopped = pending = why
            if done:
                break
            if stopped is None and should_stop():
                stopped = pending = "the parent run was asked to stop"
            if pending is not None and self.run_dir.is_dir():
                request_stop(self.run_dir, reason=pending, who="ztb")
                pending, sent_at = None, time.monotonic()
            if sent_at is not None and time.monotonic() - sent_at > stop_timeout_s:
                sig = signal.SIGKILL if terminated else signal.SIGTERM
                log.warning("run %s did not stop within %.0f s; sending %s", self.run_id, stop_timeout_s, sig.name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                terminated, sent_at = True, time.monotonic()
            time.sleep(poll_s)
        return int(proc.returncode), stopped
