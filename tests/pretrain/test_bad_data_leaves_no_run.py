"""Input that turns out unusable only once the data is prepared still leaves no run behind."""

from __future__ import annotations

import subprocess
import sys


def test_too_little_data_fails_clearly_without_a_run_folder(artifacts):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ztb_core.cli",
            "pretrain",
            "--headless",
            "--run-id",
            "short",
            "--set",
            "data.synthetic.n_bars=150000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "holds no whole window" in out.stderr and "Traceback" not in out.stderr
    runs = artifacts / "runs"
    assert not runs.exists() or not any(runs.iterdir())
