"""Volatility-targeted sizing: known answers on synthetic markets, no look-ahead, online parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ztb_core.evaluation.errors import EvaluationError
from ztb_core.evaluation.vol_sizing import (
    ONLINE_BUFFER_BARS,
    VolSizing,
    compare_sizing,
    held_scale,
    hold_step,
    target_for_unit_mean,
)
from ztb_core.evaluation.volatility import NS_PER_MINUTE
from ztb_core.trading_costs import CostConfig

T0 = np.datetime64("2016-01-04T00:00", "ns").astype(np.int64)  # a Monday
N_BARS = 6 * 7200  # six trading weeks of M1 bars, no weekend gaps (the synthetic clock runs on)
N_TRAIN = 3 * 7200
PPY = 260 * 1440.0
FREE = CostConfig(fee_bps=0.0, spread_bps=0.0, slippage_bps=0.0)


def market(regimes: bool, seed: int = 0, mu: float = 0.06):
    """(open, close, times, sigma): per-bar expected return mu * sigma (a constant Sharpe per unit
    of risk). With `regimes`, sigma switches between a quiet and a 4x louder state that lasts
    about a day (Markov); without, sigma is constant."""
    rng = np.random.default_rng(seed)
    if regimes:
        state = np.zeros(N_BARS, np.int64)
        flips = rng.random(N_BARS) < 1.0 / 1440
        state = np.cumsum(flips) % 2
        sigma = np.where(state == 1, 4e-4, 1e-4)
    else:
        sigma = np.full(N_BARS, 2e-4)
    r = sigma * (mu + rng.standard_normal(N_BARS))
    r[0] = 0.0
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])  # no gap: the bar's move is close/open
    times = T0 + np.arange(N_BARS, dtype=np.int64) * NS_PER_MINUTE
    return open_, close, times, sigma


def sized(regimes: bool, seed: int = 0):
    o, c, t, _ = market(regimes, seed)
    sizing = VolSizing.fit(c[:N_TRAIN], t[:N_TRAIN], horizon=60, cap=2.0)
    scale = sizing.scale(c, t)
    return o, c, t, sizing, scale


def long_only(n: int = N_BARS) -> np.ndarray:
    return np.ones(n)


def test_target_makes_the_average_train_scale_one():
    o, c, t, sizing, _ = sized(True)
    s = sizing.scale(c[:N_TRAIN], t[:N_TRAIN])
    assert np.mean(s[s > 0]) == pytest.approx(1.0, abs=1e-9)
    # and the bisection solves the capped equation for any spread of forecasts
    f = np.exp(np.random.default_rng(1).normal(0, 2, 5000))
    tgt = target_for_unit_mean(f, 2.0)
    assert np.mean(np.minimum(np.sqrt(tgt / f), 2.0)) == pytest.approx(1.0, abs=1e-9)


def test_vol_targeting_raises_the_sharpe_under_volatility_regimes():
    """Positive control: expected return mu*sigma, vol sigma switching 1x/4x. Constant size has
    Sharpe mu * E[sigma] / sqrt(E[sigma^2]) = mu * 2.5 / sqrt(8.5) ~ 0.86 mu per bar; scaling by
    1/sigma (what a good forecast gives) restores mu per bar: about +17%."""
    o, c, t, _, scale = sized(True)
    out = compare_sizing(
        {"buy_and_hold": long_only(N_BARS - N_TRAIN)},
        o[N_TRAIN:],
        c[N_TRAIN:],
        scale[N_TRAIN:],
        FREE,
        PPY,
        300,
        0.95,
        0,
    )["buy_and_hold"]
    sr_c, sr_v = out["constant"]["sharpe"], out["vol_target"]["sharpe"]
    theory = np.sqrt(8.5) / 2.5  # ~1.166 with a perfect forecast of sigma
    assert sr_v / sr_c == pytest.approx(theory, abs=0.06)
    assert out["difference"]["sharpe"]["low"] > 0  # and the paired interval sees it
    assert out["difference"]["word"] == "beats"


def test_vol_targeting_changes_nothing_on_a_constant_volatility_market():
    """Negative control: with constant sigma the scale is ~1 everywhere and the Sharpe barely moves
    (the scale's small forecast noise, uncorrelated with returns, costs a fraction of a percent)."""
    o, c, t, _, scale = sized(False)
    live = scale[N_TRAIN:]
    assert abs(live.mean() - 1.0) < 0.05 and live.std() < 0.15
    out = compare_sizing(
        {"buy_and_hold": long_only(N_BARS - N_TRAIN)}, o[N_TRAIN:], c[N_TRAIN:], live, FREE, PPY, 300, 0.95, 0
    )["buy_and_hold"]
    assert abs(out["vol_target"]["sharpe"] / out["constant"]["sharpe"] - 1.0) < 0.02


def test_costs_follow_the_scaled_turnover():
    """Buy-and-hold at constant size trades once; the scaled position trades whenever the scale
    moves, and pays for it."""
    o, c, t, _, scale = sized(True)
    costs = CostConfig(fee_bps=1.0, spread_bps=0.0, slippage_bps=0.0)
    out = compare_sizing(
        {"buy_and_hold": long_only(N_BARS - N_TRAIN)},
        o[N_TRAIN:],
        c[N_TRAIN:],
        scale[N_TRAIN:],
        costs,
        PPY,
        50,
        0.95,
        0,
    )["buy_and_hold"]
    assert out["vol_target"]["turnover"] > 10 * out["constant"]["turnover"]
    assert out["vol_target"]["fees_paid"] > 10 * out["constant"]["fees_paid"]


def test_scale_at_t_ignores_every_bar_after_t():
    o, c, t, sizing, scale = sized(True)
    for cut in (N_TRAIN + 5, N_TRAIN + 4000, N_BARS - 200):
        c2 = c.copy()
        c2[cut + 1 :] *= np.exp(np.random.default_rng(cut).normal(0, 3e-3, N_BARS - cut - 1).cumsum())
        s2 = sizing.scale(c2, t)
        np.testing.assert_array_equal(s2[: cut + 1], scale[: cut + 1])
        # positive control: the alteration is material, so a look-ahead would have shown
        assert np.max(np.abs(s2[cut + 1 :] - scale[cut + 1 :])) > 0.1


def test_online_bar_by_bar_scale_matches_offline():
    o, c, t, sizing, scale = sized(True)
    restored = VolSizing.from_dict(json.loads(json.dumps(sizing.to_dict())))  # as stored with a report
    start = N_TRAIN + 3000
    online = np.array([restored.scale_last(c[: k + 1], t[: k + 1]) for k in range(start, start + 400)])
    np.testing.assert_allclose(online, scale[start : start + 400], rtol=0, atol=1e-9)
    # a buffer of exactly ONLINE_BUFFER_BARS is enough
    k = start + 17
    lo = k + 1 - ONLINE_BUFFER_BARS
    assert abs(restored.scale_last(c[lo : k + 1], t[lo : k + 1]) - scale[k]) < 1e-9
    assert online.std() > 0.05  # the comparison is over a scale that moves


def test_bad_inputs_fail_clearly():
    o, c, t, _ = market(True)
    with pytest.raises(EvaluationError, match="more than a week"):
        VolSizing.fit(c[:5000], t[:5000], horizon=60, cap=2.0)
    with pytest.raises(EvaluationError, match="cap"):
        target_for_unit_mean(np.ones(10), 1.0)
    with pytest.raises(EvaluationError, match="missing field"):
        VolSizing.from_dict({"target_rv": 1.0})


def test_rebalancing_band_cuts_the_turnover_and_band_zero_is_the_raw_scale():
    o, c, t, _, scale = sized(True)
    s, p = scale[N_TRAIN:], long_only(N_BARS - N_TRAIN)
    np.testing.assert_array_equal(held_scale(s, p, 0.0), s)
    h = held_scale(s, p, 0.25)
    held_moves = np.count_nonzero(np.diff(h))
    assert 0 < held_moves < 0.2 * np.count_nonzero(np.diff(s))
    # never further than the band from the forecast's scale, except on the bar it resets
    assert np.all(np.abs(s - h) <= 0.25 * h + 1e-15)
    costs = CostConfig(fee_bps=1.0, spread_bps=0.0, slippage_bps=0.0)
    raw, banded = (
        compare_sizing({"bh": p}, o[N_TRAIN:], c[N_TRAIN:], s, costs, PPY, 50, 0.95, 0, band)["bh"]["vol_target"]
        for band in (0.0, 0.25)
    )
    assert banded["turnover"] < 0.3 * raw["turnover"] and banded["fees_paid"] < raw["fees_paid"]
    # a change of the policy's own position resizes at once (it trades anyway)
    flip = np.where(np.arange(s.size) < s.size // 2, 1.0, -1.0)
    k = s.size // 2
    assert held_scale(s, flip, 10.0)[k] == s[k]


def test_online_held_scale_matches_offline():
    """What a live loop does bar by bar (online scale, then `hold_step` with its own state) gives
    the offline applied scale."""
    o, c, t, sizing, scale = sized(True)
    start, n = N_TRAIN + 3000, 400
    pos = np.sign(np.sin(np.arange(N_BARS) / 37.0))  # a policy that changes position now and then
    held, prev, online = 0.0, float("nan"), []
    for k in range(start, start + n):
        raw = sizing.scale_last(c[: k + 1], t[: k + 1])
        held = hold_step(held, prev, float(pos[k]), raw, 0.25)
        online.append(held)
        prev = float(pos[k])
    offline = held_scale(scale[start : start + n], pos[start : start + n], 0.25)
    np.testing.assert_allclose(online, offline, rtol=0, atol=1e-9)
    assert len(set(np.round(online, 12))) > 3  # the held scale moves during the comparison
