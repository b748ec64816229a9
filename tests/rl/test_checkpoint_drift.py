"""How far training drifted from its best checkpoint: the figure `ztb train` prints at the end,
next to which checkpoint `ztb eval --model RUN` will score."""

from __future__ import annotations

import math

import pytest

from ztb_core.cli import main
from ztb_core.manifest import Manifest
from ztb_core.rl.evaluate import checkpoint_drift

from .conftest import TINY

PPY = 374_400.0  # M1 FX bars a year


def _entries(best: float, newest: float) -> list[dict]:
    return [
        {"file": "a", "step": 100, "eval_sharpe": 5.0},
        {"file": "b", "step": 200, "eval_sharpe": best, "best": True},
        {"file": "c", "step": 300, "eval_sharpe": newest},
    ]


def test_drift_is_measured_in_standard_errors_of_the_best_sharpe():
    # 20,000 bars at an annualised Sharpe of 17.3: SE = sqrt((1 + sr^2 / 2) / (T - 1)) annualised = 4.33
    drift = checkpoint_drift(_entries(17.3, 0.3), 20_000, PPY)
    assert drift is not None and (drift.best_step, drift.newest_step) == (200, 300)
    sr = 17.3 / math.sqrt(PPY)
    assert drift.se == pytest.approx(math.sqrt((1 + sr * sr / 2) / 19_999 * PPY), rel=1e-9)
    assert drift.gap_se == pytest.approx(17.0 / drift.se) and drift.gap_se > 3.5
    # controls: a newest checkpoint within noise of the best, or the best itself
    assert checkpoint_drift(_entries(17.3, 15.0), 20_000, PPY).gap_se < 1  # type: ignore[union-attr]
    assert checkpoint_drift(_entries(17.3, 17.3), 20_000, PPY).gap_se == 0  # type: ignore[union-attr]
    # more bars, smaller standard error, more standard errors for the same gap
    assert checkpoint_drift(_entries(17.3, 0.3), 80_000, PPY).gap_se > 2 * drift.gap_se * 0.99  # type: ignore[union-attr]


def test_no_drift_without_periodic_evaluations():
    entries = [{"file": "a", "step": 100}, {"file": "b", "step": 200, "best": True}]
    assert checkpoint_drift(entries, 20_000, PPY) is None
    assert checkpoint_drift([], 20_000, PPY) is None


def test_train_says_which_checkpoint_eval_scores_and_how_far_the_newest_is(art, capsys):
    sets = [a for s in (*TINY, "eval.every_steps=256") for a in ("--set", s)]
    assert main(["train", "--headless", "--no-progress", "--run-id", "sel", "--total-timesteps", "1024", *sets]) == 0
    out = capsys.readouterr().out
    entries = [e for e in Manifest(art / "runs" / "sel" / "checkpoints").entries() if not e.get("invalid")]
    best = next(e for e in entries if e.get("best"))
    line = next(ln for ln in out.splitlines() if "selection:" in ln)
    if best["file"] == entries[-1]["file"]:
        assert "the newest checkpoint is the best on val" in line
    else:
        assert f"step {best['step']:,}, Sharpe {best['eval_sharpe']:.2f}" in line
        assert "ztb eval --model sel" in line and "SE below" in line


def test_train_without_periodic_evaluation_prints_no_selection(art, capsys):
    sets = [a for s in TINY for a in ("--set", s)]  # TINY has eval.every_steps=0
    assert main(["train", "--headless", "--no-progress", "--run-id", "nosel", "--total-timesteps", "256", *sets]) == 0
    assert "selection:" not in capsys.readouterr().out
