"""Kill-files: the one way to ask a run to stop safely.

Semantics
- `<run_dir>/ztb.stop` asks that run to stop; the global kill-file (`$ZTB_KILL`, else `ztb.stop`
  beside the artifacts folder) asks every run to stop.
- "Stop safely" means: finish the current step, write a checkpoint (training) or cancel open
  orders and flatten per config (live), write the final status `stopped`, exit 0.
- A run that starts while its kill-file exists removes a *per-run* kill-file left from an earlier
  stop only when it is resumed explicitly (`clear_run_stop`); the global file is never removed by
  a run — the person who dropped it removes it.
- `KillSwitch.requested()` is cheap enough to call every environment step: it stats the files at
  most once per `interval_s` and otherwise returns a cached answer. SIGTERM/SIGINT set the same
  flag when `install_signal_handlers` is used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from ..atomic import atomic_write_text
from ..paths import global_kill_file
from ..runs import STOP_FILE


class KillSwitch:
    def __init__(self, run_dir: Path | None = None, interval_s: float = 0.25, global_file: Path | None = None):
        self.run_file = Path(run_dir) / STOP_FILE if run_dir is not None else None
        self.global_file = Path(global_file) if global_file is not None else global_kill_file()
        self.interval_s = interval_s
        self._next_check = 0.0
        self._requested = False
        self.reason: str | None = None

    def requested(self) -> bool:
        if self._requested:
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.interval_s
        if self.run_file is not None and self.run_file.exists():
            self._trip(f"kill-file {self.run_file}")
        elif self.global_file.exists():
            self._trip(f"global kill-file {self.global_file}")
        return self._requested

    def trip(self, reason: str) -> None:
        """Request a stop from inside the process (signals, errors that call for a safe stop)."""
        self._trip(reason)

    def _trip(self, reason: str) -> None:
        if not self._requested:
            self._requested = True
            self.reason = reason

    def install_signal_handlers(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        """SIGTERM/SIGINT become a safe-stop request; a second SIGINT restores the default
        (so a person can still interrupt a stuck process)."""

        def handler(signum, frame):  # noqa: ARG001
            name = signal.Signals(signum).name
            if self._requested and signum == signal.SIGINT:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            self._trip(f"signal {name}")

        for sig in signals:
            signal.signal(sig, handler)


def request_stop(target: Path, reason: str = "requested", who: str | None = None) -> Path:
    """Write a kill-file. `target` is a run directory or the global kill-file path."""
    path = Path(target) / STOP_FILE if Path(target).is_dir() else Path(target)
    payload = {
        "reason": reason,
        "by": who or f"{os.getenv('USER', 'user')}@{socket.gethostname()}",
        "pid": os.getpid(),
        "time": time.time(),
    }
    atomic_write_text(path, json.dumps(payload) + "\n")
    return path


def clear_run_stop(run_dir: Path) -> bool:
    """Remove a per-run kill-file left by an earlier stop (an explicit resume asks to run again)."""
    path = Path(run_dir) / STOP_FILE
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
