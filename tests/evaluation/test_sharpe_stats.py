"""PSR / DSR against Bailey & López de Prado's worked example and basic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from ztb_core.evaluation import (
    EvaluationError,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_inference,
)

DAYS = 250  # the paper annualises daily Sharpe ratios with 250 days


def test_paper_example_expected_max_sharpe_and_dsr():
    # N=100 trials, Var(SR)=0.5 annualised, T=1250 days, SR 2.5 annualised, skew -3, kurtosis 10
    sr0 = expected_max_sharpe(100, 0.5 / DAYS)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 * math.sqrt(DAYS) == pytest.approx(1.789, abs=5e-4)
    out = deflated_sharpe_ratio(2.5 / math.sqrt(DAYS), 1250, 100, 0.5 / DAYS, skew=-3, kurtosis=10)
    assert out["dsr"] == pytest.approx(0.9004, abs=5e-4)
    assert out["expected_max_sharpe"] == pytest.approx(sr0)


def test_psr_matches_the_formula_and_normal_special_case():
    sr, n = 0.05, 500
    expected = norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + 0.5 * sr**2))  # normal: skew 0, kurtosis 3
    assert probabilistic_sharpe_ratio(sr, n) == pytest.approx(expected)
    assert probabilistic_sharpe_ratio(0.0, n) == pytest.approx(0.5)
    assert probabilistic_sharpe_ratio(sr, n, benchmark=sr) == pytest.approx(0.5)
    # negative skew and fat tails make the same Sharpe less convincing
    assert probabilistic_sharpe_ratio(sr, n, skew=-2, kurtosis=12) < probabilistic_sharpe_ratio(sr, n)


def test_kurtosis_is_raw_not_excess():
    # with excess kurtosis (0 for normal) passed by mistake the variance term changes; raw 3 is normal
    sr, n = 0.1, 1000
    normal = probabilistic_sharpe_ratio(sr, n, skew=0.0, kurtosis=3.0)
    assert normal == pytest.approx(norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2)))
    assert probabilistic_sharpe_ratio(sr, n, skew=0.0, kurtosis=0.0) != pytest.approx(normal)


def test_one_trial_has_no_selection_and_more_trials_deflate_more():
    assert expected_max_sharpe(1, 0.01) == 0.0
    sr = 0.08
    psr = probabilistic_sharpe_ratio(sr, 1000)
    assert deflated_sharpe_ratio(sr, 1000, 1, 0.001)["dsr"] == pytest.approx(psr)
    dsrs = [deflated_sharpe_ratio(sr, 1000, k, 0.001)["dsr"] for k in (2, 10, 100, 1000)]
    assert all(a > b for a, b in zip(dsrs, dsrs[1:], strict=False))


def test_sharpe_inference_from_returns_reports_moments_and_variance_source():
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 2000)
    out = sharpe_inference(r, n_trials=20)
    assert out["n_obs"] == 2000
    assert out["sharpe_per_period"] == pytest.approx(r.mean() / r.std(ddof=1))
    assert out["kurtosis"] == pytest.approx(3.0, abs=0.3)  # raw kurtosis of normal returns
    assert out["trial_sharpe_variance_source"] == "sampling_variance"
    assert out["dsr"] < out["psr"]
    trials = rng.normal(0.0, 0.03, 50)
    out2 = sharpe_inference(r, n_trials=20, trial_sharpes=trials)
    assert out2["trial_sharpe_variance_source"] == "trial_sharpes"
    assert out2["n_trials"] == 50
    assert out2["trial_sharpe_variance_per_period"] == pytest.approx(np.var(trials, ddof=1))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: probabilistic_sharpe_ratio(float("nan"), 100), "sharpe is nan"),
        (lambda: probabilistic_sharpe_ratio(0.1, 1), "n_obs"),
        (lambda: probabilistic_sharpe_ratio(3.0, 100, skew=5.0, kurtosis=3.0), "non-positive variance"),
        (lambda: expected_max_sharpe(0, 0.1), "n_trials"),
        (lambda: expected_max_sharpe(10, -1.0), "variance of trial Sharpes"),
        (lambda: sharpe_inference(np.ones(100) * 0.01), "volatility is zero"),
        (
            lambda: sharpe_inference(np.random.default_rng(0).normal(0, 0.01, size=50), trial_sharpes=[0.1]),
            "at least two",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(EvaluationError, match=match):
        call()
