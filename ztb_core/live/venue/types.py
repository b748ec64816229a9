"""Values the adapter returns (Decimal, never float, for money): tickers, books, trades, fills, order
acks and statuses, balances, market limits, and the helpers that read them from ccxt replies."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

from .errors import ExchangeCallError


def dec(value: Any) -> Decimal | None:
    """ccxt numbers (floats or strings) as exact Decimals via their shortest repr."""
    if value is None:
        return None
    return Decimal(str(value))


def required(reply: Any, key: str, exchange: str, method: str) -> Any:
    """`reply[key]`, or an ExchangeCallError (kind bad_response) naming the call and the field when
    the exchange left it out: a None here would otherwise surface later as a TypeError on money."""
    value = reply.get(key) if isinstance(reply, dict) else None
    if value is None:
        raise ExchangeCallError(
            f"exchange reply {exchange} {method}: field {key!r} missing", kind="bad_response", method=method
        )
    return value


def required_dec(reply: Any, key: str, exchange: str, method: str) -> Decimal:
    """`required` as an exact Decimal (see `dec`)."""
    return Decimal(str(required(reply, key, exchange, method)))


@dataclass(frozen=True)
class MarketLimits:
    symbol: str
    min_amount: Decimal
    min_cost: Decimal
    amount_step: Decimal
    price_step: Decimal

    def round_amount(self, amount: Decimal) -> Decimal:
        """Down to the amount step (never more than asked)."""
        return (amount / self.amount_step).to_integral_value(rounding=ROUND_DOWN) * self.amount_step

    def round_price(self, price: Decimal, side: str | None = None) -> Decimal:
        """To the price step: a buy rounds down, a sell up (never a worse price than asked)."""
        rounding = {"buy": ROUND_FLOOR, "sell": ROUND_CEILING}.get(side or "", "ROUND_HALF_EVEN")
        return (price / self.price_step).to_integral_value(rounding=rounding) * self.price_step

    def check(self, amount: Decimal, price: Decimal) -> str | None:
        """Why an order of `amount` at `price` is not acceptable, or None."""
        if amount <= 0 or price <= 0:
            return f"amount {amount} and price {price} must be positive"
        if amount % self.amount_step:
            return f"amount {amount} is not a multiple of the amount step {self.amount_step}"
        if price % self.price_step:
            return f"price {price} is not a multiple of the price step {self.price_step}"
        if amount < self.min_amount:
            return f"amount {amount} is below the minimum {self.min_amount}"
        if amount * price < self.min_cost:
            return f"notional {amount * price} is below the minimum {self.min_cost}"
        return None


@dataclass(frozen=True)
class Ticker:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    timestamp_ms: int | None


@dataclass(frozen=True)
class OrderBook:
    symbol: str
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    timestamp_ms: int | None


@dataclass(frozen=True)
class PublicTrade:
    id: str
    timestamp_ms: int
    price: Decimal
    amount: Decimal
    side: str | None


@dataclass(frozen=True)
class ExchangeFill:
    """One of our executions as the exchange reports it (the journal's record is `orders.Fill`)."""

    id: str
    order_id: str | None
    timestamp_ms: int
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str | None
    taker_or_maker: str | None


@dataclass(frozen=True)
class FillSync:
    """Our fills newer than a sync cursor, oldest first; `cursor` marks how far this read went
    (pass it as `after` next time; None: the venue pages by time only)."""

    fills: list[ExchangeFill]
    cursor: str | None


@dataclass(frozen=True)
class OpenOrder:
    exchange_id: str
    symbol: str
    side: str
    price: Decimal
    remaining: Decimal
    timestamp_ms: int | None


@dataclass(frozen=True)
class OrderAck:
    client_id: str
    exchange_id: str
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    sent_at_ms: int
    latency_ms: float


@dataclass(frozen=True)
class OrderStatus:
    exchange_id: str
    status: str  # open | partially_filled | filled | cancelled | unknown
    amount: Decimal | None
    filled: Decimal | None
    remaining: Decimal | None
    price: Decimal | None
    side: str | None


@dataclass(frozen=True)
class Balance:
    free: dict[str, Decimal]
    used: dict[str, Decimal]
    total: dict[str, Decimal]
