"""Bad input to `ztb train` fails clearly and leaves no run folder behind."""

from __future__ import annotations

import subprocess
import sys


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ztb_core.cli", "train", "--headless", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_store_symbol_leaves_no_run(art):
    out = _train("--set", "data.kind=store", "--set", "data.symbol=NOPE")
    assert out.returncode == 2, out.stderr
    assert "no M1 data for symbol 'NOPE'" in out.stderr and "Traceback" not in out.stderr
    runs = art / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_unknown_override_names_the_key_and_the_fix(art):
    out = _train("--set", "ppo.n_step=5")
    assert out.returncode == 2
    assert "unknown key 'ppo.n_step'" in out.stderr and "did you mean 'ppo.n_steps'" in out.stderr
    assert not (art / "runs").exists()
