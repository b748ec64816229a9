"""Defect 4's clock-skew regression test, run in a fresh process of its own. In parallel runs of
the whole live suite it failed (its placement classed 'late') while it passes alone and beside the
other live tests in one process: until the interaction is found, CI runs it isolated rather than not
at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST = "tests/live/test_unknown_outcomes.py::test_a_clock_180s_ahead_neither_strands_an_unknown_order_nor_floods_alerts"


def test_the_clock_skew_test_passes_in_a_process_of_its_own():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", TEST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
