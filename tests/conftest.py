"""Shared fixtures: every test gets its own artifacts/data folders and global kill-file, so
nothing is written into the repository and runs never see each other."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# CI replays the same examples on every run (a red build is reproducible); locally each run
# explores new ones. `--hypothesis-seed=N` overrides either.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def isolated_artifacts(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("ztb")
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("ZTB_DATA", str(root / "artifacts" / "data"))
    monkeypatch.setenv("ZTB_KILL", str(root / "ztb.stop"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield root / "artifacts"


@pytest.fixture
def artifacts(isolated_artifacts) -> Path:
    isolated_artifacts.mkdir(parents=True, exist_ok=True)
    return isolated_artifacts


def ztb_cmd(*args: str) -> list[str]:
    """The CLI as a user runs it, through this interpreter."""
    return [sys.executable, "-m", "ztb_core.cli", *args]


@pytest.fixture
def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- runs trained once per test run ------------------------------------------------------------
# A tiny agent of the default shape (fx synthetic market, technical-66 features, ridge forecast)
# with small data and rollouts: what the evaluation and live-policy tests read. Tests that are
# about training itself (resume, kill, checkpoints, learning) train their own runs.
TINY_AGENT = (
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
    "total_timesteps=256",
)


class SharedRuns:
    """Runs trained once per test run and shared by every pytest-xdist worker: the first worker
    to ask trains under a file lock, the others wait on the lock and reuse the finished run.
    A run is keyed by its name and config, so a changed config trains afresh."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, name: str, config: tuple[str, ...], train: Callable[[Path], Path]) -> Path:
        """The run dir `train(artifacts_dir)` produces for this config; read it, never write into
        it (copy it with `copy_run` first where a test writes next to or into the run)."""
        digest = hashlib.sha256(json.dumps([name, *config]).encode()).hexdigest()[:12]
        home = self.root / f"{name}-{digest}"
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{name}-{digest}.lock")):
            ready = home / "ready.json"
            if ready.exists():
                return Path(json.loads(ready.read_text())["run_dir"])
            if home.exists():  # a worker that died mid-training left a partial run: start over
                shutil.rmtree(home)
            run_dir = train(home / "artifacts")
            ready.write_text(json.dumps({"run_dir": str(run_dir)}))
            return run_dir


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> SharedRuns:
    # under xdist each worker's basetemp is <run temp>/popen-gwN: the parent is common to the run
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return SharedRuns(root / "shared-runs")


def copy_run(run_dir: Path, artifacts: Path) -> Path:
    """A private copy of a shared run under `artifacts/runs/`, for tests that write into it
    (evaluation runs, the trial registry)."""
    return Path(shutil.copytree(run_dir, artifacts / "runs" / run_dir.name))


def _train_tiny_agent(artifacts: Path) -> Path:
    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.trainer import run_training

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZTB_ARTIFACTS", str(artifacts))
        mp.setenv("ZTB_DATA", str(artifacts / "data"))
        mp.setenv("ZTB_KILL", str(artifacts.parent / "global.stop"))
        cfg = load_config(TrainConfig, None, list(TINY_AGENT))
        return run_training(cfg, run_id="agent", progress=False).run_dir


@pytest.fixture(scope="session")
def tiny_agent(shared_runs: SharedRuns) -> Path:
    """The TINY_AGENT run, trained once per test run (read-only: see `SharedRuns.get`)."""
    return shared_runs.get("tiny-agent", TINY_AGENT, _train_tiny_agent)
