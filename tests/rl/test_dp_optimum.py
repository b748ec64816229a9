"""The dynamic-programming optimum of the known-optimum markets: on the one-signal market it is a
no-trade band (theory's shape), it is at least as good as every band on the same path, and on the
two-speed market a band on the one-bar forecast is clearly below it."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.data.known_optimum import market_spec, simulate
from ztb_core.evaluation.baselines import hysteresis
from ztb_core.evaluation.errors import EvaluationError
from ztb_core.rl.dp_optimum import POSITIONS, dp_positions, horizon_forecast, solve

RATE = 2e-4  # the product's default costs: 1 bp fee + half of 1 bp spread + 0.5 bp slippage


def _mean_pnl(pos: np.ndarray, ret: np.ndarray, rate: float = RATE) -> float:
    held = np.r_[0.0, pos[:-1]]
    return float(np.mean(pos[:-1] * ret[1:] - rate * np.abs(pos - held)[:-1]))


@pytest.fixture(scope="module")
def ar1():
    spec = market_spec("known_ar1")
    return spec, solve(spec, RATE)


def _thresholds(sol) -> dict[tuple[float, float], tuple[float, float]]:
    """For each (held, chosen) pair: the range of forecasts where the policy makes that choice."""
    grid = sol.grid[0]
    s = np.linspace(grid[0] * 0.9, grid[-1] * 0.9, 4001)[:, None]
    regime = np.zeros(len(s), dtype=np.int64)
    w = sol.continuation(regime, s)
    mu = s[:, 0] * sol.spec.beta[0, 0]
    out = {}
    for held in POSITIONS:
        value = POSITIONS[None, :] * mu[:, None] + w - sol.rate * np.abs(POSITIONS[None, :] - held)
        choice = POSITIONS[np.argmax(value, axis=1)]
        for c in POSITIONS:
            where = mu[choice == c]
            out[(held, c)] = (float(where.min()), float(where.max())) if where.size else (np.nan, np.nan)
    return out


def test_one_signal_optimum_is_a_no_trade_band(ar1):
    spec, sol = ar1
    t = _thresholds(sol)
    # from flat: short below a threshold, flat in a band around zero, long above; symmetric
    lo_short, hi_short = t[(0.0, -1.0)]
    lo_flat, hi_flat = t[(0.0, 0.0)]
    lo_long, _ = t[(0.0, 1.0)]
    assert hi_short < lo_flat < 0 < hi_flat < lo_long
    assert abs(hi_flat + lo_flat) < 0.05 * hi_flat  # symmetric
    # holding long: keep it over a wider range than flat would enter it (hysteresis), and the exit
    # goes to short or flat monotonically in the forecast
    lo_keep, _ = t[(1.0, 1.0)]
    assert lo_keep < lo_long
    assert lo_keep < 0  # a long is kept through a small negative forecast: leaving costs more
    # the policy is monotone in the forecast for every held position
    for held in POSITIONS:
        ranges = [t[(held, c)] for c in POSITIONS]
        assert ranges[0][1] < ranges[1][0] or np.isnan(ranges[1][0])
        assert ranges[1][1] < ranges[2][0] or np.isnan(ranges[1][0])


def test_optimum_is_at_least_every_band_on_a_fresh_path(ar1):
    spec, sol = ar1
    path = simulate(spec, 150_000, 7)
    dp = _mean_pnl(dp_positions(sol, path.regime, path.state), path.ret)
    fc = horizon_forecast(spec, path.regime, path.state, 1)
    z = fc / fc.std()
    bands = {b: _mean_pnl(hysteresis(z, b), path.ret) for b in np.arange(0.0, 3.01, 0.25)}
    best = max(bands.values())
    assert dp > 0
    # the band chosen in hindsight on this very path can edge the DP by luck, not by much
    assert best < dp * 1.03, (best, dp)
    # the policy's grid-model gain is what it earns (within the path's noise)
    assert abs(dp - sol.gain) < 0.1 * sol.gain


def test_control_costs_shrink_the_optimum_and_free_trading_has_no_band(ar1):
    spec, sol = ar1
    free = solve(spec, 0.0)
    assert free.gain > sol.gain
    costly, t = _thresholds(sol), _thresholds(free)
    # without costs the policy follows the forecast's sign from any position: no band (the
    # thresholds collapse to zero, up to the probe's resolution), where costs put them far apart
    assert abs(t[(0.0, 1.0)][0]) < 0.02 * costly[(0.0, 1.0)][0]
    assert abs(t[(1.0, 1.0)][0]) < 0.02 * abs(costly[(1.0, 1.0)][0])


@pytest.mark.slow
def test_two_speed_one_bar_band_is_below_the_optimum():
    spec = market_spec("known_two_speed")
    sol = solve(spec, RATE)
    path = simulate(spec, 200_000, 11)
    dp = _mean_pnl(dp_positions(sol, path.regime, path.state), path.ret)
    fc = horizon_forecast(spec, path.regime, path.state, 1)
    z = fc / fc.std()
    best_one_bar = max(_mean_pnl(hysteresis(z, b), path.ret) for b in np.arange(0.0, 3.01, 0.2))
    # even with its band picked in hindsight on this path, the one-bar band gets well under the optimum
    assert best_one_bar < 0.7 * dp, (best_one_bar, dp)


def test_bad_inputs_are_refused():
    spec = market_spec("known_ar1")
    with pytest.raises(EvaluationError, match="rate"):
        solve(spec, -1.0)
    with pytest.raises(EvaluationError, match="horizon"):
        horizon_forecast(spec, np.zeros(3, dtype=np.int64), np.zeros((3, 1)), 0)


@pytest.mark.slow
def test_regime_optimum_band_width_changes_with_the_regime():
    spec = market_spec("known_regime")
    sol = solve(spec, RATE)
    s = np.linspace(sol.grid[0][0] * 0.9, sol.grid[0][-1] * 0.9, 4001)[:, None]
    entry = []
    for g in range(2):
        w = sol.continuation(np.full(len(s), g), s)
        mu = s[:, 0] * spec.beta[g, 0]
        value = POSITIONS[None, :] * mu[:, None] + w - RATE * np.abs(POSITIONS[None, :])  # from flat
        entry.append(float(mu[POSITIONS[np.argmax(value, axis=1)] == 1.0].min()))
    calm, volatile = entry
    # from flat, the one-bar forecast that opens a long: calm momentum lasts, so a small forecast is
    # worth the cost; in the volatile regime it fades in a few bars (measured: 1.4e-5 vs 7.6e-5)
    assert 0 < calm and volatile > 3 * calm, entry
