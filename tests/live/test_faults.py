"""Regression tests of issue 11's money defects, each against the loopback emulator with the real
ccxt client: fills beyond one page, reduce-only with resting orders, cancels that failed, private
API health, foreign orders that look like ours."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest

from ztb_core.live.execution.broker import OrderBlocked, OrderManager
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import CANCEL_REQUESTED, CANCELLED, OPEN, REJECTED, UNKNOWN
from ztb_core.live.execution.reconcile import AMBIGUOUS_KEY, resolve_order
from ztb_core.live.loop.risk import RiskConfig, RiskManager

AMOUNT = Decimal("0.5")


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite", "live", "coincheck", "BTC/JPY")
    yield j
    j.close()


def far_bid(adapter, pct: str = "0.7") -> Decimal:
    t = adapter.fetch_ticker()
    return adapter.market_limits().round_price(t.bid * Decimal(pct), "buy")


def place_reply_lost(manager, emulator, side: str, amount: str, price: Decimal):
    """Place an order whose reply never arrives: the exchange has it, the journal says UNKNOWN."""
    emulator.add_fault({"kind": "response_lost", "endpoint": "create_order", "hang_ms": 0})
    return manager.place(side, Decimal(amount), price)


def events(into: list):
    return lambda kind, **data: into.append((kind, data))


# ---- defect 1: fills beyond one page ------------------------------------------------------------
def test_every_fill_is_recorded_when_an_order_has_more_fills_than_a_page(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    order = manager.place("buy", AMOUNT, far_bid(exchange_adapter))
    manager.reconcile()
    eid = int(order.exchange_id)
    # 250 executions of ours interleaved with 120 fills of the same account on another pair
    for i in range(250):
        emulator.state.execute(eid, Decimal("0.001"))
        if i % 2 == 0 and i < 240:
            emulator.state.add_other_pair_fill("eth_jpy", "sell", Decimal("300000"), Decimal("0.1"))
    emulator.state.cancel_order(eid)  # it leaves the book partly filled before the next sync
    # positive control: one page of ccxt's fetchMyTrades cannot hold them
    assert len(exchange_adapter.exchange.fetch_my_trades("BTC/JPY", None, 100)) < 250
    manager.reconcile()
    done = journal.get(order.client_id)
    assert len(journal.fills(order.client_id)) == 250
    assert journal.position() == Decimal("0.25") and done.filled == Decimal("0.25")
    assert done.state == CANCELLED
    # the next sync reads from the cursor: nothing new, nothing counted twice
    assert manager.reconcile().new_fills == [] and journal.position() == Decimal("0.25")


def test_an_order_is_not_closed_before_its_executed_amount_is_in_the_fills(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    order = manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    manager.reconcile()
    emulator.state.execute(int(order.exchange_id), Decimal("0.004"))
    emulator.state.cancel_order(int(order.exchange_id))
    full = exchange_adapter.fetch_fills

    def lagging(symbol=None, since_ms=None, after=None):  # the history has not caught up yet
        sync = full(symbol, since_ms, after)
        return type(sync)([f for f in sync.fills if f.order_id != order.exchange_id], after)

    exchange_adapter.fetch_fills = lagging
    report = manager.reconcile()
    assert order.client_id in report.fills_pending and not journal.get(order.client_id).terminal
    exchange_adapter.fetch_fills = full
    manager.reconcile()
    done = journal.get(order.client_id)
    assert done.state == CANCELLED and done.filled == Decimal("0.004") and journal.position() == Decimal("0.004")


# ---- defect 2 + 3: a cancel that failed keeps the order in exposure and is retried ----------------
def test_failed_cancel_counts_as_exposure_blocks_reduce_only_sell_and_is_retried(exchange_adapter, emulator, journal):
    seen: list = []
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0, on_event=events(seen))
    clock = [0.0]
    manager._clock = lambda: clock[0]
    order = manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    emulator.add_fault({"kind": "http_5xx", "endpoint": "cancel_order", "times": 3})
    with pytest.raises(Exception, match="cancel_order"):
        manager.cancel_all()
    assert journal.get(order.client_id).state == CANCEL_REQUESTED
    assert emulator.state.orders[int(order.exchange_id)].open  # still on the book
    # reduce-only (latched breaker), flat filled position, the buy still resting: a sell is NOT reducing
    risk = RiskManager(RiskConfig(), journal)
    risk.trip("manual", "test")
    buy, sell = manager.resting()
    assert buy == Decimal("0.01")
    assert not risk.check_order("sell", Decimal("0.01"), Decimal("1200000"), journal.position(), buy, sell).allowed
    # retried after the backoff, not before
    assert manager.retry_cancels() == []
    clock[0] += manager.cancel_max_s
    assert manager.retry_cancels() == [order.client_id]
    assert journal.get(order.client_id).state == CANCELLED
    assert not emulator.state.orders[int(order.exchange_id)].open


def test_cancel_requested_before_a_crash_is_sent_by_the_next_process(
    exchange_config, test_credentials, emulator, tmp_path
):
    from ztb_core.live.venue.factory import make_adapter

    path = tmp_path / "j.sqlite"
    with Journal(path, "live", "coincheck", "BTC/JPY") as j1:
        a1 = make_adapter(exchange_config, test_credentials)
        order = OrderManager(a1, j1, "BTC/JPY").place("buy", Decimal("0.01"), far_bid(a1))
        j1.transition(order, CANCEL_REQUESTED)  # killed between this journal write and the cancel call
    with Journal(path, "live", "coincheck", "BTC/JPY") as j2:
        manager = OrderManager(make_adapter(exchange_config, test_credentials), j2, "BTC/JPY")
        manager.reconcile()
        assert j2.get(order.client_id).state == CANCEL_REQUESTED  # still resting: not confirmed
        assert manager.retry_cancels() == [order.client_id]
        assert j2.get(order.client_id).state == CANCELLED
    assert not emulator.state.orders[int(order.exchange_id)].open


# ---- defect 5: an order that is not provably ours is never adopted or cancelled -------------------
def place_foreign(emulator, side: str, amount: Decimal, rate: Decimal) -> int:
    out = emulator.state.create_order(
        {"pair": "btc_jpy", "order_type": side, "rate": format(rate, "f"), "amount": format(amount, "f")}
    )
    return int(out["id"])


def test_foreign_order_with_our_keys_is_not_adopted_nor_cancelled(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    foreign = place_foreign(emulator, "buy", Decimal("0.01"), price)
    manager.reconcile()  # the bot's sync sees the foreign order before it sends its own
    emulator.add_fault({"kind": "connection_reset", "endpoint": "create_order"})  # ours never arrives
    ours = manager.place("buy", Decimal("0.01"), price)
    assert ours.state == UNKNOWN
    report = manager.reconcile()
    assert journal.get(ours.client_id).state == REJECTED and ours.client_id in report.not_placed
    manager.cancel_all()
    assert emulator.state.orders[foreign].open and str(foreign) in manager.reconcile().orphans


def test_a_lost_response_is_still_adopted_when_it_is_the_only_candidate(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    place_foreign(emulator, "buy", Decimal("0.01"), price)
    manager.reconcile()
    ours = place_reply_lost(manager, emulator, "buy", "0.01", price)
    assert ours.state == UNKNOWN
    manager.reconcile()
    got = journal.get(ours.client_id)
    assert got.state == OPEN and emulator.state.orders[int(got.exchange_id)].open


@pytest.mark.parametrize("fills", [False, True], ids=["resting", "filled"])
def test_a_smaller_foreign_order_is_never_taken_for_an_unknown_placement(exchange_adapter, emulator, journal, fills):
    """Found by the fault fuzzer: our placement failed (5xx, never placed), someone else's order on the
    same side at a price our limit allows, but SMALLER, was adopted as ours (and its fill booked as our
    position) because only remaining <= amount was checked. Ours never reached the exchange: rejected."""
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    manager.reconcile()
    emulator.add_fault({"kind": "http_5xx", "endpoint": "create_order"})
    ours = manager.place("buy", Decimal("0.03"), price)
    assert ours.state == UNKNOWN and not emulator.state.orders
    foreign = place_foreign(emulator, "buy", Decimal("0.0071"), price)
    if fills:
        emulator.state.execute(foreign, Decimal("0.0071"))
    manager.reconcile()
    assert journal.get(ours.client_id).state == REJECTED and journal.position() == 0
    assert str(foreign) not in journal.known_exchange_ids()
    # positive control: an order of ours with the same keys that did reach the exchange is adopted
    placed = place_reply_lost(manager, emulator, "buy", "0.03", price)
    if fills:
        emulator.state.execute(max(emulator.state.orders), Decimal("0.03"))
    manager.reconcile()
    assert journal.get(placed.client_id).exchange_id == str(max(emulator.state.orders))
    assert journal.position() == (Decimal("0.03") if fills else 0)


def test_an_order_placed_under_a_skewed_exchange_clock_is_never_placed_twice(exchange_adapter, emulator, journal):
    """Found by the canary's live kill/resume: the exchange took our order, the reply was lost, and
    the exchange's clock runs an hour behind ours, so its order looks older than our send and
    reconciliation ruled ours "never placed"; the next decision placed it again. Now an order that
    matches in all but time keeps ours unknown and blocking until the operator decides."""
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    manager.reconcile()
    ours = place_reply_lost(manager, emulator, "buy", "0.01", price)
    (eid,) = list(emulator.state.orders)
    emulator.state.orders[eid].created_ms -= 3_600_000  # the venue reports it an hour "earlier"
    report = manager.reconcile()
    assert journal.get(ours.client_id).state == UNKNOWN and report.ambiguous == {ours.client_id: [str(eid)]}
    with pytest.raises(OrderBlocked):
        manager.place("buy", Decimal("0.01"), price)
    assert len(emulator.state.orders) == 1  # never placed twice
    resolve_order(journal, str(eid), "ours")  # the operator's call
    manager.reconcile()
    assert journal.get(ours.client_id).exchange_id == str(eid)


def test_a_pass_writes_only_fills_it_has_not_journaled(exchange_adapter, emulator, journal, monkeypatch):
    """Each pass reads fills back to its oldest open question; the ones already journaled are not
    written again (every write is an fsynced transaction: the bench's runner spent its decision time
    there, 988 writes in 136 passes)."""
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    order = manager.place("buy", Decimal("0.05"), far_bid(exchange_adapter))
    for _ in range(4):
        emulator.state.execute(int(order.exchange_id), Decimal("0.001"))
    writes: list[str] = []
    real = journal.record_fill
    monkeypatch.setattr(journal, "record_fill", lambda f: writes.append(f.trade_id) or real(f))
    manager.reconcile()
    assert len(writes) == 4 and journal.position() == Decimal("0.004")  # positive control: new ones written
    manager.reconcile()
    manager.reconcile()
    assert len(writes) == 4  # nothing new: nothing written
    emulator.state.execute(int(order.exchange_id), Decimal("0.001"))
    manager.reconcile()
    assert len(writes) == 5 and journal.position() == Decimal("0.005")


def test_an_unknown_order_the_exchange_cancelled_part_way_is_still_found(exchange_adapter, emulator, journal):
    """Ours reached the exchange, part filled, then the exchange itself cancelled the rest: the fills do
    not add up to our amount, so the order's own amount and price (GET exchange/orders/ID) decide."""
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    manager.reconcile()
    ours = place_reply_lost(manager, emulator, "buy", "0.03", price)
    (eid,) = list(emulator.state.orders)
    emulator.state.execute(eid, Decimal("0.01"))
    emulator.state.orders[eid].status = "PARTIALLY_FILLED_CANCELED"  # the venue's own cancel (e.g. maintenance)
    manager.reconcile()
    got = journal.get(ours.client_id)
    assert got.exchange_id == str(eid) and got.filled == Decimal("0.01") and journal.position() == Decimal("0.01")


def test_ambiguous_match_blocks_alerts_and_the_operator_resolves_it(exchange_adapter, emulator, journal):
    seen: list = []
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0, on_event=events(seen))
    price = far_bid(exchange_adapter)
    manager.reconcile()
    ours = place_reply_lost(manager, emulator, "buy", "0.01", price)
    twin = place_foreign(emulator, "buy", Decimal("0.01"), price)  # same keys, placed right after ours
    report = manager.reconcile()
    (real,) = [oid for oid, o in emulator.state.orders.items() if oid != twin]
    assert report.ambiguous == {ours.client_id: sorted([str(real), str(twin)])}
    assert journal.get(ours.client_id).state == UNKNOWN
    assert any(k == "alert" and d["client_id"] == ours.client_id for k, d in seen)
    with pytest.raises(OrderBlocked):
        manager.place("buy", Decimal("0.01"), price)
    assert journal.get_state(AMBIGUOUS_KEY) == report.ambiguous
    # the operator says the twin is not ours: the other candidate is then the only one
    resolve_order(journal, str(twin), "not-ours")
    manager.reconcile()
    assert journal.get(ours.client_id).exchange_id == str(real)
    manager.cancel_all()
    assert emulator.state.orders[twin].open and not emulator.state.orders[real].open


def test_resolve_as_ours_adopts_the_named_order(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    manager.reconcile()
    ours = place_reply_lost(manager, emulator, "buy", "0.01", price)
    twin = place_foreign(emulator, "buy", Decimal("0.01"), price)
    manager.reconcile()
    resolve_order(journal, str(twin), "ours")
    assert journal.get(ours.client_id).exchange_id == str(twin)
    assert journal.get_state(AMBIGUOUS_KEY) == {}
    with pytest.raises(Exception, match="not a candidate"):
        resolve_order(journal, "999999", "ours")


def test_an_operator_decision_interrupted_half_way_leaves_the_journal_as_it_was(
    exchange_adapter, emulator, journal, monkeypatch
):
    """`--resolve ID --as ours` adopts the order, then clears it from the ambiguous list and the fill
    cursor: a failure between those writes must not leave an adopted order still listed as a
    question (nor the reverse). Positive control: the same failure outside a batch keeps the half."""
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    price = far_bid(exchange_adapter)
    manager.reconcile()
    ours = place_reply_lost(manager, emulator, "buy", "0.01", price)
    twin = place_foreign(emulator, "buy", Decimal("0.01"), price)
    manager.reconcile()
    asked = journal.get_state(AMBIGUOUS_KEY)
    real_set_state = journal.set_state

    def disk_fails_on_the_ambiguous_list(key, value):
        if key == AMBIGUOUS_KEY:
            raise OSError("disk I/O error")
        real_set_state(key, value)

    monkeypatch.setattr(journal, "set_state", disk_fails_on_the_ambiguous_list)
    with pytest.raises(OSError):
        resolve_order(journal, str(twin), "ours")
    assert journal.get(ours.client_id).state == UNKNOWN and journal.get(ours.client_id).exchange_id is None
    assert journal.get_state(AMBIGUOUS_KEY) == asked
    # positive control: without the transaction the adoption would have stayed, half done
    monkeypatch.setattr(journal, "batch", lambda *a, **k: contextlib.nullcontext())
    with pytest.raises(OSError):
        resolve_order(journal, str(twin), "ours")
    assert journal.get(ours.client_id).exchange_id == str(twin)


# ---- defect 4: private API down while public quotes flow ------------------------------------------
class _Always:
    """A policy that always wants to be fully long (so every bar asks for an order)."""

    name, warmup_bars, buffer_bars = "always-long", 2, 12

    def decide(self, bars, position: float) -> float:
        return 1.0


class _Bars:
    """The runner's public market: one new constant bar per poll, limits from the adapter."""

    def __init__(self, adapter) -> None:
        self.adapter = adapter

    def market_limits(self, symbol=None):
        return self.adapter.market_limits(symbol)

    def fetch_ohlcv_or_build(self, tf, since_ms, now_ms):
        import pandas as pd

        idx = pd.date_range(pd.Timestamp(since_ms, unit="ms", tz="UTC").floor("1min"), periods=1, freq="1min")
        return pd.DataFrame({"open": 1.2e6, "high": 1.2e6, "low": 1.2e6, "close": 1.2e6, "volume": 1.0}, index=idx)


class _Writer:
    def __init__(self, root) -> None:
        self.dir, self.events = root, []

    def event(self, name, /, **data) -> None:
        self.events.append((name, data))

    def metric(self, *a, **k) -> None:
        pass

    def set_status(self, *a, **k) -> None:
        pass

    def heartbeat(self, *a, **k) -> None:
        pass


def make_runner(exchange_adapter, journal, tmp_path):
    from ztb_core.live.loop.live_config import LiveConfig
    from ztb_core.live.loop.runner import LiveRunner
    from ztb_core.live.loop.sizing import SizingConfig

    cfg = LiveConfig(
        mode="live",
        confirm_live=True,
        exchange=exchange_adapter.cfg,
        risk=RiskConfig(max_consecutive_errors=3, stale_data_s=1e9, max_price_jump_pct=0.5, max_spread_bps=1e4),
        sizing=SizingConfig(vol_lookback_bars=10, min_change_fraction=0.0, max_leverage=1.0, target_vol=5.0),
        capital=36_000.0,
        warmup_bars=12,
        journal_path=tmp_path / "unused.sqlite",
    )
    writer = _Writer(tmp_path)
    runner = LiveRunner(cfg, _Bars(exchange_adapter), exchange_adapter, journal, _Always(), writer, mode="live")
    runner.start()
    return runner, writer


def test_no_order_while_fills_cannot_be_synced_and_the_breaker_trips(exchange_adapter, emulator, journal, tmp_path):
    runner, writer = make_runner(exchange_adapter, journal, tmp_path)
    # positive control: with the private API healthy the first bar places an order
    assert runner.poll() and emulator.requests["create_order"] == 1
    runner.manager.cancel_all()
    emulator.add_fault({"kind": "http_5xx", "endpoint": "transactions_pagination", "times": None})
    for _ in range(4):
        runner.poll()  # quotes and bars keep flowing (public successes); fills cannot be read
    assert emulator.requests["create_order"] == 1, "an order was placed while fills could not be read"
    denied = [d for k, d in writer.events if k == "order_denied"]
    assert denied and all("private API" in d["reason"] or "reduce-only" in d["reason"] for d in denied)
    assert "consecutive_errors" in runner.risk.state.breakers
    assert runner.risk.state.private_errors >= 3 and runner.risk.state.public_errors == 0


def test_no_new_order_during_maintenance(exchange_adapter, emulator, journal, tmp_path):
    runner, writer = make_runner(exchange_adapter, journal, tmp_path)
    emulator.state.set_maintenance(True)
    assert runner.poll() and emulator.requests["create_order"] == 0
    (denied,) = [d for k, d in writer.events if k == "order_denied"]
    assert "maintenance" in denied["reason"]
    emulator.state.set_maintenance(False)  # positive control: the same decision goes out afterwards
    assert runner.poll() and emulator.requests["create_order"] == 1


def test_other_pair_fills_filling_whole_pages_do_not_end_the_paging(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    order = manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    for _ in range(5):
        emulator.state.execute(int(order.exchange_id), Decimal("0.001"))
    for _ in range(230):  # newer than ours: the first two pages hold no BTC/JPY fill at all
        emulator.state.add_other_pair_fill("eth_jpy", "buy", Decimal("300000"), Decimal("0.1"))
    # positive control: a symbol-filtered page (ccxt's fetchMyTrades) shows none of ours
    assert exchange_adapter.exchange.fetch_my_trades("BTC/JPY", None, 100) == []
    manager.reconcile()
    assert len(journal.fills(order.client_id)) == 5 and journal.position() == Decimal("0.005")


def test_rejected_and_unknown_placements_are_not_trades_of_the_day(exchange_adapter, emulator, journal, tmp_path):
    runner, writer = make_runner(exchange_adapter, journal, tmp_path)
    emulator.add_fault({"kind": "connection_reset", "endpoint": "create_order"})  # outcome unknown
    runner.poll()
    assert [o.state for o in journal.orders()] == ["unknown"] and runner.risk.state.trades_today == 0
    runner.manager.reconcile(grace_ms=0)  # never arrived: rejected
    emulator.state.totals["jpy"] = Decimal(0)  # the exchange refuses the next one (insufficient funds)
    runner.poll()
    assert [o.state for o in journal.orders()] == ["rejected", "rejected"]
    assert runner.risk.state.trades_today == 0 and runner.stats.orders == 0
    emulator.state.totals["jpy"] = Decimal(1_000_000)  # positive control: a placed order counts
    runner.poll()
    assert runner.risk.state.trades_today == 1


def test_the_generic_adapter_refuses_a_venue_with_its_own_adapter(exchange_config, test_credentials):
    from ztb_core.errors import ConfigError
    from ztb_core.live.venue.exchange import DEDICATED_VENUES, ExchangeAdapter
    from ztb_core.live.venue.factory import VENUES, CoincheckAdapter, make_adapter

    assert set(VENUES) == DEDICATED_VENUES
    assert type(make_adapter(exchange_config, test_credentials)) is CoincheckAdapter
    with pytest.raises(ConfigError, match="make_adapter"):
        ExchangeAdapter(exchange_config, test_credentials)


def test_a_sync_reads_only_the_pages_newer_than_its_cursor(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    order = manager.place("buy", Decimal("0.5"), far_bid(exchange_adapter))  # rests for the whole test
    for _ in range(250):
        emulator.state.execute(int(order.exchange_id), Decimal("0.001"))
    manager.reconcile()
    assert len(journal.fills(order.client_id)) == 250
    emulator.state.execute(int(order.exchange_id), Decimal("0.001"))
    before = emulator.requests["transactions_pagination"]
    manager.reconcile()
    assert emulator.requests["transactions_pagination"] - before == 1  # one page reaches the cursor
    assert len(journal.fills(order.client_id)) == 251
    # positive control: without a cursor the pass reads back to the order (three pages)
    journal.set_state("fills_cursor", None)
    before = emulator.requests["transactions_pagination"]
    manager.reconcile()
    assert emulator.requests["transactions_pagination"] - before == 3


def test_flatten_leaves_out_what_resting_closing_orders_would_close(exchange_adapter, emulator, journal, tmp_path):
    runner, writer = make_runner(exchange_adapter, journal, tmp_path)
    manager = runner.manager
    t = exchange_adapter.fetch_ticker()
    manager.place("buy", Decimal("0.012"), t.ask + 1000)  # marketable: fills at once
    manager.reconcile()
    assert journal.position() == Decimal("0.012")
    resting = manager.place("sell", Decimal("0.005"), (t.ask * Decimal("1.3")).quantize(Decimal(1)))
    emulator.add_fault({"kind": "http_5xx", "endpoint": "cancel_order", "times": None})
    with pytest.raises(Exception, match="cancel_order"):
        manager.cancel_all()  # the resting sell stays (cancel unconfirmed): it may still fill
    runner.flatten()
    sells = [o for o in journal.orders() if o.side == "sell" and o.client_id != resting.client_id]
    assert [o.amount for o in sells] == [Decimal("0.007")]  # 0.012 held - 0.005 that may still sell
