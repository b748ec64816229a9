"""Monte Carlo risk, baselines, cost sensitivity and robustness pieces."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from ztb_core.evaluation import (
    EvaluationError,
    backtest,
    buy_and_hold,
    cost_sensitivity,
    flat,
    monte_carlo_risk,
    random_policy,
    sma_crossover,
)
from ztb_core.evaluation.robustness import bar_times, per_period, start_offsets
from ztb_core.trading_costs import CostConfig

from .conftest import make_bars


def test_monte_carlo_var_matches_the_normal_answer_for_iid_returns():
    rng = np.random.default_rng(0)
    mu, sd, h = 0.0002, 0.005, 20
    r = rng.normal(mu, sd, 20_000)
    out = monte_carlo_risk(r, h, n_paths=20_000, block_length=1.0, seed=1)
    # h-bar compounded return is close to normal(h*mu, sqrt(h)*sd) for small returns
    for level in (0.95, 0.99):
        z = norm.ppf(1 - level)
        var = -(h * mu + z * math.sqrt(h) * sd)
        cvar = -(h * mu - math.sqrt(h) * sd * norm.pdf(z) / (1 - level))
        assert out["var"][f"{level:g}"] == pytest.approx(var, rel=0.06)
        assert out["cvar"][f"{level:g}"] == pytest.approx(cvar, rel=0.06)
    assert out["cvar"]["0.99"] > out["var"]["0.99"] > out["var"]["0.95"]
    probs = [d["probability"] for d in out["drawdown_probability"]]
    assert probs == sorted(probs, reverse=True)  # deeper drawdowns are rarer
    assert out["horizon_bars"] == h and out["n_paths"] == 20_000


def test_monte_carlo_rejects_bad_settings():
    r = np.random.default_rng(0).normal(0, 0.01, 500)
    with pytest.raises(EvaluationError, match="horizon_bars"):
        monte_carlo_risk(r, 0)
    with pytest.raises(EvaluationError, match="n_paths"):
        monte_carlo_risk(r, 10, n_paths=10)
    with pytest.raises(EvaluationError, match="drawdown threshold"):
        monte_carlo_risk(r, 10, drawdown_thresholds=[1.5])


def test_sma_crossover_matches_pandas_and_never_looks_ahead():
    _, close, _ = make_bars(600, seed=2)
    pos = sma_crossover(close, 5, 20)
    s = pd.Series(close)
    fast, slow = s.rolling(5).mean(), s.rolling(20).mean()
    expected = np.where(fast > slow, 1.0, np.where(fast < slow, -1.0, 0.0))
    expected[:19] = 0.0
    np.testing.assert_allclose(pos, expected)
    # changing the future leaves every earlier decision unchanged
    future = close.copy()
    future[400:] *= 1.5
    np.testing.assert_array_equal(sma_crossover(future, 5, 20)[:400], pos[:400])
    assert set(np.unique(sma_crossover(close, 5, 20, allow_short=False))) <= {0.0, 1.0}
    with pytest.raises(EvaluationError, match="fast < slow"):
        sma_crossover(close, 20, 5)


def test_simple_baselines_and_random_policy_distribution():
    assert np.all(buy_and_hold(5) == 1.0) and np.all(flat(5) == 0.0)
    paths = random_policy(10_000, seeds=[1, 2, 3], switch_prob=0.02)
    assert paths.shape == (3, 10_000)
    assert set(np.unique(paths)) <= {-1.0, 0.0, 1.0}
    assert not np.array_equal(paths[0], paths[1])  # a distribution, not one draw
    np.testing.assert_array_equal(paths[0], random_policy(10_000, seeds=[1], switch_prob=0.02)[0])
    changes = np.count_nonzero(np.diff(paths, axis=1)) / paths[:, 1:].size
    assert changes == pytest.approx(0.02 * 2 / 3, rel=0.25)  # a redraw keeps the level 1/3 of the time
    with pytest.raises(EvaluationError, match="switch_prob"):
        random_policy(100, [1], switch_prob=0.0)
    with pytest.raises(EvaluationError, match="at least 2 bars"):
        buy_and_hold(1)


def test_cost_sensitivity_reprices_and_finds_break_even():
    open_, close, _ = make_bars(3000, seed=8)
    pos = sma_crossover(close, 5, 30)
    costs = CostConfig(fee_bps=1.0, spread_bps=1.0, slippage_bps=0.5)
    bt = backtest(pos, open_, close, costs)
    out = cost_sensitivity(bt, costs, 252 * 288, [0.0, 1.0, 4.0], [0.5], curve_points=11)
    at_actual = next(g for g in out["grid"] if g["fee_bps"] == 1.0)
    assert at_actual["cost_bps"] == pytest.approx(costs.rate * 1e4)
    assert at_actual["total_return"] == pytest.approx(bt.equity[-1] - 1)
    sharpes = [g["sharpe"] for g in out["grid"]]
    assert sharpes == sorted(sharpes, reverse=True)  # dearer trading, worse Sharpe
    be = out["break_even_cost_bps"]
    if out["profitable_before_costs"]:
        net = bt.gross_returns - bt.turnover * be / 1e4
        assert net.mean() == pytest.approx(0.0, abs=1e-12)
    else:
        assert be == 0.0
    no_trades = backtest(flat(100), open_[:100], close[:100], costs)
    assert cost_sensitivity(no_trades, costs, 252, [1.0], [0.0])["break_even_cost_bps"] is None


def test_per_period_metrics_partition_the_returns():
    open_, close, index = make_bars(8000, seed=3, freq="30min")  # about 5.5 months
    bt = backtest(sma_crossover(close, 5, 30), open_, close, CostConfig())
    times = bar_times(index, len(close))
    monthly = per_period(bt.returns, times[1:], "M", 260 * 48)
    assert sum(p["n_bars"] for p in monthly["periods"]) == bt.returns.size
    compounded = np.prod([1 + p["total_return"] for p in monthly["periods"]]) - 1
    assert compounded == pytest.approx(bt.equity[-1] - 1)
    assert [p["period"] for p in monthly["periods"]][:2] == ["2021-01", "2021-02"]
    assert monthly["return_dispersion"]["count"] == len(monthly["periods"])
    quarterly = per_period(bt.returns, times[1:], "Q", 260 * 48)
    assert [p["period"] for p in quarterly["periods"]] == ["2021Q1", "2021Q2"]
    with pytest.raises(EvaluationError, match="index has 5 timestamps"):
        bar_times(index[:5], 10)
    with pytest.raises(EvaluationError, match="must increase"):
        bar_times(index[::-1], len(index))


def test_start_offsets_are_spread_over_the_first_part():
    assert start_offsets(1000, 1, 0.25) == [0]
    offs = start_offsets(1002, 5, 0.25)
    assert offs[0] == 0 and offs[-1] == 250 and len(offs) == 5
