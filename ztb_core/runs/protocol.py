"""The run protocol's vocabulary: run states, file names, ids, and the facts run.json records."""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import read_json
from ..errors import RunError
from ..paths import REPO_ROOT

STATES = ("starting", "running", "stopping", "stopped", "completed", "failed", "fatal")
FINAL_STATES = frozenset({"stopped", "completed", "failed", "fatal"})
ACTIVE_STATES = frozenset({"starting", "running", "stopping"})
STOP_FILE = "ztb.stop"
#: A heartbeat older than this (seconds) marks an active run as stale.
DEFAULT_STALE_AFTER_S = 30.0
#: Kept on disk beside a run's files and freed for its last words (the final status and the error
#: event) when a write fails for want of space, so the run can still say `failed` and why.
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 64 * 1024

_PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "torch",
    "lightning",
    "transformers",
    "stable-baselines3",
    "gymnasium",
    "textual",
    "rich",
    "typer",
    "psutil",
    "nvidia-ml-py",
    "zstandard",
    "ccxt",
    "pydantic",
)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id(kind: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{stamp}-{secrets.token_hex(2)}"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_facts(gpu: list[str] | str | None = None) -> dict[str, Any]:
    """Facts about this machine for run.json. The GPU list comes from the caller (the runtime floor's
    `telemetry.gpu_facts`): this module stays below the code that talks to NVML."""
    facts: dict[str, Any] = {
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if gpu is not None:
        facts["gpu"] = gpu
    return facts


#: called with (run_dir, run_id, kind, record) for every event a writer records (notifications)
EventHook = Callable[[Path | None, str, str, dict], None]


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: map them to null so every line parses everywhere."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return _clean(value.item())
        except (ValueError, AttributeError):
            return value
    return value


def read_run_info(run_dir: Path) -> dict:
    """run.json of a run that is to be reopened (resume, restart). A damaged file is a RunError that
    names it and says what is left, never a raw JSONDecodeError: run.json is written once, atomically,
    so damage means the disk or a person changed it, and guessing its facts would mislabel the run."""
    path = Path(run_dir) / "run.json"
    try:
        info = read_json(path)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError:
        problem = "not valid JSON (not UTF-8 text)"
    else:
        missing = [k for k in ("kind", "run_id") if not isinstance(info, dict) or not isinstance(info.get(k), str)]
        if not missing:
            return info
        problem = f"missing {', '.join(missing)}" if isinstance(info, dict) else "not a JSON object"
    raise RunError(
        f"{path}: damaged run file, {problem}. The run cannot be reopened until run.json is restored; its "
        f"config.yaml and checkpoints/ are untouched (start a new run with --config {Path(run_dir) / 'config.yaml'} "
        "to train from the same settings)"
    )
