"""The order state machine: the legal life of an order, and every illegal move refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ztb_core.live.execution.orders import (
    CANCEL_REQUESTED,
    CANCELLED,
    FILLED,
    NEW,
    OPEN,
    PARTIALLY_FILLED,
    REJECTED,
    SUBMITTED,
    TERMINAL,
    TRANSITIONS,
    UNKNOWN,
    IllegalTransition,
    Order,
    OrderError,
    new_client_id,
)


def make(**kw) -> Order:
    return Order.create("BTC/JPY", kw.pop("side", "buy"), Decimal("0.01"), Decimal("1200000"), **kw)


def test_happy_path_with_partial_fills():
    o = make()
    assert o.state == NEW and o.remaining == Decimal("0.01")
    o = o.transition(SUBMITTED)
    assert o.submitted_ms is not None
    o = o.transition(OPEN, exchange_id="42")
    o = o.with_fills(Decimal("0.004"), Decimal("1200000"))
    assert o.state == PARTIALLY_FILLED and o.remaining == Decimal("0.006")
    o = o.with_fills(Decimal("0.01"), Decimal("1199999"))
    assert o.state == FILLED and o.terminal and o.remaining == 0


def test_cancel_path_and_fill_racing_the_cancel():
    o = make().transition(SUBMITTED).transition(OPEN, exchange_id="1").transition(CANCEL_REQUESTED)
    o = o.with_fills(Decimal("0.002"), Decimal("1"))
    assert o.state == CANCEL_REQUESTED and o.filled == Decimal("0.002")
    o = o.transition(CANCELLED)
    # a fill printed just before the cancel took effect, seen later: recorded, state kept
    late = o.with_fills(Decimal("0.003"), Decimal("1"))
    assert late.state == CANCELLED and late.filled == Decimal("0.003")


@pytest.mark.parametrize(
    "old,new",
    [
        (NEW, OPEN),
        (NEW, FILLED),
        (SUBMITTED, CANCEL_REQUESTED),
        (OPEN, SUBMITTED),
        (FILLED, OPEN),
        (CANCELLED, OPEN),
        (REJECTED, SUBMITTED),
        (OPEN, UNKNOWN),
    ],
)
def test_illegal_transitions_raise(old, new):
    o = Order("c1", "BTC/JPY", "buy", Decimal("1"), Decimal("1"), state=old)
    with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
        o.transition(new)


def test_terminal_states_have_no_exits_and_every_state_is_known():
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
    for targets in TRANSITIONS.values():
        assert targets <= set(TRANSITIONS)
    # an unknown order can be resolved to anything the exchange may have done with it
    assert {OPEN, FILLED, REJECTED, CANCELLED} <= TRANSITIONS[UNKNOWN]


def test_bad_fields_rejected():
    with pytest.raises(OrderError, match="side"):
        Order.create("BTC/JPY", "hold", Decimal("1"), Decimal("1"))  # type: ignore[arg-type]
    with pytest.raises(OrderError, match="amount"):
        Order.create("BTC/JPY", "buy", Decimal("0"), Decimal("1"))
    with pytest.raises(OrderError, match="exceed"):
        make().transition(SUBMITTED).transition(OPEN).with_fills(Decimal("0.02"), Decimal("1"))


def test_client_ids_unique_and_time_ordered():
    ids = [new_client_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert [i.split("-")[1] for i in ids] == sorted(i.split("-")[1] for i in ids)
