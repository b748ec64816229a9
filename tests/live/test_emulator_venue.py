"""The emulator closer to the venue: marketable orders walk the book, a resting order waits for
the queue ahead of it at its price, taker fees by default, maintenance windows, and an order the
exchange executes after our request timed out."""

from __future__ import annotations

import time
from decimal import Decimal

import numpy as np
import pytest

from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, TradeTape
from ztb_core.live.venue.errors import OrderRejected

from .conftest import TEST_KEY, TEST_SECRET

PRICE = 1_000_000.0


def scripted_tape(future: list[tuple[float, float, float]]) -> TradeTape:
    """60 s of history at PRICE (one trade a second), then `future` (seconds, price, size) rows."""
    rows = [(float(i), PRICE, 0.01) for i in range(60)] + future
    ts = np.array([int(1_800_000_000_000 + t * 1000) for t, _, _ in rows], np.int64)
    return TradeTape(
        ts, np.array([p for _, p, _ in rows]), np.array([q for _, _, q in rows]), np.ones(len(rows), np.int8)
    )


@pytest.fixture
def scripted():
    future = [(61.0 + k, 999_900.0, 0.2) for k in range(10)]  # prints AT the best bid, 0.2 each
    cfg = EmulatorConfig(speed=0, history_s=60.5, api_key=TEST_KEY, secret=TEST_SECRET, clock="tape")
    with EmulatorServer(cfg, tape=scripted_tape(future)) as emu:
        yield emu


def place(state, side: str, rate: float, amount: str) -> int:
    out = state.create_order({"pair": "btc_jpy", "order_type": side, "rate": f"{rate:.0f}", "amount": amount})
    return int(out["id"])


def test_marketable_order_walks_the_book_and_the_rest_rests(scripted):
    state = scripted.state
    bids, asks = state.levels()
    limit = asks[2][0]
    want = asks[0][1] + asks[1][1] + asks[2][1] + Decimal("0.5")  # more than the three levels hold
    oid = place(state, "buy", float(limit), format(want, "f"))
    fills = [f for f in state.fills if f.order_id == oid]
    assert [(f.rate, f.amount) for f in fills] == [(p, q) for p, q in asks[:3]]  # level by level
    assert all(f.liquidity == "T" for f in fills)
    assert all(f.fee == (f.rate * f.amount * Decimal("0.001")).quantize(Decimal("0.001")) for f in fills)
    order = state.orders[oid]
    assert order.open and order.remaining == Decimal("0.5") and order.rate == limit


def test_resting_order_waits_for_the_queue_ahead_at_its_price(scripted):
    state = scripted.state
    bids, _ = state.levels()
    best, ahead = bids[0]
    queued = place(state, "buy", float(best), "0.05")  # joins the back of the best bid
    improving = place(state, "buy", float(best) + 1, "0.05")  # a new best price: nobody ahead
    assert state.orders[queued].queue_ahead == ahead and state.orders[improving].queue_ahead == 0
    printed = Decimal(0)
    for _ in range(10):
        scripted.advance(1.0)
        printed += Decimal("0.2")
        filled = state.orders[queued].amount - state.orders[queued].remaining
        assert filled == min(Decimal("0.05"), max(Decimal(0), printed - ahead))
    # the improving order filled on the first print (the trade was through its price)
    assert state.orders[improving].remaining == 0
    assert state.orders[queued].remaining == 0  # 2 BTC printed at its price: the queue was consumed


def test_maintenance_refuses_orders_and_says_so(exchange_adapter, emulator):
    assert exchange_adapter.trading_halt() is None
    emulator.state.set_maintenance(True)
    assert "maintenance" in exchange_adapter.trading_halt()
    with pytest.raises(OrderRejected, match="maintenance"):
        exchange_adapter.create_limit_order("buy", Decimal("0.01"), Decimal("1000000"), "c-1")
    emulator.state.set_maintenance(False)
    assert exchange_adapter.trading_halt() is None


def test_late_execution_places_the_order_after_our_request_timed_out(exchange_adapter, emulator, tmp_path):
    from ztb_core.live.execution.broker import OrderManager
    from ztb_core.live.execution.journal import Journal
    from ztb_core.live.execution.orders import OPEN, UNKNOWN

    emulator.add_fault({"kind": "late_execution", "endpoint": "create_order", "hang_ms": 900})
    with Journal(tmp_path / "j.sqlite", "live", "coincheck", "BTC/JPY") as j:
        manager = OrderManager(exchange_adapter, j, "BTC/JPY", grace_ms=10_000)
        price = exchange_adapter.market_limits().round_price(exchange_adapter.fetch_ticker().bid * Decimal("0.8"))
        t0 = time.monotonic()
        order = manager.place("buy", Decimal("0.01"), price)  # the client gives up after 400 ms
        assert order.state == UNKNOWN and time.monotonic() - t0 < 0.85
        # later signed requests (higher nonces) do not make the exchange reject the delayed one
        assert manager.reconcile().still_unresolved == [order.client_id]
        assert not emulator.state.orders
        deadline = time.monotonic() + 5
        while not emulator.state.orders and time.monotonic() < deadline:
            time.sleep(0.05)
        manager.reconcile()
        got = j.get(order.client_id)
        assert got.state == OPEN and emulator.state.orders[int(got.exchange_id)].open


def test_history_mixes_pairs_when_configured_and_only_ours_are_journaled(exchange_config, test_credentials, tmp_path):
    from ztb_core.live.execution.broker import OrderManager
    from ztb_core.live.execution.journal import Journal
    from ztb_core.live.venue.factory import make_adapter

    cfg = EmulatorConfig(speed=0, history_s=3600, api_key=TEST_KEY, secret=TEST_SECRET, other_pair_fill_every=2)
    with EmulatorServer(cfg, tape=TradeTape.random_walk(seed=1)) as emu:
        adapter = make_adapter(exchange_config.model_copy(update={"api_url": emu.base_url}), test_credentials)
        with Journal(tmp_path / "j.sqlite", "live", "coincheck", "BTC/JPY") as j:
            manager = OrderManager(adapter, j, "BTC/JPY")
            price = adapter.market_limits().round_price(adapter.fetch_ticker().bid * Decimal("0.8"), "buy")
            order = manager.place("buy", Decimal("0.01"), price)
            for _ in range(6):
                emu.state.execute(int(order.exchange_id), Decimal("0.001"))
            assert [f.pair for f in emu.state.fills].count("eth_jpy") == 3
            manager.reconcile()
            assert len(j.fills()) == 6 and j.position() == Decimal("0.006")
