"""Process identity and process-group shutdown.

A pid alone is not an identity (pids are reused), so every check pairs it with the process
create time recorded in `status.json`. Runs start in their own session (`start_new_session=True`)
so their whole tree shares one process group that can be signalled at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    create_time: float | None = None

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            if self.create_time is not None and abs(proc.create_time() - self.create_time) > 1.0:
                return False
            return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group whose members are all zombies is as good as gone
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False


def signal_group(identity: ProcessIdentity, pgid: int | None, sig: int) -> bool:
    """Signal the run's process group (or just the pid) after checking the identity still holds."""
    if not identity.alive():
        return False
    try:
        if pgid and pgid != os.getpgid(0):
            os.killpg(pgid, sig)
        else:
            os.kill(identity.pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(identity: ProcessIdentity, pgid: int | None, timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not identity.alive() and (not pgid or pgid == os.getpgid(0) or not group_alive(pgid)):
            return True
        time.sleep(poll_s)
    return not identity.alive()


def launch_detached(
    argv: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start a command in its own session, output to a file, so it outlives the console and the
    SSH connection that started it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )


def ztb_argv(*args: str) -> list[str]:
    """argv that runs the ztb CLI with this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "ztb_core.cli", *args]
