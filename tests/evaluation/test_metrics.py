"""Performance metrics against hand-computed series and, where installed, quantstats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ztb_core.evaluation import EvaluationError, performance_metrics, periods_per_year
from ztb_core.evaluation.calendar import bars_for_days

R = np.array([0.10, -0.05, 0.02, -0.10, 0.05])


def test_periods_per_year_follow_the_market_calendar():
    assert periods_per_year("M1", "fx") == 260 * 1440
    assert periods_per_year("M1", "crypto") == 365 * 1440
    assert periods_per_year("H1", "crypto") == 365 * 24
    assert periods_per_year("D", "fx") == 260
    assert bars_for_days(5, "M5", "fx") == 5 * 288
    with pytest.raises(EvaluationError, match="timeframe 'M2'"):
        periods_per_year("M2", "fx")
    with pytest.raises(EvaluationError, match="market 'stocks'"):
        periods_per_year("M1", "stocks")


def test_metrics_match_a_hand_computed_series():
    m = performance_metrics(R, 252)
    equity = np.cumprod(1 + R)  # 1.1, 1.045, 1.0659, 0.95931, 1.0072755
    assert m["total_return"] == pytest.approx(1.1 * 0.95 * 1.02 * 0.9 * 1.05 - 1)
    assert m["annualised_return"] == pytest.approx(equity[-1] ** (252 / 5) - 1)
    mean, sd = R.mean(), R.std(ddof=1)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252))
    assert m["sharpe_per_period"] == pytest.approx(mean / sd)
    assert m["annualised_volatility"] == pytest.approx(sd * math.sqrt(252))
    downside = math.sqrt((0.05**2 + 0.10**2) / 5)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    # peak 1.1 after bar 1; trough 0.95931 after bar 4 -> drawdown 1 - 0.95931/1.1
    assert m["max_drawdown"] == pytest.approx(1 - 0.95931 / 1.1)
    assert m["max_drawdown_duration_bars"] == 4  # under water from bar 2 to the end
    assert m["calmar"] == pytest.approx(m["annualised_return"] / m["max_drawdown"])
    assert m["profit_factor"] == pytest.approx((0.10 + 0.02 + 0.05) / (0.05 + 0.10))
    assert m["win_rate"] == pytest.approx(3 / 5)
    assert m["expectancy"] == pytest.approx(R.mean())
    assert m["best_bar"] == 0.10 and m["worst_bar"] == -0.10


def test_drawdown_duration_counts_the_longest_underwater_stretch():
    r = np.array([0.01, -0.02, 0.03, -0.01, -0.01, -0.01, 0.05, 0.0])
    m = performance_metrics(r, 252)
    # bar 1 under water, recovered at bar 2; bars 3,4,5 under water, recovered at bar 6
    assert m["max_drawdown_duration_bars"] == 3


def test_positions_and_costs_add_turnover_exposure_and_fees():
    r = np.array([0.01, -0.01, 0.02, 0.0])
    pos = np.array([1.0, 1.0, -1.0, 0.0, 0.0])  # one more than returns, as passed to backtest
    costs = np.array([0.001, 0.0, 0.002, 0.001])
    m = performance_metrics(r, 252, positions=pos, costs_paid=costs)
    assert m["turnover"] == pytest.approx(1 + 0 + 2 + 1)
    assert m["position_changes"] == 3
    assert m["exposure"] == pytest.approx(3 / 4)
    assert m["trades"] == 2  # the long run and the short run
    equity_before = np.array([1.0, 1.01, 1.01 * 0.99, 1.01 * 0.99 * 1.02])
    assert m["fees_paid"] == pytest.approx(float(np.sum(costs * equity_before)))
    assert m["turnover_per_year"] == pytest.approx(4 / (4 / 252))


def test_trade_statistics_from_trade_returns():
    m = performance_metrics(R, 252, trade_returns=np.array([0.02, -0.01, 0.03, -0.02]))
    assert m["trades"] == 4
    assert m["trade_win_rate"] == 0.5
    assert m["trade_expectancy"] == pytest.approx(0.005)
    assert m["trade_profit_factor"] == pytest.approx(0.05 / 0.03)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "is empty"),
        ([0.01], "has 1 value"),
        ([0.01, float("nan"), 0.02], "NaN or infinite .*row 1"),
        ([0.01, float("inf")], "NaN or infinite"),
        ([0.001] * 50, "volatility is zero"),
        ([0.0] * 50, "never holds a position"),
        ([0.1, -1.0, 0.2], "wipes out"),
        ([[0.1, 0.2], [0.3, 0.4]], "1-D"),
    ],
)
def test_bad_returns_raise_a_clear_error(bad, match):
    with pytest.raises(EvaluationError, match=match):
        performance_metrics(bad, 252)


def test_constant_returns_may_be_allowed_for_baselines_and_give_null_ratios():
    m = performance_metrics(np.zeros(10), 252, allow_constant=True)
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None and m["profit_factor"] is None
    assert m["total_return"] == 0.0 and m["max_drawdown"] == 0.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())


def test_bad_periods_per_year_and_misaligned_positions():
    with pytest.raises(EvaluationError, match="periods_per_year"):
        performance_metrics(R, 0)
    with pytest.raises(EvaluationError, match="positions has 3 values for 5 returns"):
        performance_metrics(R, 252, positions=[1, 1, 1])


def test_metrics_agree_with_quantstats():
    qs = pytest.importorskip("quantstats", reason="quantstats (dev extra) is the independent reference")
    import pandas as pd

    rng = np.random.default_rng(7)
    r = rng.standard_t(5, 3000) * 0.004 + 0.0003
    s = pd.Series(r, index=pd.date_range("2020-01-01", periods=r.size, freq="D"))
    ppy = 365
    m = performance_metrics(r, ppy)
    assert m["sharpe"] == pytest.approx(qs.stats.sharpe(s, periods=ppy), rel=1e-9)
    assert m["sortino"] == pytest.approx(qs.stats.sortino(s, periods=ppy), rel=1e-9)
    assert m["annualised_volatility"] == pytest.approx(qs.stats.volatility(s, periods=ppy), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(-qs.stats.max_drawdown(s), rel=1e-9)
    assert m["annualised_return"] == pytest.approx(qs.stats.cagr(s, periods=ppy), rel=1e-6)
    assert m["calmar"] == pytest.approx(qs.stats.calmar(s, periods=ppy), rel=1e-6)
    assert m["profit_factor"] == pytest.approx(qs.stats.profit_factor(s), rel=1e-9)
    assert m["win_rate"] == pytest.approx(qs.stats.win_rate(s), rel=1e-9)
