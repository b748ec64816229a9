"""Sizing: volatility target, half-Kelly cap, Decimal rounding to the market grid, minimums."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from ztb_core.live.loop.sizing import (
    SizedOrder,
    SizingConfig,
    Skip,
    annualised_vol,
    leverage,
    limit_price,
    size_order,
    target_position,
)
from ztb_core.live.venue.types import MarketLimits

LIM = MarketLimits(
    "BTC/JPY",
    min_amount=Decimal("0.005"),
    min_cost=Decimal("500"),
    amount_step=Decimal("0.0001"),
    price_step=Decimal("5"),
)
P = Decimal("1200000")


def test_leverage_is_min_of_vol_target_half_kelly_and_cap():
    cfg = SizingConfig(target_vol=0.10, kelly_fraction=0.5, expected_sharpe=1.0, max_leverage=10)
    assert leverage(cfg, 0.20) == pytest.approx(0.5)  # vol target 0.5 < half Kelly 2.5
    cfg2 = SizingConfig(target_vol=0.10, kelly_fraction=0.5, expected_sharpe=0.1, max_leverage=10)
    assert leverage(cfg2, 0.20) == pytest.approx(0.25)  # half Kelly 0.25 < vol target 0.5
    assert leverage(SizingConfig(max_leverage=1.0), 0.01) == 1.0  # low vol: capped
    assert leverage(SizingConfig(vol_floor=0.05), float("nan")) == pytest.approx(1.0)  # no vol yet: the floor


def test_realised_vol_annualises():
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 5000)))
    assert annualised_vol(close, 525600, 4000) == pytest.approx(0.001 * math.sqrt(525600), rel=0.05)
    assert math.isnan(annualised_vol(close[:2], 525600, 10))


def test_target_rounds_toward_zero_on_the_amount_step():
    cfg = SizingConfig(target_vol=0.10, max_leverage=1.0)
    q = target_position(cfg, 1.0, Decimal("100000"), P, 0.2, LIM)
    # 100000 * 0.5 / 1.2M = 0.041666.. -> 0.0416
    assert q == Decimal("0.0416") and isinstance(q, Decimal)
    assert target_position(cfg, -1.0, Decimal("100000"), P, 0.2, LIM) == 0  # no shorts on spot
    short = SizingConfig(allow_short=True)
    assert target_position(short, -1.0, Decimal("100000"), P, 0.2, LIM) == Decimal("-0.0416")


def test_order_prices_are_marketable_and_on_ticks():
    cfg = SizingConfig(aggressiveness_bps=5)
    buy = limit_price(cfg, "buy", Decimal("1199990"), Decimal("1200003"), P, LIM)
    sell = limit_price(cfg, "sell", Decimal("1199990"), Decimal("1200003"), P, LIM)
    assert buy % 5 == 0 and sell % 5 == 0
    assert buy >= Decimal("1200003") and buy <= Decimal("1200003") * Decimal("1.0005")
    assert sell <= Decimal("1199990") and sell >= Decimal("1199990") * Decimal("0.9995")


def test_size_order_moves_toward_target_counting_pending():
    cfg = SizingConfig(max_leverage=1.0, min_change_fraction=0.0)
    o = size_order(cfg, 1.0, Decimal("100000"), Decimal("0.01"), Decimal("0.0016"), None, None, P, 0.2, LIM)
    assert isinstance(o, SizedOrder) and o.side == "buy" and o.amount == Decimal("0.0300")
    flat = size_order(cfg, 0.0, Decimal("100000"), Decimal("0.02"), Decimal("0"), None, None, P, 0.2, LIM)
    assert isinstance(flat, SizedOrder) and flat.side == "sell" and flat.amount == Decimal("0.02")


@pytest.mark.parametrize(
    "equity,position,why",
    [
        (Decimal("100000"), Decimal("0.0416"), "at target"),
        (Decimal("100000"), Decimal("0.040"), "below the market minimum 0.005"),  # 0.0016 BTC < min amount
        (Decimal("-5"), Decimal("0"), "not positive"),
    ],
)
def test_small_orders_are_skipped_with_a_reason(equity, position, why):
    cfg = SizingConfig(max_leverage=1.0, min_change_fraction=0.0)
    out = size_order(cfg, 1.0, equity, position, Decimal(0), None, None, P, 0.2, LIM)
    assert isinstance(out, Skip) and why in out.reason


def test_min_notional_skip():
    lim = MarketLimits("X/JPY", Decimal("0.001"), Decimal("5000"), Decimal("0.001"), Decimal("1"))
    out = size_order(
        SizingConfig(min_change_fraction=0.0),
        1.0,
        Decimal("3000"),
        Decimal(0),
        Decimal(0),
        None,
        None,
        Decimal("1000"),
        0.2,
        lim,
    )
    assert isinstance(out, Skip) and "notional" in out.reason and "5000" in out.reason
