"""The exposure model's bounds hold whatever our live orders do at the exchange (hypothesis): they
never understate the position, sizing never overshoots its target, a reducing order never grows
|position| nor flips it, and the room left by the limits is never exceeded."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ztb_core.live.execution.exposure import Exposure, exposure_of, is_reducing, order_toward, reducible, room

STEP = Decimal("0.0001")


@dataclass(frozen=True)
class _Live:
    side: str
    remaining: Decimal


amounts = st.integers(0, 500).map(lambda n: n * STEP)
positions = st.integers(-500, 500).map(lambda n: n * STEP)
fractions = st.integers(0, 4).map(lambda n: Decimal(n) / 4)  # how much of an order fills at the exchange
orders = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), amounts.filter(bool), fractions), max_size=6)


def exchange_position(position: Decimal, live: list[tuple[str, Decimal, Decimal]]) -> Decimal:
    """Where the exchange ends when each live order fills the given fraction of what remains."""
    return position + sum(((a * f) if s == "buy" else -(a * f) for s, a, f in live), Decimal(0))


@settings(max_examples=300, deadline=None)
@given(positions, orders)
def test_bounds_never_understate_the_exchange_position(position, live):
    e = exposure_of(position, [_Live(s, a) for s, a, _ in live])
    assert e.short_bound <= exchange_position(position, live) <= e.long_bound
    assert abs(exchange_position(position, live)) <= e.worst_abs


@settings(max_examples=300, deadline=None)
@given(positions, orders, positions, fractions)
def test_sizing_never_overshoots_the_target_whatever_fills(position, live, target, own_fill):
    e = exposure_of(position, [_Live(s, a) for s, a, _ in live])
    move = order_toward(e, target)
    if move is None:
        assert e.short_bound <= target <= e.long_bound
        return
    side, amount = move
    assert amount > 0
    final = exchange_position(position, [*live, (side, amount, own_fill)])
    # a buy never takes the position above the target, a sell never below, in any fill combination
    assert final <= target if side == "buy" else final >= target


@settings(max_examples=300, deadline=None)
@given(positions, orders, st.sampled_from(["buy", "sell"]), amounts.filter(bool), fractions)
def test_a_reducing_order_never_grows_nor_flips_the_position(position, live, side, amount, own_fill):
    e = exposure_of(position, [_Live(s, a) for s, a, _ in live])
    if not is_reducing(e, side, amount):
        assert amount > reducible(e, side)
        return
    before = exchange_position(position, live)
    after = exchange_position(position, [*live, (side, amount, own_fill)])
    assert abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0))


@settings(max_examples=300, deadline=None)
@given(positions, orders, st.sampled_from(["buy", "sell"]), st.integers(1, 600).map(lambda n: n * STEP), fractions)
def test_room_keeps_every_reachable_position_within_the_cap(position, live, side, cap, own_fill):
    e = exposure_of(position, [_Live(s, a) for s, a, _ in live])
    if e.worst_abs > cap:
        return  # already beyond the cap: room only promises not to add on this side
    r = room(e, side, cap)
    if r > 0:
        assert abs(exchange_position(position, [*live, (side, r, own_fill)])) <= cap


def test_a_stuck_resting_buy_is_never_netted_as_filled():
    """The defect's case, flat with a buy of 0.02 whose cancel keeps failing and a target of 0: the
    old netting (target - position - pending = -0.02) sold while flat; the bounds place nothing."""
    e = Exposure(Decimal(0), buying=Decimal("0.02"))
    assert order_toward(e, Decimal(0)) is None
    netted = Decimal(0) - e.position - e.buying  # positive control: the old rule's answer
    assert netted == Decimal("-0.02")
    # long 0.01 filled, the rest (0.01) of the buy stuck: the exit is the filled 0.01, not 0.02
    assert order_toward(Exposure(Decimal("0.01"), buying=Decimal("0.01")), Decimal(0)) == ("sell", Decimal("0.01"))
