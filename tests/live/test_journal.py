"""The SQLite journal and reconciliation against the emulator through the real ccxt client:
write-ahead order records, idempotent fills, unknown outcomes resolved before any new order."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from ztb_core.live.emulator import FaultRule
from ztb_core.live.execution.broker import OrderBlocked, OrderManager
from ztb_core.live.execution.journal import Journal, JournalError
from ztb_core.live.execution.orders import CANCELLED, FILLED, NEW, OPEN, REJECTED, SUBMITTED, UNKNOWN, Fill, Order

AMOUNT = Decimal("0.01")


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "live.sqlite", "live", "coincheck", "BTC/JPY")
    yield j
    j.close()


def far_bid(adapter) -> Decimal:
    return (adapter.fetch_ticker().last * Decimal("0.95")).quantize(Decimal(1))


def test_wal_full_sync_and_persistence(tmp_path, journal):
    o = journal.record_intent(Order.create("BTC/JPY", "buy", AMOUNT, Decimal("1000000")))
    o = journal.transition(o, SUBMITTED)
    journal.close()
    db = sqlite3.connect(tmp_path / "live.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    j2 = Journal(tmp_path / "live.sqlite", "live", "coincheck", "BTC/JPY")
    assert j2._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    got = j2.get(o.client_id)
    assert got.state == SUBMITTED and got.amount == AMOUNT and isinstance(got.amount, Decimal)
    assert [(t["from_state"], t["to_state"]) for t in j2.transitions(o.client_id)] == [(None, NEW), (NEW, SUBMITTED)]
    assert [x.client_id for x in j2.unresolved()] == [o.client_id]
    j2.close()


def test_stale_writer_and_mode_mismatch_refused(tmp_path, journal):
    o = journal.record_intent(Order.create("BTC/JPY", "buy", AMOUNT, Decimal("1000000")))
    journal.transition(o, SUBMITTED)
    with pytest.raises(JournalError, match="journal holds state submitted"):
        journal.transition(o, REJECTED)  # `o` is the stale (new) version
    with pytest.raises(JournalError, match="mode='live'"):
        Journal(tmp_path / "live.sqlite", "paper", "coincheck", "BTC/JPY")
    with pytest.raises(JournalError, match="already journaled"):
        journal.record_intent(o)


def test_fills_are_idempotent(journal):
    f = Fill("77", "c", "9", "buy", AMOUNT, Decimal("1000000"), Decimal("3"), "JPY", 1)
    assert journal.record_fill(f) and not journal.record_fill(f)
    assert journal.position() == AMOUNT and journal.cash_flow() == Decimal("-10003")


def test_position_and_cash_flow_follow_every_new_fill(tmp_path, journal):
    """The fills are read once per change, not per question: a fill recorded after a read still
    counts at the next one, and a second handle on the same file sees the same totals."""
    buy = Fill("t1", None, None, "buy", Decimal("0.02"), Decimal("100"), Decimal("0.01"), "JPY", 1)
    sell = Fill("t2", None, None, "sell", Decimal("0.005"), Decimal("110"), Decimal("0"), "JPY", 2)
    assert journal.position() == 0 and journal.cash_flow() == 0  # the cache now holds "no fills"
    assert journal.record_fill(buy) and journal.position() == Decimal("0.02")
    assert not journal.record_fill(buy) and journal.position() == Decimal("0.02")  # a repeat changes nothing
    assert journal.record_fill(sell)
    assert journal.position() == Decimal("0.015") and journal.cash_flow() == Decimal("-2.01") + Decimal("0.55")
    assert [f.trade_id for f in journal.fills()] == ["t1", "t2"]
    with Journal(journal.path, "live", "coincheck", "BTC/JPY") as fresh:
        assert fresh.position() == journal.position() and fresh.cash_flow() == journal.cash_flow()


def test_place_cancel_and_fills_through_the_exchange(exchange_adapter, emulator, journal):
    m = OrderManager(exchange_adapter, journal, "BTC/JPY")
    price = far_bid(exchange_adapter)
    o = m.place("buy", AMOUNT, price)
    assert o.state == OPEN and o.exchange_id in {str(i) for i in emulator.state.orders}
    states = [t["to_state"] for t in journal.transitions(o.client_id)]
    assert states == [NEW, SUBMITTED, OPEN]
    assert m.pending() == AMOUNT
    m.cancel_all()
    assert journal.get(o.client_id).state == CANCELLED and m.pending() == 0
    # a marketable buy fills at once; reconciliation records the fill exactly once
    ask = exchange_adapter.fetch_ticker().ask
    o2 = m.place("buy", AMOUNT, ask + 1000)
    for _ in range(2):
        m.reconcile()
    assert journal.get(o2.client_id).state == FILLED
    assert len(journal.fills(o2.client_id)) == 1 and journal.position() == AMOUNT


def test_response_lost_is_resolved_to_the_placed_order(exchange_adapter, emulator, journal):
    emulator.add_fault(FaultRule(kind="response_lost", endpoint="create_order", hang_ms=10))
    m = OrderManager(exchange_adapter, journal, "BTC/JPY")
    price = far_bid(exchange_adapter)
    o = m.place("buy", AMOUNT, price)
    assert o.state == UNKNOWN and len(emulator.state.orders) == 1  # placed, answer lost
    o2 = m.place("buy", AMOUNT, price - 1000)  # resolves the first one before sending
    first = journal.get(o.client_id)
    assert first.state == OPEN and first.exchange_id == str(next(iter(emulator.state.orders)))
    assert o2.state == OPEN and len(emulator.state.orders) == 2
    ev = [t["detail"] for t in journal.transitions(o.client_id) if t["to_state"] == OPEN]
    assert "matched" in ev[0]


def test_timed_out_order_never_placed_is_ruled_out_after_grace(exchange_adapter, emulator, journal):
    emulator.add_fault(FaultRule(kind="timeout", endpoint="create_order", hang_ms=600))
    m = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=60_000)
    o = m.place("buy", AMOUNT, far_bid(exchange_adapter))
    assert o.state == UNKNOWN and len(emulator.state.orders) == 0
    with pytest.raises(OrderBlocked, match="unknown outcome"):
        m.place("buy", AMOUNT, far_bid(exchange_adapter))
    assert len(journal.orders()) == 1  # the blocked order was never even journaled
    report = m.reconcile(grace_ms=0)
    assert report.not_placed == [o.client_id] and journal.get(o.client_id).state == REJECTED
    assert m.place("buy", AMOUNT, far_bid(exchange_adapter)).state == OPEN


def test_fill_while_away_and_orphans(exchange_adapter, emulator, journal, test_credentials):
    m = OrderManager(exchange_adapter, journal, "BTC/JPY")
    t = exchange_adapter.fetch_ticker()
    o = m.place("sell", AMOUNT, t.last + 1)  # rests just above the market: the tape fills it later
    # someone else's order on the same account: reported, never touched
    foreign = exchange_adapter.create_limit_order("buy", AMOUNT, far_bid(exchange_adapter), "manual")
    for _ in range(200):
        emulator.advance(30)
        if not emulator.state.orders[int(o.exchange_id)].open:
            break
    report = m.reconcile()
    assert journal.get(o.client_id).state == FILLED and report.new_fills
    assert report.orphans == [foreign.exchange_id]
    assert emulator.state.orders[int(foreign.exchange_id)].open
    assert journal.position() == -AMOUNT
