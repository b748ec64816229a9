"""The ridge+hysteresis baseline, verdicts against the strongest baseline, and the periodic
evaluation's PSR/DSR/p-value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ztb_core.evaluation import backtest, evaluate_positions, quick_evaluation, sma_crossover, validate_report
from ztb_core.evaluation.baselines import fit_ridge_baseline, holding_returns, hysteresis
from ztb_core.evaluation.errors import EvaluationError
from ztb_core.pnl import bar_returns, position_returns
from ztb_core.trading_costs import CostConfig

from .conftest import make_bars


def planted_market(n: int, seed: int, strength: float = 0.5, noise_features: int = 5):
    """Bars whose next holding return is predictable from feature 0 (an AR(1) signal), plus
    pure-noise features: the ridge must find the one that matters."""
    rng = np.random.default_rng(seed)
    sig = np.zeros(n)
    e = rng.normal(0, 1, n)
    for t in range(1, n):
        sig[t] = 0.97 * sig[t - 1] + e[t]
    sig /= sig.std()
    # the return of bar t+1 (intra) carries the signal known at the close of t
    intra = np.zeros(n)
    intra[1:] = strength * 1e-4 * sig[:-1] + rng.normal(0, 1e-3, n - 1)
    close = np.empty(n)
    open_ = np.empty(n)
    price = 100.0
    for t in range(n):
        open_[t] = price
        price *= 1 + intra[t]
        close[t] = price
    feats = np.column_stack([sig, rng.normal(0, 1, (n, noise_features))])
    return feats, open_, close


def test_holding_return_is_what_a_one_bar_position_earns_under_the_pnl_convention():
    open_, close, _ = make_bars(50, seed=3)
    y = holding_returns(open_, close)
    rets = bar_returns(open_, close)
    for t in (0, 10, 47):
        pos = np.zeros(50)
        pos[t] = 1.0  # long after bar t's close only
        r, _ = position_returns(pos, rets, 0.0)
        assert y[t] == pytest.approx(r.sum(), rel=1e-12)
    assert math.isnan(y[-1])


def test_hysteresis_holds_inside_the_band_and_starts_flat():
    z = np.array([0.2, 1.5, 0.5, -0.5, -1.2, 0.9, 1.1])
    assert hysteresis(z, 1.0).tolist() == [0.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0]
    assert hysteresis(z, 0.0).tolist() == [1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    with pytest.raises(EvaluationError, match="band"):
        hysteresis(z, -1.0)


def test_ridge_is_fitted_on_train_only_and_finds_a_planted_signal():
    feats, open_, close = planted_market(30_000, seed=1)
    tr, va, te = slice(0, 18_000), slice(18_000, 24_000), slice(24_000, 30_000)
    costs = CostConfig(fee_bps=0.1, spread_bps=0.0, slippage_bps=0.0)
    args = (feats[tr], open_[tr], close[tr], feats[va], open_[va], close[va], costs)
    model = fit_ridge_baseline(*args)
    assert abs(model.coef[0]) > 5 * np.abs(model.coef[1:]).max()  # the signal column, not the noise
    r, _ = position_returns(model.positions(feats[te]), bar_returns(open_[te], close[te]), costs.rate)
    assert r.mean() / r.std() * math.sqrt(252 * 1440) > 3  # out of sample: the planted edge is traded
    # the fit never sees val or test: changing their prices leaves the coefficients of one alpha alone
    # (val chooses only among alphas and bands)
    same = fit_ridge_baseline(*args, alphas=[0.1])
    other = fit_ridge_baseline(
        *args[:3], feats[va], open_[va][::-1].copy(), close[va][::-1].copy(), costs, alphas=[0.1]
    )
    np.testing.assert_array_equal(other.coef, same.coef)
    assert model.describe()["fitted_on"] == "train" and model.describe()["band_chosen_on"] == "val"


def test_ridge_band_is_chosen_by_net_sharpe_on_val_and_grows_with_costs():
    feats, open_, close = planted_market(20_000, seed=2, strength=0.3)
    tr, va = slice(0, 12_000), slice(12_000, 20_000)

    def band(bps: float) -> float:
        c = CostConfig(fee_bps=bps, spread_bps=0.0, slippage_bps=0.0)
        return fit_ridge_baseline(feats[tr], open_[tr], close[tr], feats[va], open_[va], close[va], c).band

    assert band(5.0) > band(0.0)  # costly trading: a wider band (fewer flips) wins on val


def test_ridge_rejects_mismatched_or_nonfinite_features():
    feats, open_, close = planted_market(2_000, seed=3)
    c = CostConfig()
    with pytest.raises(EvaluationError, match="train has 6 features, val 5"):
        fit_ridge_baseline(feats, open_, close, feats[:, :5], open_, close, c)
    bad = feats.copy()
    bad[5, 0] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        fit_ridge_baseline(bad, open_, close, feats, open_, close, c)


def test_verdict_compares_with_the_strongest_baseline_not_the_weakest(fast_config):
    """An agent that beats buy-and-hold but loses to a strong baseline gets no 'skill' verdict;
    positive control: the same agent without that baseline beats every one left."""
    feats, open_, close = planted_market(8_000, seed=4, strength=1.0)
    index = __import__("pandas").date_range("2021-01-04", periods=8_000, freq="1min", tz="UTC")
    costs = CostConfig(fee_bps=0.1, spread_bps=0.0, slippage_bps=0.0)
    agent = np.sign(feats[:, 0] + np.random.default_rng(0).normal(0, 0.7, 8_000))  # a noisy copy of the signal
    oracle = np.sign(feats[:, 0])  # what a ridge that knows the signal would trade
    common = (agent, open_, close, index, costs, "M1", "fx", fast_config)
    strong = evaluate_positions(*common, extra_baselines={"ridge": (oracle, {"alpha": 0.0, "band_sd": 0.0})})
    v = strong["verdict"]
    assert v["strongest_baseline"] == "ridge" and not v["beats_strongest_baseline"]
    assert strong["baselines"]["buy_and_hold"]["difference"]["sharpe"]["low"] > 0  # it does beat buy-and-hold
    assert "not better than the strongest baseline" in v["summary"]
    # the sentence every summary prints: never "beats" unless the paired interval is above 0, with the interval
    top = strong["baselines"]["ridge"]["difference"]["sharpe"]
    assert v["vs_strongest"] in ("matches", "behind") and "beats" not in v["comparison"]
    assert f"[{top['low']:+.2f}, {top['high']:+.2f}]" in v["comparison"]
    weak = evaluate_positions(*common)
    assert weak["verdict"]["strongest_baseline"] != "ridge" and weak["verdict"]["beats_strongest_baseline"]
    assert weak["verdict"]["vs_strongest"] == "beats" and "the agent beats" in weak["verdict"]["comparison"]


def test_the_report_carries_the_ridge_equity_curve_on_the_agents_bars_and_costs(fast_config):
    """The equity chart's ridge series is the ridge positions backtested on the bars and costs the
    agent is scored on, sampled at the same points as the agent's curve; without a ridge baseline
    the series is null (schema-valid either way)."""
    feats, open_, close = planted_market(3_000, seed=6, strength=1.0)
    index = pd.date_range("2021-01-04", periods=3_000, freq="1min", tz="UTC")
    costs = CostConfig(fee_bps=2.0, spread_bps=1.0, slippage_bps=0.5)
    agent = np.sign(feats[:, 1])  # noise: a different curve from the ridge's
    ridge = np.sign(feats[:, 0])
    common = (agent, open_, close, index, costs, "M1", "fx", fast_config)
    rep = evaluate_positions(*common, extra_baselines={"ridge": (ridge, {"alpha": 0.1, "band_sd": 0.0})})
    validate_report(rep)
    curves = rep["curves"]
    assert len(curves["ridge_equity"]) == len(curves["bar"]) == len(curves["equity"])
    expected = backtest(ridge, open_, close, costs).equity[curves["bar"]]
    assert curves["ridge_equity"] == pytest.approx(expected.tolist(), rel=1e-12)
    # the costs are the agent's: the same positions traded for free would end elsewhere
    free = backtest(ridge, open_, close, CostConfig(fee_bps=0.0, spread_bps=0.0, slippage_bps=0.0)).equity
    assert curves["ridge_equity"][-1] < free[-1]
    assert curves["ridge_equity"][-1] == pytest.approx(1.0 + rep["baselines"]["ridge"]["metrics"]["total_return"])
    assert curves["ridge_equity"] != curves["equity"] and curves["ridge_equity"] != curves["benchmark_equity"]
    without = evaluate_positions(*common)
    assert without["curves"]["ridge_equity"] is None
    validate_report(without)


def test_quick_evaluation_reports_ridge_strongest_and_deflates_for_prior_trials():
    open_, close, _ = make_bars(3000, seed=5)
    pos = sma_crossover(close, 5, 20)
    ridge = -pos  # any series: it is scored like the others
    one = quick_evaluation(pos, open_, close, CostConfig(), "M5", "fx", extra_baselines={"ridge": ridge})
    for key in ("ridge_sharpe", "ridge_total_return", "ridge_max_drawdown", "random_sharpe_mean", "psr", "dsr"):
        assert isinstance(one[key], float), key
    names = {"buy_and_hold", "sma_crossover", "ridge", "random"}
    assert one["strongest_baseline"] in names
    assert one["strongest_baseline_sharpe"] == max(
        one[f"{k}_sharpe"] if k != "random" else one["random_sharpe_mean"] for k in names
    )
    assert one["dsr_trials"] == 1 and one["dsr"] == pytest.approx(one["psr"])  # one trial: nothing to deflate
    assert one["p_value"] == pytest.approx(1 - one["psr"])
    prior = [0.02, -0.01, 0.015, 0.0, 0.03]
    many = quick_evaluation(pos, open_, close, CostConfig(), "M5", "fx", prior_trial_sharpes=prior)
    assert many["dsr_trials"] == 6 and many["dsr"] < many["psr"]
    flat = quick_evaluation(np.zeros(3000), open_, close, CostConfig(), "M5", "fx")
    assert flat["psr"] is None and flat["dsr"] is None and flat["excess_sharpe"] is None
