"""Shared fixtures for the training tests: an isolated artifacts folder and a tiny config
(small data, short rollouts) so real PPO runs take seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: tiny but complete: 2 envs x 64 steps = 128-step rollouts, 2 epochs, checkpoints every 256 steps
TINY = [
    "data.synthetic.n_bars=12000",
    "splits.embargo=0",
    "env.lookback=8",
    "env.episode_length=256",
    "ppo.n_envs=2",
    "ppo.n_steps=64",
    "ppo.batch_size=64",
    "ppo.n_epochs=2",
    "ppo.net_arch=[32,32]",
    "checkpoint.every_steps=256",
    "eval.every_steps=0",
    "eval.max_bars=1000",
    "telemetry_interval_s=0.5",
    "supervisor.backoff_s=0.1",
    "supervisor.backoff_max_s=0.5",
]


@pytest.fixture
def art(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ZTB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ZTB_KILL", str(tmp_path / "global.stop"))
    monkeypatch.delenv("ZTB_FAULT_CRASH_AT_STEP", raising=False)
    return tmp_path / "artifacts"


def tiny_cfg(*extra: str, total: int = 1024):
    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig

    return load_config(TrainConfig, None, [*TINY, f"total_timesteps={total}", *extra])


def ztb(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start the real CLI in a subprocess (its own session, like a real run)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ztb_core.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **kw,
    )


def train_args(run_id: str, total: int, *extra: str) -> list[str]:
    args = ["train", "--headless", "--no-progress", "--run-id", run_id, "--total-timesteps", str(total)]
    for s in (*TINY, *extra):
        args += ["--set", s]
    return args


def status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def wait_for(pred, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def metrics(run_dir: Path, split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if split is None or r.get("split") == split]
