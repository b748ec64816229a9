"""The exposure model: what position the account can end up with, whatever our live orders do.

Pure functions over numbers (no journal, no exchange), in the spirit of nautilus_trader's
portfolio/risk engine: the FILLED position plus every order of ours that may still fill gives
worst-case bounds

    short_bound = position - (resting + unknown + cancel-pending sells)
    long_bound  = position + (resting + unknown + cancel-pending buys)

An order whose placement outcome is unknown counts in full (it may rest or have filled at the
exchange); an order whose cancel is not confirmed counts at its remaining amount (it may still
fill). Nothing is ever counted as if it had filled: the bounds are what the exchange position can
be, not a guess of it. Limits, reduce-only and sizing all read these bounds, so a stuck cancel or a
lost placement response can make the bot more careful, never make it trade against a position it
does not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

ZERO = Decimal(0)


class LiveOrder(Protocol):
    """The fields of a journal order the model reads."""

    @property
    def side(self) -> str: ...

    @property
    def remaining(self) -> Decimal: ...


@dataclass(frozen=True)
class Exposure:
    """Filled position and the remaining amounts that may still fill, per side (all >= 0)."""

    position: Decimal
    buying: Decimal = ZERO
    selling: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.buying < 0 or self.selling < 0:
            raise ValueError(f"resting amounts must be >= 0, got buy {self.buying} sell {self.selling}")

    @property
    def long_bound(self) -> Decimal:
        """The largest position reachable: every buy of ours fills, no sell does."""
        return self.position + self.buying

    @property
    def short_bound(self) -> Decimal:
        """The smallest position reachable: every sell of ours fills, no buy does."""
        return self.position - self.selling

    @property
    def worst_abs(self) -> Decimal:
        """The largest |position| reachable."""
        return max(abs(self.long_bound), abs(self.short_bound))


def exposure_of(position: Decimal, orders: Iterable[LiveOrder]) -> Exposure:
    """Bounds from the filled position and every order that may still fill (open, partially filled,
    cancel requested, submitted, unknown: the caller passes the journal's live orders)."""
    buying = selling = ZERO
    for o in orders:
        if o.side == "buy":
            buying += o.remaining
        else:
            selling += o.remaining
    return Exposure(Decimal(position), buying, selling)


def reducible(exposure: Exposure, side: str) -> Decimal:
    """The largest order on `side` that can only reduce |position| whatever else fills: a sell never
    takes the short bound below zero, a buy never takes the long bound above zero."""
    if side == "sell":
        return max(exposure.short_bound, ZERO)
    if side == "buy":
        return max(-exposure.long_bound, ZERO)
    raise ValueError(f"side must be buy or sell, got {side!r}")


def is_reducing(exposure: Exposure, side: str, amount: Decimal) -> bool:
    """Does an order of `amount` on `side` only ever reduce |position| (in every fill combination)?"""
    return ZERO < amount <= reducible(exposure, side)


def after(exposure: Exposure, side: str, amount: Decimal) -> Exposure:
    """The bounds once an order of `amount` on `side` is live too."""
    if side == "buy":
        return Exposure(exposure.position, exposure.buying + amount, exposure.selling)
    return Exposure(exposure.position, exposure.buying, exposure.selling + amount)


def room(exposure: Exposure, side: str, cap: Decimal) -> Decimal:
    """The largest order on `side` that keeps every reachable |position| within `cap` (0 if none)."""
    # a buy's fills only raise the long bound (the short bound is the case where it never fills)
    if side == "buy":
        return max(cap - exposure.long_bound, ZERO)
    return max(cap + exposure.short_bound, ZERO)


def order_toward(exposure: Exposure, target: Decimal) -> tuple[str, Decimal] | None:
    """The order that moves the position toward `target` without overshooting it in the worst case:
    buy only what takes the long bound up to the target, sell only what takes the short bound down
    to it. Orders that may still fill are never netted as if filled (a resting buy whose cancel is
    stuck does not make a sell while flat). None when the target lies within the bounds."""
    if target > exposure.long_bound:
        return "buy", target - exposure.long_bound
    if target < exposure.short_bound:
        return "sell", exposure.short_bound - target
    return None
