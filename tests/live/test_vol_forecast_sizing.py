"""Live sizing with the checkpoint's volatility forecaster: the scale the live loop applies from its
rolling bar buffer equals the one `ztb eval` applies offline on the same bars (band included), the
caps and limits still bound the order, and a policy without a forecaster is said so (or refused)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from ztb_core.errors import ConfigError
from ztb_core.evaluation.vol_sizing import ONLINE_BUFFER_BARS, TrainedVolSizing, VolSizing, held_scale
from ztb_core.evaluation.volatility import NS_PER_MINUTE
from ztb_core.live.loop.sizing import (
    ForecastSizing,
    SizingConfig,
    VolForecastWarmup,
    forecast_sizing,
    leverage,
    size_order,
    target_position,
)
from ztb_core.live.venue.types import MarketLimits

T0 = np.datetime64("2016-01-04T00:00", "ns").astype(np.int64)  # a Monday
N_TRAIN = 3 * 7200
N_BARS = N_TRAIN + ONLINE_BUFFER_BARS + 400
#: what the runner keeps: a few bars more than the forecast reads (a longer buffer gives the same value)
BUFFER = ONLINE_BUFFER_BARS + 50
LIM = MarketLimits(
    "BTC/JPY",
    min_amount=Decimal("0.005"),
    min_cost=Decimal("500"),
    amount_step=Decimal("0.0001"),
    price_step=Decimal("5"),
)


def market(seed: int = 0) -> pd.DataFrame:
    """M1 bars whose volatility switches between a quiet and a 4x louder state lasting about a day,
    with a weekend gap, so the scale moves and the gap rule is exercised."""
    rng = np.random.default_rng(seed)
    sigma = np.where(np.cumsum(rng.random(N_BARS) < 1.0 / 1440) % 2 == 1, 4e-4, 1e-4)
    close = 100.0 * np.exp(np.cumsum(sigma * rng.standard_normal(N_BARS)))
    minutes = np.arange(N_BARS, dtype=np.int64)
    minutes[N_TRAIN + 3000 :] += 2 * 1440  # a weekend inside the bars the live loop sizes
    idx = pd.to_datetime(T0 + minutes * NS_PER_MINUTE, utc=True)
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)


def times_ns(bars: pd.DataFrame) -> np.ndarray:
    return np.asarray(bars.index.as_unit("ns").asi8, np.int64)


class _Agent:
    """What the runner reads from a trained agent policy."""

    def __init__(self, trained: TrainedVolSizing | None, absent: str | None = None) -> None:
        self.name, self.vol_sizing, self.vol_sizing_absent = "agent(test@1)", trained, absent


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return market()


@pytest.fixture(scope="module")
def trained(bars) -> TrainedVolSizing:
    train = bars.iloc[:N_TRAIN]
    fitted = TrainedVolSizing.fit(train["close"].to_numpy(), times_ns(train), horizon=60, cap=2.0, band=0.25)
    return TrainedVolSizing.from_state(json.loads(json.dumps(fitted.to_state())))  # as a checkpoint stores it


def live_scales(trained: TrainedVolSizing, bars: pd.DataFrame, positions: np.ndarray, start: int) -> np.ndarray:
    """The live path: the runner's rolling buffer after each bar closes, the policy's decision at it."""
    sizing, _ = forecast_sizing(SizingConfig(), _Agent(trained))
    assert isinstance(sizing, ForecastSizing)
    out = []
    for t in range(start, len(bars)):
        out.append(sizing.step(bars.iloc[max(0, t + 1 - BUFFER) : t + 1], float(positions[t])))
    return np.asarray(out, np.float64)


def backtest_scales(
    sizing: VolSizing, band: float, bars: pd.DataFrame, positions: np.ndarray, start: int
) -> np.ndarray:
    """The backtest path (`ztb eval`): the scale over the whole history, then the band over the evaluated bars."""
    scale = sizing.scale(bars["close"].to_numpy(), times_ns(bars))
    return held_scale(scale[start:], positions[start:], band)


def test_live_scale_equals_the_backtest_scale_on_the_same_bars(bars, trained):
    positions = np.sign(np.sin(np.arange(N_BARS) / 37.0))  # a policy that changes position now and then
    start = N_TRAIN + ONLINE_BUFFER_BARS  # the live buffer holds a week from here
    live = live_scales(trained, bars, positions, start)
    offline = backtest_scales(trained.sizing, trained.band, bars, positions, start)
    np.testing.assert_allclose(live, offline, rtol=0, atol=1e-9)
    assert np.all(live > 0) and len(set(np.round(live, 9))) > 3  # a scale that moves, band and weekend included
    # positive control: another target variance (a different target vol) gives other scales
    other = TrainedVolSizing(
        VolSizing(trained.sizing.forecaster, trained.sizing.target_rv * 1.5, trained.sizing.cap), trained.band
    )
    moved = live_scales(other, bars, positions, start)
    assert np.max(np.abs(moved - offline)) > 0.05
    # and so does another band
    assert np.max(np.abs(backtest_scales(trained.sizing, 0.0, bars, positions, start) - live)) > 1e-3


def test_the_scale_replaces_the_vol_target_and_the_caps_still_bound_it():
    cfg = SizingConfig(target_vol=0.10, kelly_fraction=0.5, expected_sharpe=1.0, max_leverage=10)
    assert leverage(cfg, 0.20, scale=1.7) == pytest.approx(1.7)  # not target_vol / vol = 0.5
    assert leverage(cfg, 0.20, scale=3.0) == pytest.approx(2.5)  # half Kelly 0.5 * 1 / 0.2
    assert leverage(SizingConfig(max_leverage=1.0), 0.20, scale=2.0) == 1.0  # spot: never above max_leverage
    equity, price = Decimal("100000"), Decimal("1200000")
    spot = SizingConfig(max_leverage=1.0)
    # the scaled target never exceeds max_leverage x equity ...
    capped = target_position(spot, 1.0, equity, price, 0.20, LIM, scale=2.0)
    assert capped * price <= equity and capped == target_position(spot, 1.0, equity, price, 0.20, LIM, scale=1.0)
    # ... positive control: with room under max_leverage the scale does double the target
    roomy = SizingConfig(max_leverage=3.0, kelly_fraction=1.0, expected_sharpe=5.0)
    assert target_position(roomy, 1.0, equity, price, 0.20, LIM, scale=2.0) == LIM.round_amount(2 * equity / price)
    order = size_order(roomy, 1.0, equity, Decimal(0), Decimal(0), None, None, price, 0.20, LIM, scale=0.5)
    assert order.target == LIM.round_amount(Decimal("0.5") * equity / price)


def test_a_policy_without_a_forecaster_is_said_so_or_refused(trained):
    why = "checkpoint step-0000000256.ckpt.zst stores no volatility forecaster (it was saved before checkpoints carried one)"
    old = _Agent(None, why)
    sizing, note = forecast_sizing(SizingConfig(), old)
    assert sizing is None and "volatility sizing is off" in note and why in note
    with pytest.raises(ConfigError, match="sizing.vol_forecast is required but checkpoint step-0000000256"):
        forecast_sizing(SizingConfig(vol_forecast="required"), old)
    # positive controls: the same settings with a forecaster use it; `off` never does
    assert isinstance(forecast_sizing(SizingConfig(vol_forecast="required"), _Agent(trained))[0], ForecastSizing)
    off, note = forecast_sizing(SizingConfig(vol_forecast="off"), _Agent(trained))
    assert off is None and "off" in note
    sma, note = forecast_sizing(SizingConfig(), object())
    assert sma is None and "only a trained agent's checkpoint" in note


def test_before_a_week_of_bars_auto_sizes_on_realised_vol_and_required_waits(bars, trained):
    short = bars.iloc[N_TRAIN : N_TRAIN + ONLINE_BUFFER_BARS - 1]
    auto = ForecastSizing(trained)
    assert auto.step(short, 1.0) is None and auto.warmup_bars == 0
    strict = ForecastSizing(trained, strict=True)
    assert strict.warmup_bars == ONLINE_BUFFER_BARS
    with pytest.raises(VolForecastWarmup, match="a week of M1 bars"):
        strict.step(short, 1.0)
    whole = bars.iloc[N_TRAIN : N_TRAIN + ONLINE_BUFFER_BARS]
    scale = strict.step(whole, 1.0)  # positive control: one bar more and both size with the forecast
    assert scale is not None and scale > 0 and math.isclose(auto.step(whole, 1.0), scale, abs_tol=1e-12)
    assert strict.peek(short) is None and math.isclose(strict.peek(whole), strict.raw, abs_tol=1e-12)
