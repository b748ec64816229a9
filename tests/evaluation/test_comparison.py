"""Summaries say the agent *beats* the strongest baseline only when the paired bootstrap interval of
the Sharpe difference lies above zero; inside the noise they say *matches*, below it *is behind*,
and they print the interval. The case that went wrong: 8.01 against 7.94 on the validation split
was printed as "the agent beats the strongest baseline", a difference far inside one standard error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console

from ztb_core.cli.train import _print_latest_eval, _verdict
from ztb_core.evaluation.calendar import periods_per_year
from ztb_core.evaluation.comparison import Comparison, compare_returns, comparison_word

PPY = periods_per_year("M1", "fx")
N = 89_000  # one 15 % split of the default market


def _with_sharpe(x: np.ndarray, sharpe: float, sd: float = 1.5e-4) -> np.ndarray:
    """x rescaled to exactly this annualised Sharpe (sample mean / sample sd * sqrt(ppy))."""
    z = (x - x.mean()) / x.std(ddof=1)
    return z * sd + sharpe / math.sqrt(PPY) * sd


def _pair(agent_sharpe: float, base_sharpe: float, rho: float = 0.9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated net-return series (an agent that trades much like the ridge band), N bars."""
    rng = np.random.default_rng(seed)
    common, own = rng.standard_normal(N), rng.standard_normal(N)
    base = _with_sharpe(common, base_sharpe)
    agent = _with_sharpe(rho * common + math.sqrt(1 - rho * rho) * own, agent_sharpe)
    return agent, base


@pytest.mark.parametrize(("low", "high", "word"), [(0.1, 2.0, "beats"), (-0.5, 0.6, "matches"), (-2.0, -0.1, "behind")])
def test_the_word_follows_the_interval_not_the_point_estimates(low, high, word):
    assert comparison_word(low, high) == word
    c = Comparison("ridge", 8.01, 7.94, 0.07, low, high)
    assert c.word == word and f"[{low:+.2f}, {high:+.2f}]" in c.sentence()


def test_8_01_against_7_94_matches_and_the_summary_prints_the_interval():
    agent, base = _pair(8.01, 7.94)
    c = compare_returns(agent, base, "ridge", 7.94, PPY, n_resamples=300, seed=0)
    assert (round(c.agent_sharpe, 2), round(c.baseline_sharpe, 2)) == (8.01, 7.94)
    assert c.low < 0 < c.high and c.word == "matches"
    res = {
        "sharpe": 8.01,
        "strongest_baseline": "ridge",
        "strongest_baseline_sharpe": 7.94,
        "vs_strongest": {**c.as_dict(), "sentence": c.sentence()},
    }
    line = _verdict(res, {})
    assert "the agent matches the strongest baseline (ridge" in line, line
    assert "beats" not in line and f"[{c.low:+.2f}, {c.high:+.2f}]" in line


def test_a_clear_gap_is_beats_or_behind_and_a_row_without_an_interval_claims_nothing():
    agent, base = _pair(14.0, 4.0, rho=0.5)
    assert compare_returns(agent, base, "ridge", 4.0, PPY, n_resamples=300).word == "beats"
    assert compare_returns(base, agent, "ridge", 14.0, PPY, n_resamples=300).word == "behind"
    # against the random policies (a mean Sharpe, not a series): the agent's own interval minus it
    vs_random = compare_returns(agent, None, "random", 0.5, PPY, n_resamples=300)
    assert vs_random.word == "beats" and not vs_random.paired and "paired" not in vs_random.sentence()
    # an eval-latest.json written before the interval existed: no "beats" from the point estimates
    old = {"sharpe": 8.01, "strongest_baseline": "ridge", "strongest_baseline_sharpe": 7.94}
    assert "beats" not in _verdict(old, {}) and "no claim" in _verdict(old, {})


def test_a_flat_agent_is_compared_as_sharpe_0(tmp_path):
    agent = np.zeros(N)
    _, base = _pair(0.0, 3.0)
    c = compare_returns(agent, base, "ridge", 3.0, PPY, n_resamples=200)
    assert c.agent_sharpe == 0.0 and c.estimate == pytest.approx(-3.0)
    path = tmp_path / "eval-latest.json"
    res = {"sharpe": 0.0, "never_traded": True, "strongest_baseline": "ridge", "strongest_baseline_sharpe": 3.0}
    res["vs_strongest"] = {**c.as_dict(), "sentence": c.sentence()}
    path.write_text(json.dumps({"split": "val", "step": 10, "bars": N, "result": res}))
    console = Console(record=True, width=400)
    _print_latest_eval(console, path)
    out = console.export_text()
    assert (
        "the agent did not trade (Sharpe 0)" in out and f"the agent {'is behind' if c.high < 0 else 'matches'}" in out
    )
