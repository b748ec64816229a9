"""`ztb supervise`: keep a training run alive through crashes.

The trainer runs as a child in its own session (its own process group, so `ztb stop --force`
signals the trainer's whole tree). When it exits:

* state `completed` or `stopped` (or any stop request: run kill-file, global kill-file, a signal
  to the supervisor) -> done, never restarted;
* exit code 2 (a user error such as a bad config) -> not retried: it would fail the same way;
* anything else is a crash -> restart with `--resume latest` after an exponential backoff
  (`backoff_s * 2^(k-1)`, capped at `backoff_max_s`); after `max_crashes` crashes within
  `crash_window_s` the run is marked `fatal` with the last traceback digest.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..manifest import Manifest
from ..paths import global_kill_file, runs_dir
from ..runs import RunReader
from ..runtime.killfile import request_stop
from ..runtime.procs import ztb_argv
from ..runtime.run_writer import open_run
from ..runtime.stopper import record_event
from .config import SupervisorConfig

log = logging.getLogger("ztb.rl.supervisor")
USER_ERROR_EXIT = 2


def _strip_resume(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return out


def last_error(run_dir: Path) -> dict:
    """The newest `error` event (its traceback digest), or {}."""
    try:
        events = RunReader(run_dir).events()
    except Exception:
        return {}
    for e in reversed(events):
        if e.get("event") == "error":
            return {k: e.get(k) for k in ("error", "traceback_sha1", "traceback_tail")}
    return {}


class Supervisor:
    def __init__(
        self,
        run_id: str,
        train_args: list[str],
        cfg: SupervisorConfig,
        say: Callable[[str], None] | None = None,
        artifacts: Path | None = None,
    ):
        self.run_id = run_id
        self.run_dir = runs_dir(artifacts) / run_id
        self.train_args = _strip_resume(train_args)
        self.cfg = cfg
        self.say = say or (lambda m: log.info(m))
        self.stop_requested = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.crashes: collections.deque[float] = collections.deque()
        self.restarts = 0

    def _argv(self, resume: bool) -> list[str]:
        args = ["train", "--headless", *self.train_args, "--run-id", self.run_id]
        if resume:
            args += ["--resume", "latest"]
        return ztb_argv(*args)

    def _stop_wanted(self) -> bool:
        return self.stop_requested.is_set() or (self.run_dir / "ztb.stop").exists() or global_kill_file().exists()

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):  # noqa: ARG001
            self.stop_requested.set()
            if self.run_dir.is_dir():
                request_stop(self.run_dir, reason=f"supervisor got {signal.Signals(signum).name}")
            proc = self.proc
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)

    def _state(self) -> str | None:
        try:
            return RunReader(self.run_dir).status().get("state")
        except Exception:
            return None

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop_wanted():
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def run(self) -> str:
        """Supervise until completion, a stop, a user error or giving up. Returns the final state."""
        resume = self.run_dir.is_dir()
        while True:
            argv = self._argv(resume)
            self.say(f"supervisor: starting trainer ({'resume' if resume else 'new run'} {self.run_id})")
            self.proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
            while True:
                try:
                    rc = self.proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
            resume = resume or self.run_dir.is_dir()
            state = self._state()
            if state in ("completed", "stopped"):
                self.say(f"supervisor: run {self.run_id} {state}; not restarting")
                return state
            if self._stop_wanted():
                if self.run_dir.is_dir():
                    record_event(self.run_dir, "supervisor_exit", reason="stop requested", exit_code=rc)
                self.say("supervisor: stop requested; not restarting")
                return state or "stopped"
            if rc == USER_ERROR_EXIT or not self.run_dir.is_dir():
                self.say(f"supervisor: trainer exited with code {rc} (a user error, see above); not restarting")
                return state or "failed"
            if rc == 0:  # clean exit without a final state: treat the run as finished
                return state or "completed"
            if not self._crashed(rc):
                return "fatal"
            if self._stop_wanted():  # a stop during the backoff wins over the restart
                record_event(self.run_dir, "supervisor_exit", reason="stop requested during backoff", exit_code=rc)
                return self._state() or "stopped"
            resume = True

    def _crashed(self, rc: int) -> bool:
        """Record a crash; False when the crash budget is spent (run marked fatal)."""
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > self.cfg.crash_window_s:
            self.crashes.popleft()
        err = last_error(self.run_dir)
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
        if len(self.crashes) >= self.cfg.max_crashes:
            msg = (
                f"gave up after {len(self.crashes)} crashes within {self.cfg.crash_window_s:.0f}s "
                f"(last: {how}{'; ' + err['error'] if err.get('error') else ''})"
            )
            writer = open_run(self.run_dir)
            writer.event("fatal", crashes=len(self.crashes), last_exit=how, **err)
            writer.set_status("fatal", message=msg)
            writer.close()
            self.say(f"supervisor: {msg}")
            return False
        delay = min(self.cfg.backoff_s * 2 ** (len(self.crashes) - 1), self.cfg.backoff_max_s)
        entries = [e for e in Manifest(self.run_dir / "checkpoints").entries() if not e.get("invalid")]
        self.restarts += 1
        record_event(
            self.run_dir,
            "restarted",
            attempt=self.restarts,
            last_exit=how,
            delay_s=delay,
            from_step=entries[-1]["step"] if entries else 0,
            crashes_in_window=len(self.crashes),
            **err,
        )
        self.say(f"supervisor: trainer crashed ({how}); restarting from the latest checkpoint in {delay:.1f}s")
        self._sleep(delay)
        return True
