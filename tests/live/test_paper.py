"""The paper venue: fills on live public quotes with the shared cost convention, no private call,
state rebuilt from its own journal after a restart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import FILLED, OPEN
from ztb_core.live.execution.paper import PaperConfig, PaperVenue
from ztb_core.live.venue.errors import ExchangeCallError
from ztb_core.live.venue.factory import make_adapter
from ztb_core.live.venue.types import Ticker
from ztb_core.trading_costs import CostConfig

PRIVATE = {
    "create_order",
    "cancel_order",
    "open_orders",
    "balance",
    "transactions",
    "accounts",
    "order",
    "cancel_status",
}


@pytest.fixture
def public_adapter(exchange_config):
    return make_adapter(exchange_config, None)  # no keys: a private call could not even be signed


def make(public_adapter, tmp_path, **costs):
    j = Journal(tmp_path / "paper.sqlite", "paper", "coincheck", "BTC/JPY")
    return j, PaperVenue(public_adapter, j, CostConfig(**costs), PaperConfig(start_quote=Decimal("1000000")))


def test_marketable_order_fills_at_touch_plus_slippage_and_fee(public_adapter, emulator, tmp_path):
    j, venue = make(public_adapter, tmp_path, fee_bps=10, slippage_bps=5)
    m = OrderManager(venue, j, "BTC/JPY")
    t = venue.fetch_ticker()
    o = m.place("buy", Decimal("0.01"), t.ask + 2000)  # limit above the slipped price
    m.reconcile()
    (fill,) = j.fills()
    assert j.get(o.client_id).state == FILLED
    assert fill.price == t.ask * (1 + Decimal("0.0005"))
    assert fill.fee == (fill.price * Decimal("0.01") * Decimal("0.001")).quantize(Decimal("0.001"))
    bal = venue.fetch_balance()
    assert bal.total["BTC"] == Decimal("0.01")
    assert bal.total["JPY"] == Decimal("1000000") - fill.price * Decimal("0.01") - fill.fee
    assert not (set(emulator.requests) & PRIVATE), dict(emulator.requests)
    j.close()


def test_resting_order_fills_when_quotes_cross_and_survives_restart(public_adapter, emulator, tmp_path):
    j, venue = make(public_adapter, tmp_path, fee_bps=0, slippage_bps=0)
    m = OrderManager(venue, j, "BTC/JPY")
    t = venue.fetch_ticker()
    o = m.place("buy", Decimal("0.01"), t.bid - 2000)
    assert o.state == OPEN and m.reconcile().new_fills == []
    j.close()
    j2, venue2 = make(public_adapter, tmp_path, fee_bps=0, slippage_bps=0)  # restart
    assert [r.exchange_id for r in venue2.fetch_open_orders()] == [o.exchange_id]
    m2 = OrderManager(venue2, j2, "BTC/JPY")
    for _ in range(400):
        emulator.advance(30)
        venue2.fetch_ticker()
        m2.reconcile()
        if j2.get(o.client_id).state == FILLED:
            break
    assert j2.get(o.client_id).state == FILLED and j2.fills()[0].price == o.price
    assert not (set(emulator.requests) & PRIVATE)
    j2.close()


def test_insufficient_paper_funds_rejected(public_adapter, tmp_path):
    j, venue = make(public_adapter, tmp_path)
    m = OrderManager(venue, j, "BTC/JPY")
    o = m.place("sell", Decimal("0.01"), venue.fetch_ticker().bid)
    assert o.state == "rejected" and "insufficient BTC" in o.reason
    j.close()


def test_quote_without_touch_or_last_is_a_clear_error(public_adapter, tmp_path):
    """The stream's ticker can carry no bid/ask; the paper venue then prices at last ± half the
    spread, and with no last either it names the missing fields instead of a TypeError on None."""
    j, venue = make(public_adapter, tmp_path, spread_bps=20)
    assert venue._touch(Ticker("BTC/JPY", None, None, Decimal("1000000"), None)) == (Decimal(999000), Decimal(1001000))
    with pytest.raises(ExchangeCallError, match=r"fetch_ticker BTC/JPY: fields 'bid'/'ask' and 'last' missing"):
        venue._touch(Ticker("BTC/JPY", Decimal("999000"), None, None, None))
    j.close()
