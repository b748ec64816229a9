"""The sizing section of the live config, apart from the sizing logic: the config loads (and the
console reads the live config) without importing the volatility forecaster and its statistics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...config import ZtbModel


class SizingConfig(ZtbModel):
    """How big a target position is in the base currency, and how orders are priced."""

    target_vol: float = Field(0.10, gt=0, le=5, description="Target annualised volatility of the position")
    kelly_fraction: float = Field(0.5, gt=0, le=1, description="Share of the Kelly leverage allowed (0.5 = half Kelly)")
    expected_sharpe: float = Field(1.0, gt=0, description="Annualised Sharpe ratio assumed for the Kelly cap")
    max_leverage: float = Field(1.0, gt=0, le=10, description="Hard cap on |position value| / equity")
    vol_lookback_bars: int = Field(1440, ge=10, description="Bars of log returns in the realised volatility")
    vol_floor: float = Field(0.05, gt=0, description="Realised vol never taken below this (annualised)")
    allow_short: bool = Field(False, description="Allow negative positions (false on a spot account)")
    aggressiveness_bps: float = Field(
        5.0,
        ge=-500,
        le=500,
        description="Limit price beyond the touch, bps (buys "
        "above the ask, sells below the bid); negative = passive, resting inside the book",
    )
    min_change_fraction: float = Field(
        0.05, ge=0, le=1, description="Skip rebalances smaller than this share of the target position"
    )
    vol_forecast: Literal["auto", "required", "off"] = Field(
        "auto",
        description="auto: size with the checkpoint's volatility forecaster when it has one (else say why not and "
        "use target_vol on realised volatility); required: refuse to start without one; off: never",
    )
