"""Risk limits and circuit breakers, with their state kept in the journal so a restart cannot
forget a tripped breaker or reset the day's loss and trade count.

Two kinds of protection:
- **limits** checked on every order: daily loss (default 10,000 JPY), daily trade count (50),
  maximum position (base currency) and notional (quote currency) — an order that would exceed a
  size limit is cut down to what fits; the daily limits block new exposure until the next day;
- **circuit breakers** that latch reduce-only until someone resets them (`reset_breakers`,
  `ztb live --reset-breakers`): consecutive exchange errors, stale market data, a price jump,
  a spread too wide, and the emergency stop-loss (default 5% adverse move from the entry price,
  which also asks the runner to flatten).

Reduce-only (nautilus_trader's REDUCING): orders that increase exposure are denied, orders that
reduce it are allowed, and an exit larger than what can be reduced now is cut down to it (never
refused while something can be reduced). "Reducing" is judged on the FILLED position with every resting order of
ours at its worst case (it may still fill, including orders whose cancel is not confirmed): a sell
reduces only if it fits in the long position left after every resting sell fills, a buy only if
it fits in the short left after every resting buy fills (`exposure.py` holds these bounds as
pure functions, shared with sizing and the order manager). A reducing order can therefore never make
|position| larger or flip its sign, whatever rests.

Exchange health is tracked per API: consecutive failures of the public calls (quotes, bars) and of
the private ones (fills, open orders, orders) are counted apart, and a success of one never resets
the other, so a bot whose fills cannot be read trips the breaker even while quotes flow. With `enabled: false` (`--disable-risk-limits`) nothing is checked; the CLI
prints a loud warning and the run records it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from ...config import ZtbModel
from ..execution.exposure import Exposure, is_reducing, reducible, room
from ..execution.journal import RISK_STATE_KEY, Journal

log = logging.getLogger("ztb.live.risk")

STATE_KEY = RISK_STATE_KEY
BREAKERS = ("consecutive_errors", "stale_data", "price_jump", "spread_too_wide", "stop_loss", "manual")


class RiskConfig(ZtbModel):
    """Limits in force while trading (the CLI banner prints them)."""

    enabled: bool = Field(True, description="false only via --disable-risk-limits (loud warning)")
    daily_loss_limit: Decimal = Field(Decimal("10000"), gt=0, description="Max loss per day, quote currency (JPY)")
    max_trades_per_day: int = Field(
        50, ge=1, description="Orders placed per day; at the limit only reducing orders pass"
    )
    stop_loss_pct: float = Field(0.05, gt=0, lt=1, description="Emergency stop: adverse move from entry, fraction")
    max_position: Decimal = Field(Decimal("0.02"), gt=0, description="Largest absolute position, base currency")
    max_notional: Decimal = Field(Decimal("200000"), gt=0, description="Largest absolute position value, quote")
    max_consecutive_errors: int = Field(5, ge=1, description="Exchange errors in a row that trip the breaker")
    stale_data_s: float = Field(300.0, gt=0, description="Market data older than this trips the breaker, seconds")
    max_price_jump_pct: float = Field(0.05, gt=0, description="Bar-to-bar close move that trips the breaker")
    max_spread_bps: float = Field(50.0, gt=0, description="Bid/ask spread that trips the breaker, bps of mid")
    day_timezone: str = Field("Asia/Tokyo", description="Timezone whose midnight starts a new trading day")

    @field_validator("day_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"an IANA timezone name like Asia/Tokyo, got {value!r}") from None
        return value


@dataclass
class RiskState:
    day: str = ""
    day_start_equity: str | None = None
    # the capital in force when day_start_equity was recorded: the config's `capital` is not a trading
    # result, so a change of it between restarts moves the day's baseline with it
    day_start_capital: str | None = None
    trades_today: int = 0
    daily_pnl: str = "0"
    public_errors: int = 0  # consecutive failures of public calls (quotes, bars)
    private_errors: int = 0  # consecutive failures of private calls (fills, open orders, orders)
    breakers: dict[str, str] = field(default_factory=dict)  # name -> reason (latched)
    daily_halt: str | None = None  # reason the day's limits stopped new exposure

    @property
    def reduce_only(self) -> bool:
        return bool(self.breakers) or self.daily_halt is not None

    @property
    def consecutive_errors(self) -> int:
        return max(self.public_errors, self.private_errors)

    @classmethod
    def load(cls, raw: Any) -> RiskState:
        """From the journal's stored dict; keys of older versions (consecutive_errors) are dropped."""
        if not isinstance(raw, dict):
            return cls()
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RiskDecision:
    allowed: bool
    amount: Decimal
    reason: str | None = None
    reducing: bool = False


class RiskManager:
    """Checks orders against the limits; trips and persists breakers."""

    def __init__(
        self,
        config: RiskConfig,
        journal: Journal,
        clock_ms: Any = None,
        on_trip: Callable[[str, str], None] | None = None,
    ) -> None:
        self.cfg, self.journal = config, journal
        self._clock_ms = clock_ms
        # told once per newly latched breaker or daily halt (the runner turns it into a
        # `breaker_tripped` event, which notifications send): a bot that went reduce-only is news
        self._on_trip = on_trip
        raw = journal.get_state(STATE_KEY)
        self.state = RiskState.load(raw)
        self._roll_day(self._now_ms())

    # ---- bookkeeping ------------------------------------------------------------------------
    def _now_ms(self) -> int:
        if self._clock_ms is not None:
            return int(self._clock_ms())
        return int(datetime.now(UTC).timestamp() * 1000)

    def _day_of(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, ZoneInfo(self.cfg.day_timezone)).strftime("%Y-%m-%d")

    def _day_start_ms(self, ms: int) -> int:
        local = datetime.fromtimestamp(ms / 1000, ZoneInfo(self.cfg.day_timezone))
        return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)

    def trades_today(self) -> int:
        """Orders placed today (risk day), counted from the journal's orders: a kill -9 between a
        placement and a counter update, or an unknown outcome that later resolved as placed, would
        otherwise let the day's limit be exceeded."""
        return self.journal.orders_placed_since(self._day_start_ms(self._now_ms()))

    def _roll_day(self, ms: int) -> None:
        day = self._day_of(ms)
        if day != self.state.day:
            # A new day resets the day's counters, never the latched breakers.
            self.state.day, self.state.trades_today, self.state.daily_pnl = day, 0, "0"
            self.state.day_start_equity, self.state.day_start_capital, self.state.daily_halt = None, None, None
            self.save()

    def save(self) -> None:
        self.journal.set_state(STATE_KEY, asdict(self.state))

    def summary(self) -> dict[str, Any]:
        return {
            "reduce_only": self.state.reduce_only,
            "breakers": dict(self.state.breakers),
            "daily_halt": self.state.daily_halt,
            "daily_pnl": float(Decimal(self.state.daily_pnl)),
            "trades_today": self.trades_today(),
            "consecutive_errors": self.state.consecutive_errors,
            "public_errors": self.state.public_errors,
            "private_errors": self.state.private_errors,
            "enabled": self.cfg.enabled,
        }

    def trip(self, breaker: str, reason: str) -> None:
        if breaker not in BREAKERS:
            raise ValueError(f"unknown breaker {breaker!r}")
        if breaker not in self.state.breakers:
            log.warning("circuit breaker %s tripped: %s -> reduce-only until reset", breaker, reason)
            self.state.breakers[breaker] = reason
            self.save()
            if self._on_trip is not None:
                self._on_trip(breaker, reason)

    def reset_breakers(self) -> list[str]:
        """Clear the latched breakers (a person decided it is safe); returns the ones cleared."""
        cleared = sorted(self.state.breakers)
        self.state.breakers, self.state.public_errors, self.state.private_errors = {}, 0, 0
        self.save()
        return cleared

    # ---- observations -----------------------------------------------------------------------
    def record_error(self, what: str, api: str = "private") -> None:
        """A failed exchange call of the `public` or `private` API."""
        field_name = _api_field(api)
        count = getattr(self.state, field_name) + 1
        setattr(self.state, field_name, count)
        if self.cfg.enabled and count >= self.cfg.max_consecutive_errors:
            self.trip("consecutive_errors", f"{count} {api} API errors in a row (last: {what})")
        else:
            self.save()

    def record_success(self, api: str = "public") -> None:
        """A successful call resets the count of its own API only."""
        field_name = _api_field(api)
        if getattr(self.state, field_name):
            setattr(self.state, field_name, 0)
            self.save()

    def observe_market(
        self,
        price: Decimal,
        bid: Decimal | None,
        ask: Decimal | None,
        data_age_s: float,
        prev_close: Decimal | None = None,
    ) -> None:
        """Trip the market-data breakers: stale data, price jump, spread too wide."""
        if not self.cfg.enabled:
            return
        if data_age_s > self.cfg.stale_data_s:
            self.trip("stale_data", f"market data is {data_age_s:.0f}s old (limit {self.cfg.stale_data_s:.0f}s)")
        if prev_close is not None and prev_close > 0:
            jump = abs(float(price / prev_close) - 1.0)
            if jump > self.cfg.max_price_jump_pct:
                self.trip(
                    "price_jump",
                    f"price moved {jump:.2%} in one bar ({prev_close} -> {price}; "
                    f"limit {self.cfg.max_price_jump_pct:.2%})",
                )
        if bid is not None and ask is not None and bid > 0 and ask > 0:
            mid = (bid + ask) / 2
            spread_bps = float((ask - bid) / mid) * 10_000
            if spread_bps > self.cfg.max_spread_bps:
                self.trip(
                    "spread_too_wide",
                    f"spread {spread_bps:.1f} bps (bid {bid}, ask {ask}; limit {self.cfg.max_spread_bps:.1f} bps)",
                )

    def update_pnl(
        self,
        equity: Decimal,
        position: Decimal,
        entry_price: Decimal | None,
        price: Decimal,
        capital: Decimal | None = None,
    ) -> bool:
        """Mark the day's P&L; trip the daily loss limit and the emergency stop-loss.
        Returns True when the position must be flattened now (stop-loss).

        The day's P&L is measured from the day's equity at its start, recorded in the journal at the
        first mark of the day (the first sync), together with the `capital` then in force: `equity`
        includes the configured capital, so raising it between restarts must not read as a gain."""
        self._roll_day(self._now_ms())
        before = (
            self.state.day_start_equity,
            self.state.day_start_capital,
            self.state.daily_halt,
            len(self.state.breakers),
        )
        if self.state.day_start_equity is None:
            self.state.day_start_equity = str(equity)
        if capital is not None and self.state.day_start_capital is None:
            # first mark of the day, or a baseline recorded before the capital was kept with it
            self.state.day_start_capital = str(capital)
        start = Decimal(self.state.day_start_equity)
        if capital is not None and self.state.day_start_capital is not None:
            start += capital - Decimal(self.state.day_start_capital)
        pnl = equity - start
        self.state.daily_pnl = str(pnl)
        flatten = False
        if self.cfg.enabled:
            if pnl <= -self.cfg.daily_loss_limit and self.state.daily_halt is None:
                self.state.daily_halt = f"daily loss {-pnl:.0f} reached the limit {self.cfg.daily_loss_limit}"
                log.warning("risk: %s -> reduce-only for the rest of the day", self.state.daily_halt)
                if self._on_trip is not None:
                    self._on_trip("daily_loss_limit", self.state.daily_halt)
            if position != 0 and entry_price is not None and entry_price > 0:
                adverse = (
                    float((entry_price - price) / entry_price)
                    if position > 0
                    else float((price - entry_price) / entry_price)
                )
                if adverse >= self.cfg.stop_loss_pct:
                    self.trip(
                        "stop_loss",
                        f"price {price} is {adverse:.2%} against the entry {entry_price} "
                        f"(limit {self.cfg.stop_loss_pct:.2%})",
                    )
                    flatten = True
        # the P&L itself is recomputed every bar from day_start_equity: persist only what must survive
        after = (
            self.state.day_start_equity,
            self.state.day_start_capital,
            self.state.daily_halt,
            len(self.state.breakers),
        )
        if after != before:
            self.save()
        return flatten

    # ---- the order check ----------------------------------------------------------------------
    def check_order(
        self,
        side: str,
        amount: Decimal,
        price: Decimal,
        position: Decimal,
        resting_buy: Decimal = Decimal(0),
        resting_sell: Decimal = Decimal(0),
    ) -> RiskDecision:
        """May an order of `amount` on `side` be placed? `position` is the FILLED position;
        `resting_buy`/`resting_sell` the remaining amounts of our orders that may still fill (every
        live order: open, cancelling, unknown). Reducing orders (see the module docstring) pass in
        reduce-only; anything larger is denied there (it would add exposure). Other orders face
        every limit, sized against the worst case of the resting orders, and are cut to fit."""
        self._roll_day(self._now_ms())
        exposure = Exposure(position, resting_buy, resting_sell)
        most = reducible(exposure, side)
        if is_reducing(exposure, side, amount) or not self.cfg.enabled:
            return RiskDecision(True, amount, None, is_reducing(exposure, side, amount))
        halted = self._halt_reason()
        if halted is not None:
            if most > 0:
                # an exit larger than what can be reduced now (a resting order on the other side whose
                # cancel is not confirmed, say) is cut to what reduces in every case, not refused
                return RiskDecision(True, most, f"{halted}: cut from {amount} to the reducible {most}", True)
            return RiskDecision(False, Decimal(0), f"{halted} (reducible now: {most})")
        trades = self.trades_today()
        if trades >= self.cfg.max_trades_per_day:
            return RiskDecision(
                False, Decimal(0), f"daily trade count {trades} reached the limit {self.cfg.max_trades_per_day}"
            )
        # the largest position that fits both size limits, against the worst case on this side
        cap = min(self.cfg.max_position, self.cfg.max_notional / price)
        allowed = min(amount, room(exposure, side, cap))
        if allowed <= 0:
            return RiskDecision(
                False,
                Decimal(0),
                f"position limit: |position| would exceed {cap:.8f} "
                f"(max_position {self.cfg.max_position}, max_notional "
                f"{self.cfg.max_notional} at {price}; filled {position}, resting buy {resting_buy} "
                f"sell {resting_sell})",
            )
        reason = None if allowed == amount else f"cut from {amount} to {allowed} by the position limit"
        return RiskDecision(True, allowed, reason)

    def _halt_reason(self) -> str | None:
        if self.state.breakers:
            return f"reduce-only: circuit breaker(s) {', '.join(sorted(self.state.breakers))} tripped"
        if self.state.daily_halt:
            return f"reduce-only: {self.state.daily_halt}"
        return None

    def record_trade(self) -> None:
        """Refresh the day's count shown in the summary (the limit itself reads the journal)."""
        self._roll_day(self._now_ms())
        self.state.trades_today = self.trades_today()
        self.save()


def _api_field(api: str) -> str:
    if api not in ("public", "private"):
        raise ValueError(f"api must be public or private, got {api!r}")
    return f"{api}_errors"


def entry_price(fills: list) -> Decimal | None:
    """Average entry price of the position the fills leave (average cost, reset when flat or flipped)."""
    pos, cost = Decimal(0), Decimal(0)
    for f in fills:
        signed = f.amount if f.side == "buy" else -f.amount
        if pos == 0 or (pos > 0) == (signed > 0):
            pos, cost = pos + signed, cost + signed * f.price
            continue
        if abs(signed) <= abs(pos):  # reducing keeps the average entry
            avg = cost / pos
            pos += signed
            cost = avg * pos
        else:  # flipped through zero: the remainder opens at this fill's price
            pos += signed
            cost = pos * f.price
    return (cost / pos) if pos != 0 else None
