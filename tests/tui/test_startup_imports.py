"""The console's first paint is mostly import time: loading the app must not pull in the library's
statistics (scipy, via `ztb_core.evaluation`), which once doubled first paint when the live config
imported the sizing logic. Positive control: the sizing logic itself does pull it in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "scipy", "ztb_core.evaluation", "torch", "matplotlib")


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return set(json.loads(out))


def test_the_console_loads_without_the_librarys_statistics():
    loaded = _loaded_after("ztb_tui.app")
    assert not [m for m in HEAVY if m in loaded], [m for m in HEAVY if m in loaded]


def test_positive_control_the_sizing_logic_loads_them():
    assert "scipy" in _loaded_after("ztb_core.live.loop.sizing")


def test_positive_control_the_pnl_arithmetic_loads_numpy():
    assert "numpy" in _loaded_after("ztb_core.pnl")
