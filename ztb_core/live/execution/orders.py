r"""The order state machine and our own client order ids.

Coincheck and zaif accept no client order id, so every order gets ours (`new_client_id`) and the
journal maps it to the exchange id once known. States and the moves between them:

    new -> submitted -> open -> partially_filled -> filled
                     \-> unknown (placement outcome not known: resolved by reconciliation)
    open | partially_filled -> cancel_requested -> cancelled
    rejected, expired: the exchange refused or dropped the order

`filled`, `cancelled`, `rejected` and `expired` are terminal. Any other move raises
`IllegalTransition`, so a bug cannot silently resurrect a cancelled order or lose a fill.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from ...errors import ZtbError

NEW, SUBMITTED, OPEN, PARTIALLY_FILLED, FILLED = "new", "submitted", "open", "partially_filled", "filled"
CANCEL_REQUESTED, CANCELLED, REJECTED, EXPIRED, UNKNOWN = (
    "cancel_requested",
    "cancelled",
    "rejected",
    "expired",
    "unknown",
)

STATES: tuple[str, ...] = (
    NEW,
    SUBMITTED,
    OPEN,
    PARTIALLY_FILLED,
    FILLED,
    CANCEL_REQUESTED,
    CANCELLED,
    REJECTED,
    EXPIRED,
    UNKNOWN,
)
TERMINAL: frozenset[str] = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})
#: states in which the order may rest at the exchange (counted as pending exposure)
LIVE: frozenset[str] = frozenset({SUBMITTED, OPEN, PARTIALLY_FILLED, CANCEL_REQUESTED, UNKNOWN})
#: states whose exchange outcome we do not know: no new order may be placed while one exists
UNRESOLVED: frozenset[str] = frozenset({SUBMITTED, UNKNOWN})

# A fill can arrive at any time while the order rests, including after we asked to cancel it;
# a cancel of an order the exchange already dropped ends in cancelled or expired.
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({SUBMITTED, REJECTED}),
    SUBMITTED: frozenset({OPEN, PARTIALLY_FILLED, FILLED, REJECTED, UNKNOWN, CANCELLED, EXPIRED}),
    UNKNOWN: frozenset({OPEN, PARTIALLY_FILLED, FILLED, REJECTED, CANCELLED, EXPIRED, CANCEL_REQUESTED}),
    OPEN: frozenset({PARTIALLY_FILLED, FILLED, CANCEL_REQUESTED, CANCELLED, EXPIRED}),
    PARTIALLY_FILLED: frozenset({PARTIALLY_FILLED, FILLED, CANCEL_REQUESTED, CANCELLED, EXPIRED}),
    CANCEL_REQUESTED: frozenset({CANCELLED, FILLED, PARTIALLY_FILLED, CANCEL_REQUESTED, EXPIRED, OPEN}),
    FILLED: frozenset(),
    CANCELLED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
}

Side = Literal["buy", "sell"]


class IllegalTransition(ZtbError):
    """An order was asked to move between states the state machine does not connect."""


class OrderError(ZtbError):
    """An order's fields are invalid (side, amount, price)."""


def new_client_id(prefix: str = "ztb") -> str:
    """Our id for an order: sortable by creation time, unique without coordination."""
    return f"{prefix}-{time.time_ns() // 1_000_000:013d}-{secrets.token_hex(4)}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def check_transition(client_id: str, old: str, new: str) -> None:
    if old not in TRANSITIONS:
        raise IllegalTransition(f"order {client_id}: unknown state {old!r}")
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (terminal)"
        raise IllegalTransition(f"order {client_id}: illegal transition {old} -> {new} (allowed from {old}: {allowed})")


@dataclass(frozen=True)
class Order:
    """One limit order as we know it. Immutable: `transition` returns the next version."""

    client_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    state: str = NEW
    exchange_id: str | None = None
    filled: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    created_ms: int = field(default_factory=now_ms)
    submitted_ms: int | None = None
    updated_ms: int = field(default_factory=now_ms)
    reason: str | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise OrderError(f"order {self.client_id}: side must be buy or sell, got {self.side!r}")
        if not isinstance(self.amount, Decimal) or not isinstance(self.price, Decimal):
            raise OrderError(f"order {self.client_id}: amount and price must be Decimal")
        if self.amount <= 0:
            raise OrderError(f"order {self.client_id}: amount must be positive, got {self.amount}")
        if self.price <= 0:
            raise OrderError(f"order {self.client_id}: price must be positive, got {self.price}")
        if self.state not in TRANSITIONS:
            raise OrderError(f"order {self.client_id}: unknown state {self.state!r}")

    @classmethod
    def create(
        cls,
        symbol: str,
        side: Side,
        amount: Decimal,
        price: Decimal,
        reduce_only: bool = False,
        client_id: str | None = None,
    ) -> Order:
        return cls(client_id or new_client_id(), symbol, side, Decimal(amount), Decimal(price), reduce_only=reduce_only)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def remaining(self) -> Decimal:
        return max(self.amount - self.filled, Decimal(0))

    @property
    def signed_remaining(self) -> Decimal:
        return self.remaining if self.side == "buy" else -self.remaining

    def transition(self, state: str, **changes) -> Order:
        """The next version of this order in `state` (validated), with `changes` applied."""
        check_transition(self.client_id, self.state, state)
        if state == SUBMITTED and "submitted_ms" not in changes:
            changes["submitted_ms"] = now_ms()
        return replace(self, state=state, updated_ms=now_ms(), **changes)

    def with_fills(self, filled: Decimal, avg_price: Decimal | None) -> Order:
        """This order with its filled amount updated and the state that amount implies
        (partially_filled / filled); a resting or cancelling order keeps its state otherwise."""
        if filled > self.amount:
            raise OrderError(f"order {self.client_id}: fills of {filled} exceed the amount {self.amount}")
        if filled == self.filled:
            return self
        if self.state in TERMINAL:  # a late fill of a cancelled order: record the amount, keep the state
            return replace(self, filled=filled, avg_price=avg_price, updated_ms=now_ms())
        if filled >= self.amount:
            return self.transition(FILLED, filled=filled, avg_price=avg_price)
        if self.state == CANCEL_REQUESTED:
            return self.transition(CANCEL_REQUESTED, filled=filled, avg_price=avg_price)
        return self.transition(PARTIALLY_FILLED, filled=filled, avg_price=avg_price)


@dataclass(frozen=True)
class Fill:
    """One execution of one of our orders (idempotent by `trade_id`)."""

    trade_id: str
    client_id: str | None
    exchange_order_id: str | None
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    time_ms: int

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.side == "buy" else -self.amount

    @property
    def cash_flow(self) -> Decimal:
        """Quote currency received (+) or paid (-) including the fee."""
        notional = self.amount * self.price
        return (-notional if self.side == "buy" else notional) - self.fee
