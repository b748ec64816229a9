"""Regression tests of the money defects of late executions, stuck cancels, unknown outcomes, foreign
twins and unusable order ids, each against the loopback emulator with the real ccxt client."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, TradeTape
from ztb_core.live.execution.broker import OrderBlocked, OrderManager
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import OPEN, REJECTED, UNKNOWN
from ztb_core.live.execution.reconcile import resolve_order
from ztb_core.live.loop.minimal import run_minimal
from ztb_core.live.loop.risk import RiskConfig
from ztb_core.live.venue.factory import make_adapter

from .conftest import TEST_KEY, TEST_SECRET
from .test_faults import _Bars, _Writer, far_bid, place_foreign

BTC0 = Decimal("0.1")  # the emulator account's BTC at start (conftest)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite", "live", "coincheck", "BTC/JPY")
    yield j
    j.close()


class _Signal:
    """A policy whose target the test sets."""

    name, warmup_bars, buffer_bars = "scripted", 2, 12

    def __init__(self, signal: float = 1.0) -> None:
        self.signal = signal

    def decide(self, bars, position: float) -> float:
        return self.signal


def make_runner(adapter, journal, tmp_path, policy, **overrides):
    """The live runner on the emulator with the SHIPPED reconciliation settings unless overridden
    (scaled: the fixture's HTTP timeout is 0.4 s, so the shipped 10 s grace becomes 0.3 s)."""
    from ztb_core.live.loop.live_config import LiveConfig
    from ztb_core.live.loop.runner import LiveRunner
    from ztb_core.live.loop.sizing import SizingConfig

    sizing = {"vol_lookback_bars": 10, "min_change_fraction": 0.0, "max_leverage": 1.0, "target_vol": 5.0}
    sizing.update(overrides.pop("sizing", {}))
    cfg = LiveConfig(
        mode="live",
        confirm_live=True,
        exchange=adapter.cfg,
        risk=RiskConfig(stale_data_s=1e9, max_price_jump_pct=0.5, max_spread_bps=1e4),
        sizing=SizingConfig(**sizing),
        capital=24_000.0,
        warmup_bars=12,
        journal_path=tmp_path / "unused.sqlite",
        reconcile_grace_s=0.3,
        **overrides,
    )
    writer = _Writer(tmp_path)
    runner = LiveRunner(cfg, _Bars(adapter), adapter, journal, policy, writer, mode="live")
    runner.start()
    return runner, writer


@pytest.fixture
def rt_emulator():
    """An emulator whose clock runs with the wall clock (speed 1): its order stamps move as a real
    venue's do, so an execution 3 s after our request is stamped 3 s later."""
    cfg = EmulatorConfig(
        speed=1, history_s=3600, api_key=TEST_KEY, secret=TEST_SECRET, balances={"jpy": 1_000_000.0, "btc": 0.1}
    )
    with EmulatorServer(cfg, tape=TradeTape.random_walk(seed=1)) as emu:
        yield emu


@pytest.fixture
def rt_adapter(rt_emulator, exchange_config, test_credentials):
    return make_adapter(exchange_config.model_copy(update={"api_url": rt_emulator.base_url}), test_credentials)


def marketable(adapter, side: str = "buy") -> Decimal:
    t = adapter.fetch_ticker()
    if side == "buy":
        return adapter.market_limits().round_price(t.ask * Decimal("1.01"), "buy")
    return adapter.market_limits().round_price(t.bid * Decimal("0.99"), "sell")


def exchange_btc(emulator) -> Decimal:
    return Decimal(emulator.state.totals["btc"]) - BTC0


def critical(writer) -> list[dict]:
    return [d for k, d in writer.events if k == "alert" and d.get("level") == "critical"]


# ---- defect 1: an order the exchange executes late is never ruled "not placed" early ---------------
def test_a_late_execution_is_not_ruled_never_placed_nor_placed_twice(rt_adapter, rt_emulator, journal, tmp_path):
    emulator = rt_emulator
    runner, writer = make_runner(rt_adapter, journal, tmp_path, _Signal(1.0))
    # the venue checks the request, hangs 3 s (our 0.4 s timeout gives up), then executes it
    emulator.add_fault({"kind": "late_execution", "endpoint": "create_order", "hang_ms": 3000})
    t0 = time.monotonic()
    assert runner.poll()
    (order,) = journal.orders()
    assert order.state == UNKNOWN
    time.sleep(0.5)  # past the (scaled) grace: the old rule called it never placed here
    runner.poll()
    while time.monotonic() - t0 < 3.3:  # the late work lands
        time.sleep(0.05)
    for _ in range(3):
        runner.poll()
    assert emulator.requests["create_order"] == 1, "placed again while the first order's outcome was unknown"
    assert journal.get(order.client_id).state == UNKNOWN
    held = exchange_btc(emulator)
    assert held > 0  # the exchange did take it (positive control of the scenario)
    # the books never understate the exchange: the unknown order counts at its worst case
    buying, _ = runner.manager.resting()
    assert journal.position() + buying >= held
    # alerts are news, not one per poll: "unknown" once, then once more when a candidate appears
    alerts = [a for a in critical(writer) if a.get("client_id") == order.client_id]
    assert len(alerts) <= 2 and [a for a in alerts if a["candidates"]] == alerts[-1:], alerts
    # the operator adopts it (ztb live reconcile --resolve EXCHANGE_ID --as ours); the books agree
    (eid,) = alerts[-1]["candidates"]
    resolve_order(journal, eid, "ours")
    runner.manager.reconcile()
    assert journal.position() == held


def test_an_unknown_order_is_ruled_not_placed_only_after_the_window(exchange_adapter, emulator, journal):
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=1_500)
    emulator.add_fault({"kind": "timeout", "endpoint": "create_order", "hang_ms": 600})  # never executed
    order = manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    assert order.state == UNKNOWN
    assert order.client_id in manager.reconcile().still_unresolved
    time.sleep(1.6)
    assert order.client_id in manager.reconcile().not_placed  # absent from book and fills over the window
    assert journal.get(order.client_id).state == REJECTED


def test_an_order_executed_after_the_window_blocks_and_alerts_until_the_operator_decides(
    exchange_adapter, emulator, journal
):
    """A venue slower than the configured window: the order was ruled never placed, then appears.
    It is not adopted on a guess and not ignored as a foreign order: new orders stop, one alert."""
    seen: list = []
    manager = OrderManager(
        exchange_adapter, journal, "BTC/JPY", grace_ms=300, on_event=lambda k, **d: seen.append((k, d))
    )
    emulator.add_fault({"kind": "late_execution", "endpoint": "create_order", "hang_ms": 1500})
    t0 = time.monotonic()
    order = manager.place("buy", Decimal("0.01"), marketable(exchange_adapter))
    time.sleep(0.5)
    assert order.client_id in manager.reconcile().not_placed  # the window (0.3 s here) has passed
    while time.monotonic() - t0 < 1.8:  # the late work lands: the exchange is long 0.01
        time.sleep(0.05)
    for _ in range(3):
        manager.reconcile()
    assert exchange_btc(emulator) == Decimal("0.01") and journal.position() == 0
    (eid,) = map(str, emulator.state.orders)
    with pytest.raises(OrderBlocked, match="ruled never placed"):
        manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    alerts = [d for k, d in seen if k == "alert" and d.get("candidates") == [eid]]
    assert len(alerts) == 1
    resolve_order(journal, eid, "ours")  # ztb live reconcile --resolve EID --as ours
    manager.reconcile()
    assert journal.position() == exchange_btc(emulator) == Decimal("0.01")
    assert manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter)).state == OPEN  # unblocked


def test_minimal_finds_and_cancels_a_test_order_executed_late(exchange_adapter, emulator, tmp_path):
    emulator.add_fault({"kind": "late_execution", "endpoint": "create_order", "hang_ms": 1200})
    with Journal(tmp_path / "j.sqlite", "live", "coincheck", "BTC/JPY") as j:
        rep = run_minimal(exchange_adapter, j, confirm_wait_s=0.1)
        assert rep.passed, rep.as_dict()
        assert [o.status for o in emulator.state.orders.values()] == ["CANCELED"]
        again = run_minimal(exchange_adapter, j, confirm_wait_s=0.1)  # nothing left behind, nothing foreign
        assert again.passed, again.as_dict()
        assert "0 foreign" in next(s.detail for s in again.steps if s.name == "reconcile")
    assert not any(o.open for o in emulator.state.orders.values())


# ---- defect 3: a resting order whose cancel failed neither blocks exits nor sells while flat -------
def test_reduce_only_exit_is_cut_to_what_can_be_reduced_when_a_cancel_is_stuck(
    exchange_adapter, emulator, journal, tmp_path
):
    policy = _Signal(1.0)
    runner, writer = make_runner(exchange_adapter, journal, tmp_path, policy)
    # the first buy fills half at once; the rest rests and its cancel keeps failing
    emulator.add_fault({"kind": "partial_fill", "endpoint": "create_order", "fill_ratio": 0.5})
    assert runner.poll()
    (buy,) = journal.orders()
    runner.manager.reconcile()
    filled = journal.position()
    assert 0 < filled < buy.amount
    emulator.add_fault({"kind": "http_5xx", "endpoint": "cancel_order", "times": None})
    runner.risk.trip("stop_loss", "test: price against the entry")  # reduce-only, exit wanted
    policy.signal = 0.0
    runner.poll()
    sells = [o for o in emulator.state.orders.values() if o.side == "sell"]
    assert len(sells) == 1, [d for k, d in writer.events if k == "order_denied"]
    assert sells[0].amount == filled  # the filled long, not the filled long plus the stuck buy
    assert exchange_btc(emulator) >= 0  # never short


def test_a_stuck_cancel_of_a_resting_buy_never_sells_while_flat(exchange_adapter, emulator, journal, tmp_path):
    policy = _Signal(1.0)
    # passive: the buy rests 3% under the bid (it cannot fill)
    runner, writer = make_runner(exchange_adapter, journal, tmp_path, policy, sizing={"aggressiveness_bps": -300})
    assert runner.poll() and emulator.requests["create_order"] == 1
    assert journal.position() == 0
    emulator.add_fault({"kind": "http_5xx", "endpoint": "cancel_order", "times": None})
    policy.signal = 0.0  # long-only, target flat
    for _ in range(2):
        runner.poll()
    assert [o.side for o in emulator.state.orders.values()] == ["buy"], "a sell was placed while flat"
    assert journal.position() == 0 and exchange_btc(emulator) == 0


# ---- defect 4: exits despite unknown outcomes, de-duplicated alerts, skewed clocks ----------------
def test_an_exit_that_only_reduces_goes_through_despite_an_unknown_outcome(exchange_adapter, emulator, journal):
    seen: list = []
    manager = OrderManager(
        exchange_adapter, journal, "BTC/JPY", grace_ms=600_000, on_event=lambda k, **d: seen.append((k, d))
    )
    buy = manager.place("buy", Decimal("0.01"), marketable(exchange_adapter))  # fills at once
    manager.reconcile()
    assert journal.position() == Decimal("0.01") and journal.get(buy.client_id).state != UNKNOWN
    emulator.add_fault({"kind": "timeout", "endpoint": "create_order", "hang_ms": 600})
    unknown = manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    assert unknown.state == UNKNOWN
    with pytest.raises(OrderBlocked):  # positive control: new exposure stays blocked
        manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    exit_ = manager.place("sell", Decimal("0.01"), marketable(exchange_adapter, "sell"), reduce_only=True)
    assert exit_.state == OPEN
    manager.reconcile()
    assert journal.position() == 0 and exchange_btc(emulator) == 0
    # a sell beyond what is filled would flip to short if the unknown buy never happened: refused
    with pytest.raises(OrderBlocked):
        manager.place("sell", Decimal("0.01"), marketable(exchange_adapter, "sell"), reduce_only=True)


def test_alerts_for_an_unresolved_order_are_one_then_a_reminder(exchange_adapter, emulator, journal):
    seen: list = []
    manager = OrderManager(
        exchange_adapter, journal, "BTC/JPY", grace_ms=0, on_event=lambda k, **d: seen.append((k, d))
    )
    manager.reminder_s = 60
    clock = [0.0]
    manager._clock = lambda: clock[0]
    price = far_bid(exchange_adapter)
    # two foreign orders our lost placement could be: ambiguous, asked, blocking
    place_foreign(emulator, "buy", Decimal("0.01"), price)
    emulator.add_fault({"kind": "response_lost", "endpoint": "create_order", "hang_ms": 0})
    order = manager.place("buy", Decimal("0.01"), price)
    for _ in range(20):
        manager.reconcile()
        clock[0] += 1.0
    alerts = [d for k, d in seen if k == "alert" and d.get("client_id") == order.client_id]
    assert len(alerts) == 1 and len(alerts[0]["candidates"]) == 2
    clock[0] += 60
    manager.reconcile()
    alerts = [d for k, d in seen if k == "alert" and d.get("client_id") == order.client_id]
    assert len(alerts) == 2 and alerts[1]["reminder"]


class _SkewedTime:
    """The bot's clock `offset_s` ahead (only the clock that stamps and judges our orders)."""

    def __init__(self, offset_s: float) -> None:
        self.offset_ns = int(offset_s * 1e9)

    def time_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def time(self) -> float:
        return self.time_ns() / 1e9


def test_a_clock_180s_ahead_neither_strands_an_unknown_order_nor_floods_alerts(
    exchange_config, test_credentials, emulator, journal, tmp_path, monkeypatch
):
    import ztb_core.live.execution.orders as orders_mod

    monkeypatch.setattr(orders_mod, "time", _SkewedTime(180))
    # the shipped request timeout (10 s), not the fixture's 400 ms: on a busy machine the emulator can
    # take over 2.4 s to handle the placement, which would rightly count as a late execution
    adapter = make_adapter(exchange_config.model_copy(update={"timeout_ms": 10_000}), test_credentials)
    runner, writer = make_runner(adapter, journal, tmp_path, _Signal(1.0))
    emulator.add_fault({"kind": "response_lost", "endpoint": "create_order", "hang_ms": 0})
    assert runner.poll()
    (order,) = journal.orders()
    for _ in range(5):
        runner.poll()
    assert journal.get(order.client_id).state != UNKNOWN, "never resolved"
    assert journal.position() == exchange_btc(emulator) > 0
    assert len(critical(writer)) <= 1
    skew = [d for k, d in writer.events if k == "clock_skew"]
    assert skew and skew[0]["skew_ms"] == pytest.approx(-180_000, abs=3_000)


# ---- defect 6: foreign twins are not adopted without proof --------------------------------------
def test_a_venue_clock_that_stands_still_is_not_trusted_to_the_second(journal):
    """Two skew readings 1.5 s apart from a venue clock that does not run (the stock emulator's) differ
    by 1.5 s, inside the 2 s tolerance: trusting it put a placement's stamp 'late' once the polls
    took longer than the tolerance (a busy machine), and the order stayed unknown for ever. A clock
    is trusted only when two readings agree by less than half the time between them."""
    broker = OrderManager(object(), journal, "BTC/JPY")
    frozen = 1_796_000_000_000
    broker.observe_clock(frozen, 0, 0)
    broker.observe_clock(frozen, 1_500, 1_500)
    assert not broker.clock_trusted
    # positive control: a venue clock that runs with ours (latency jitter of 200 ms) is trusted
    running = OrderManager(object(), journal, "BTC/JPY")
    running.observe_clock(frozen, 0, 0)
    running.observe_clock(frozen + 1_500, 1_700, 1_700)
    assert running.clock_trusted


def test_a_twin_placed_just_before_our_timed_out_order_is_not_adopted(rt_adapter, rt_emulator, journal):
    emulator = rt_emulator
    manager = OrderManager(rt_adapter, journal, "BTC/JPY", grace_ms=0)
    manager.reconcile()  # the last sync before: the twin comes after it
    price = far_bid(rt_adapter)
    twin = place_foreign(emulator, "buy", Decimal("0.01"), price)
    time.sleep(3.5)  # ours is sent a few seconds after the twin, with no sync in between
    emulator.add_fault({"kind": "timeout", "endpoint": "create_order", "hang_ms": 600})  # ours never arrives
    order = manager.place("buy", Decimal("0.01"), price)
    report = manager.reconcile()
    assert journal.get(order.client_id).state == UNKNOWN, "a twin was adopted"
    assert report.ambiguous[order.client_id] == [str(twin)]
    manager.cancel_all()
    assert emulator.state.orders[twin].open  # never cancelled
    # the operator's word settles it, and the order is then ruled never placed
    resolve_order(journal, str(twin), "not-ours")
    manager.reconcile()
    assert journal.get(order.client_id).state == REJECTED and emulator.state.orders[twin].open


def test_a_twin_placed_after_our_timed_out_order_is_not_adopted(rt_adapter, rt_emulator, journal):
    emulator = rt_emulator
    manager = OrderManager(rt_adapter, journal, "BTC/JPY", grace_ms=0)
    manager.reconcile()  # a sync before (it also reads the exchange's clock)
    price = far_bid(rt_adapter)
    emulator.add_fault({"kind": "timeout", "endpoint": "create_order", "hang_ms": 600})  # ours never arrives
    order = manager.place("buy", Decimal("0.01"), price)
    time.sleep(3.0)  # someone places the same order after our request gave up, before our next sync
    twin = place_foreign(emulator, "buy", Decimal("0.01"), price)
    report = manager.reconcile()
    assert journal.get(order.client_id).state == UNKNOWN and report.ambiguous[order.client_id] == [str(twin)]
    manager.cancel_all()
    assert emulator.state.orders[twin].open


def test_a_lost_response_in_flight_is_still_adopted(exchange_adapter, emulator, journal):
    """Positive control of the twin rules: the one match stamped while our request was there is ours."""
    manager = OrderManager(exchange_adapter, journal, "BTC/JPY", grace_ms=0)
    emulator.add_fault({"kind": "response_lost", "endpoint": "create_order", "hang_ms": 0})
    order = manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
    assert order.client_id in manager.reconcile().resolved and journal.get(order.client_id).state == OPEN


# ---- defect 7: an order id we cannot use --------------------------------------------------------
def test_an_order_id_zero_blocks_with_an_alert_and_the_books_never_look_flat(exchange_adapter, emulator, journal):
    seen: list = []
    manager = OrderManager(
        exchange_adapter, journal, "BTC/JPY", grace_ms=0, on_event=lambda k, **d: seen.append((k, d))
    )
    emulator.state._next_order = 0  # the venue hands out order id 0
    order = manager.place("buy", Decimal("0.01"), marketable(exchange_adapter))  # fills at once
    assert exchange_btc(emulator) == Decimal("0.01")
    assert journal.get(order.client_id).state == UNKNOWN
    assert any(k == "alert" and "order id" in d["message"] for k, d in seen)
    for _ in range(3):
        manager.reconcile()
    assert journal.get(order.client_id).state == UNKNOWN  # never ruled out, never adopted as "0"
    buying, _ = manager.resting()
    assert journal.position() + buying >= exchange_btc(emulator)
    with pytest.raises(OrderBlocked):
        manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))
