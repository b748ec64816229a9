"""Stopping a run, the same way from the CLI (`ztb stop`) and the console's STOP button:
kill-file first; after `timeout_s`, if asked to force, SIGTERM to the run's process group; after
`kill_timeout_s` more, SIGKILL. Every step is recorded as an event in the run."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..runs import FINAL_STATES, JsonlAppender, RunReader, liveness, utc_now_iso
from . import notify
from .killfile import request_stop
from .procs import ProcessIdentity, signal_group, wait_gone


@dataclass
class StopOutcome:
    run_id: str
    final_state: str
    actions: list[str] = field(default_factory=list)
    stopped: bool = False


def record_event(run_dir: Path, kind: str, **data) -> None:
    """Append an event from outside the run's process (one whole line, flushed at once)."""
    appender = JsonlAppender(Path(run_dir) / "events.jsonl", flush_interval_s=3600)
    record = {"time": round(time.time(), 3), "event": kind, **data}
    try:
        appender.append(record, flush=True)
    finally:
        appender.close()
    run_id = Path(run_dir).name
    notify.forward(Path(run_dir), run_id, run_id.split("-", 1)[0], record)


def stop_run(
    run_dir: Path,
    wait: bool = False,
    timeout_s: float = 30.0,
    force: bool = False,
    kill_timeout_s: float = 10.0,
    reason: str = "ztb stop",
    on_progress: Callable[[str, float], None] | None = None,
    poll_s: float = 0.2,
) -> StopOutcome:
    """Ask one run to stop. `on_progress(phase, seconds_left)` lets a UI draw a countdown."""
    reader = RunReader(run_dir)
    status = reader.status()
    outcome = StopOutcome(run_id=reader.run_id, final_state=status.get("state", "unknown"))
    label, alive = liveness(status)
    if status.get("state") in FINAL_STATES:
        outcome.actions.append(f"already {status['state']}: nothing to do")
        outcome.stopped = True
        return outcome
    request_stop(reader.dir, reason=reason)
    outcome.actions.append(f"wrote kill-file {reader.stop_file}")
    record_event(reader.dir, "stop_requested", reason=reason, at=utc_now_iso())
    if not (wait or force):
        return outcome
    if alive is False:
        outcome.actions.append(f"process {status.get('pid')} is not running (run was {label})")
        return _finish(reader, outcome)
    identity = ProcessIdentity(int(status.get("pid") or 0), status.get("pid_create_time"))
    pgid = status.get("pgid")
    if _wait_final(reader, identity, timeout_s, "kill-file", on_progress, poll_s):
        return _finish(reader, outcome)
    if not force:
        outcome.actions.append(f"run still active after {timeout_s:.0f}s (use --force to escalate)")
        return _finish(reader, outcome)
    if signal_group(identity, pgid, signal.SIGTERM):
        outcome.actions.append(f"sent SIGTERM to process group {pgid or identity.pid}")
        record_event(reader.dir, "stop_escalated", signal="SIGTERM", pgid=pgid, pid=identity.pid)
    if _wait_final(reader, identity, kill_timeout_s, "SIGTERM", on_progress, poll_s):
        return _finish(reader, outcome)
    if signal_group(identity, pgid, signal.SIGKILL):
        outcome.actions.append(f"sent SIGKILL to process group {pgid or identity.pid}")
        record_event(reader.dir, "stop_escalated", signal="SIGKILL", pgid=pgid, pid=identity.pid)
        wait_gone(identity, pgid, 5.0)
    return _finish(reader, outcome)


def _wait_final(
    reader: RunReader,
    identity: ProcessIdentity,
    timeout_s: float,
    phase: str,
    on_progress: Callable[[str, float], None] | None,
    poll_s: float,
) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if reader.status().get("state") in FINAL_STATES and not identity.alive():
            return True
        if not identity.alive():
            return True
        if left <= 0:
            return False
        if on_progress is not None:
            on_progress(phase, left)
        time.sleep(min(poll_s, max(left, 0.01)))


def _finish(reader: RunReader, outcome: StopOutcome) -> StopOutcome:
    status = reader.status()
    state = status.get("state", "unknown")
    if state not in FINAL_STATES:
        label, alive = liveness(status)
        if alive is False:
            # the process is gone without writing a final state (killed): say so in the run
            record_event(reader.dir, "killed", note="process ended without a final status", previous_state=state)
            state = "dead"
    outcome.final_state = state
    outcome.stopped = state in FINAL_STATES or state == "dead"
    return outcome
