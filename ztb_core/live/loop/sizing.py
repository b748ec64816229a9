"""From a policy's target position (a fraction of equity, -1..1) to an exchange order.

Leverage applied to the policy's signal is the smaller of
- volatility targeting: `target_vol / realised_vol` (both annualised; realised from recent bar
  log returns), so the position's risk stays near `target_vol` (default 10%) whatever the market;
- a half-Kelly cap: `kelly_fraction * expected_sharpe / realised_vol` (Kelly leverage is mu/sigma^2
  = SR/sigma; betting half of it gives up little growth for much less drawdown);
- `max_leverage` (1 on a spot account).

With the checkpoint's volatility forecaster (`sizing.vol_forecast`, `ForecastSizing`) the first
term is the scale `ztb eval` applies offline instead: min(sqrt(target / forecast), cap) from the
HAR-RV + seasonality forecast fitted on the agent's train split, held within the same rebalancing
band, computed from the live bar buffer (the same value as offline on the same bars); the half-Kelly
cap and `max_leverage` still bound it, and the risk manager's position limits bound the order.
Without a forecaster (an older checkpoint, the SMA policy) it says so and sizes on realised
volatility, or refuses to start when `vol_forecast: required`.

Everything that becomes an order is Decimal: quantities are rounded toward zero to the market's
amount step and prices to its tick; an order below the minimum amount or notional is skipped with
the reason logged, never rounded up into a bigger trade than asked.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError
from ...evaluation.vol_sizing import ONLINE_BUFFER_BARS, OnlineScale, TrainedVolSizing
from ..execution.exposure import Exposure, order_toward
from ..execution.orders import Side
from ..venue.types import MarketLimits
from .sizing_config import SizingConfig

log = logging.getLogger("ztb.live.sizing")


@dataclass(frozen=True)
class SizedOrder:
    side: Side
    amount: Decimal
    price: Decimal
    target: Decimal  # target position (base currency) this order works towards


@dataclass(frozen=True)
class Skip:
    reason: str


def annualised_vol(close: np.ndarray, periods_per_year: float, lookback: int) -> float:
    """Annualised standard deviation of the last `lookback` bar log returns (nan with < 2 returns)."""
    close = np.asarray(close, dtype=np.float64)[-(lookback + 1) :]
    if len(close) < 3:
        return float("nan")
    r = np.diff(np.log(close))
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def leverage(cfg: SizingConfig, vol: float, scale: float | None = None) -> float:
    """The leverage applied to a unit signal: min(vol target, half-Kelly, max), where the vol target
    is `scale` (the forecaster's, see `ForecastSizing`) when given, else target_vol / realised vol."""
    vol = max(vol if math.isfinite(vol) else cfg.vol_floor, cfg.vol_floor)
    vol_target = cfg.target_vol / vol if scale is None else max(float(scale), 0.0)
    kelly = cfg.kelly_fraction * cfg.expected_sharpe / vol
    return min(vol_target, kelly, cfg.max_leverage)


class VolForecastWarmup(DataError):
    """The bar buffer is too short for the volatility forecast (no decision yet)."""


class ForecastSizing:
    """The checkpoint's volatility forecaster applied on each decision: `step(bars, signal)` is the
    scale at the buffer's last bar, held within the band as `ztb eval` holds it (`OnlineScale`).

    Until the buffer holds a week of bars there is no forecast: `strict` (vol_forecast: required)
    makes that a warm-up (no decision); otherwise `step` returns None, so that bar is sized on
    realised volatility, and says so once."""

    #: M1 bars the forecast at the last bar reads (a week and the close before it)
    need_bars = ONLINE_BUFFER_BARS

    def __init__(self, trained: TrainedVolSizing, strict: bool = False) -> None:
        self.trained, self.strict = trained, strict
        self.online = OnlineScale(trained.sizing, trained.band)
        self.raw = math.nan  # the forecast's own scale at the last step (before the band)
        self._told_warmup = False

    @property
    def warmup_bars(self) -> int:
        """Bars needed before the first decision: a week when strict, else none (realised vol meanwhile)."""
        return self.need_bars if self.strict else 0

    def _arrays(self, bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if len(bars) < self.need_bars:
            raise VolForecastWarmup(
                f"volatility sizing: {len(bars)} bars in the buffer, the forecast needs {self.need_bars} "
                "(a week of M1 bars: more history / warm-up)"
            )
        tail = bars.iloc[-self.need_bars :]
        times = np.asarray(pd.DatetimeIndex(tail.index).as_unit("ns").asi8, np.int64)
        return tail["close"].to_numpy(np.float64), times

    def step(self, bars: pd.DataFrame, signal: float) -> float | None:
        """The applied scale for the decision `signal` made at the buffer's last bar (advances the
        band's state); None while there is no forecast and not strict."""
        try:
            close, times = self._arrays(bars)
        except VolForecastWarmup as exc:
            if self.strict:
                raise
            if not self._told_warmup:
                log.warning("%s; sizing on realised volatility until then", exc)
                self._told_warmup = True
            return None
        self.raw, held = self.online.step(close, times, signal)
        if not self.raw > 0:  # cannot happen on a week of finite bars; the band restarts from the next forecast
            raise VolForecastWarmup("volatility sizing: no forecast at the last bar")
        if self._told_warmup:
            log.info("volatility sizing: a week of bars in the buffer, the forecaster sizes from now on")
            self._told_warmup = False
        return held

    def peek(self, bars: pd.DataFrame) -> float | None:
        """The forecast's scale at the last bar without moving the band's state; None before a week of bars."""
        try:
            close, times = self._arrays(bars)
        except VolForecastWarmup:
            return None
        raw = self.trained.sizing.scale_last(close, times)
        return raw if raw > 0 else None


def forecast_sizing(cfg: SizingConfig, policy: object) -> tuple[ForecastSizing | None, str]:
    """(the sizing from the policy's volatility forecaster or None, what live says about it, also
    logged: a warning when an agent has none). A trained agent exposes `vol_sizing` (and
    `vol_sizing_absent`: why it has none); `required` without one is a ConfigError."""
    name = getattr(policy, "name", "the policy")
    trained = getattr(policy, "vol_sizing", None)
    if cfg.vol_forecast == "off":
        note = "volatility forecaster not used (sizing.vol_forecast is off): sizing on realised volatility"
        log.info(note)
        return None, note
    if trained is None:
        absent = getattr(policy, "vol_sizing_absent", None)
        why = absent or f"{name} has no volatility forecaster (only a trained agent's checkpoint carries one)"
        if cfg.vol_forecast == "required":
            raise ConfigError(
                f"sizing.vol_forecast is required but {why}; train a new run (its checkpoints store one) or set "
                "sizing.vol_forecast: auto"
            )
        note = f"volatility sizing is off: {why}; sizing on realised volatility (sizing.target_vol)"
        (log.warning if absent else log.info)(note)
        return None, note
    note = f"volatility sizing from the checkpoint: {trained.describe()}"
    log.info(note)
    return ForecastSizing(trained, strict=cfg.vol_forecast == "required"), note


def _to_dec(x: float, places: str = "0.000000000001") -> Decimal:
    return Decimal(repr(float(x))).quantize(Decimal(places))


def target_position(
    cfg: SizingConfig,
    signal: float,
    equity: Decimal,
    price: Decimal,
    vol: float,
    limits: MarketLimits,
    scale: float | None = None,
) -> Decimal:
    """Target position in base units for `signal` (clipped to -1..1, or 0..1 without shorts);
    `scale`: the volatility forecaster's (see `leverage`)."""
    lo = -1.0 if cfg.allow_short else 0.0
    s = min(max(float(signal), lo), 1.0) if math.isfinite(signal) else 0.0
    value = equity * _to_dec(s * leverage(cfg, vol, scale))
    qty = value / price
    return limits.round_amount(abs(qty)) * (1 if qty >= 0 else -1)


def limit_price(
    cfg: SizingConfig, side: str, bid: Decimal | None, ask: Decimal | None, last: Decimal, limits: MarketLimits
) -> Decimal:
    """A limit price `aggressiveness_bps` beyond the touch, on the tick grid. Marketable settings
    (>= 0) never end up inside the touch after rounding; negative ones rest passively."""
    k = _to_dec(cfg.aggressiveness_bps / 10_000.0)
    if side == "buy":
        touch = ask if ask is not None and ask > 0 else last
        raw = limits.round_price(touch * (1 + k), "buy")
        return max(raw, limits.round_price(touch, "sell")) if k >= 0 else raw  # at least the ask, on a tick
    touch = bid if bid is not None and bid > 0 else last
    raw = limits.round_price(touch * (1 - k), "sell")
    return min(raw, limits.round_price(touch, "buy")) if k >= 0 else raw


def size_order(
    cfg: SizingConfig,
    signal: float,
    equity: Decimal,
    position: Decimal,
    pending: Decimal | tuple[Decimal, Decimal],
    bid: Decimal | None,
    ask: Decimal | None,
    last: Decimal,
    vol: float,
    limits: MarketLimits,
    scale: float | None = None,
) -> SizedOrder | Skip:
    """The order moving the FILLED `position` toward the target for `signal`, or why there is none.

    `pending` is what may still fill: (buy, sell) remaining amounts of every live order (open,
    cancelling, unknown), or one signed amount. It is never netted as if filled: a buy goes only as
    far as the worst-case long bound allows, a sell only as far as the worst-case short bound
    (`exposure.order_toward`), so a resting buy whose cancel is stuck cannot turn a flat target into a
    sell while flat."""
    if equity <= 0:
        return Skip(f"equity {equity} is not positive")
    target = target_position(cfg, signal, equity, last, vol, limits, scale)
    if isinstance(pending, tuple):
        buying, selling = pending
    else:
        buying, selling = max(pending, Decimal(0)), max(-pending, Decimal(0))
    exposure = Exposure(position, buying, selling)
    move = order_toward(exposure, target)
    if move is None:
        if buying or selling:
            return Skip(
                f"target {target} is within reach of the live orders (position {position} +{buying} -{selling})"
            )
        return Skip("at target")
    side: Side = "buy" if move[0] == "buy" else "sell"
    delta = move[1]
    if target != 0 and delta < abs(target) * _to_dec(cfg.min_change_fraction):
        return Skip(f"change {delta} is below min_change_fraction of the target {target}")
    amount = limits.round_amount(delta)
    price = limit_price(cfg, side, bid, ask, last, limits)
    if amount <= 0:
        return Skip(f"change {delta} rounds to 0 at the amount step {limits.amount_step}")
    if amount < limits.min_amount:
        return Skip(f"amount {amount} is below the market minimum {limits.min_amount}")
    if amount * price < limits.min_cost:
        return Skip(
            f"notional {(amount * price).quantize(Decimal('0.01'), ROUND_DOWN)} is below the market "
            f"minimum {limits.min_cost}"
        )
    return SizedOrder(side, amount, price, target)
