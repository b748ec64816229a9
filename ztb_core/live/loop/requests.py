"""Requests a person drops into a live run's folder for its running loop to act on.

The console never writes the journal of a running process: its reset-breakers action writes
`<run>/reset_breakers` (atomic), and the loop takes it (rename, so exactly one loop acts on it),
clears the latched breakers through `RiskManager.reset_breakers` and records a `breakers_reset`
event. `ztb live --reset-breakers` stays the way to clear them at start."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_json, read_json

RESET_BREAKERS = "reset_breakers"


def request_breaker_reset(run_dir: Path, by: str) -> Path:
    path = Path(run_dir) / RESET_BREAKERS
    atomic_write_json(path, {"requested_at": time.time(), "by": by})
    return path


def breaker_reset_pending(run_dir: Path) -> bool:
    return (Path(run_dir) / RESET_BREAKERS).exists()


def take_breaker_reset(run_dir: Path) -> dict[str, Any] | None:
    """The pending request (removed), or None. A cheap failed rename when there is none."""
    path = Path(run_dir) / RESET_BREAKERS
    taken = path.with_name(f"{RESET_BREAKERS}.taken-{os.getpid()}")
    try:
        os.replace(path, taken)
    except FileNotFoundError:
        return None
    try:
        data = read_json(taken)
    except (ValueError, OSError):
        data = {}
    taken.unlink(missing_ok=True)
    return data if isinstance(data, dict) else {}
