"""Streaming market data: bars built from trades as they arrive; through the emulator's coincheck
websocket (ccxt.pro's own client) they equal the tape's bars, the first one completed over REST; a
dead websocket falls back to REST polling; `ztb live --set market_data=websocket` decides from it."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest

from ztb_core.cli import main
from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, load_synthetic
from ztb_core.live.emulator.ws import WsServer
from ztb_core.live.market.stream import BarBuilder, MarketFeed, StreamTrade
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET
from .test_runner import live_args, read_jsonl

T0 = 1_700_000_040_000  # a minute boundary


def trade(i: int, ts: int, price: float) -> StreamTrade:
    return StreamTrade(str(i), ts, price, 0.5)


def test_bar_builder_closes_on_the_next_minute_and_on_the_clock():
    b = BarBuilder()
    for i, (dt, p) in enumerate([(0, 10.0), (20_000, 12.0), (59_000, 9.0), (61_000, 11.0)]):
        b.add(trade(i, T0 + dt, p))
    (bar,) = b.pop()
    assert (bar.open_ms, bar.open, bar.high, bar.low, bar.close, bar.trades) == (T0, 10.0, 12.0, 9.0, 9.0, 3)
    assert bar.last_trade_ms == T0 + 59_000 and bar.volume == 1.5
    b.add(trade(2, T0 + 59_500, 1.0))  # a repeated id and a late trade change nothing
    b.add(trade(9, T0 + 59_500, 1.0))
    assert b.late == 1 and b.pop() == []
    b.tick(T0 + 119_999)
    assert b.pop() == []
    b.tick(T0 + 120_000)  # quiet market: the clock closes the bar
    (bar,) = b.pop()
    assert bar.open_ms == T0 + 60_000 and bar.close == 11.0


@pytest.fixture
def manual_emulator():
    cfg = EmulatorConfig(speed=0, history_s=3600, api_key=TEST_KEY, secret=TEST_SECRET)
    with EmulatorServer(cfg, tape=load_synthetic(0.5, seed=3)) as emu, WsServer(emu.state) as ws:
        yield emu, ws


def test_websocket_bars_equal_the_tape(manual_emulator, exchange_config):
    from ztb_core.live.venue.factory import make_adapter

    emu, ws = manual_emulator
    adapter = make_adapter(exchange_config.model_copy(update={"api_url": emu.base_url}))
    feed = MarketFeed.websocket(adapter, ws.url).start()
    try:
        time.sleep(1.0)  # let ccxt.pro subscribe: trades printed before that are not sent
        frames = []
        for _ in range(6):
            emu.advance(60)  # the manual clock prints a minute of trades; the next minute's first closes the bar
            frames.append(feed.next_bars(2.0, exchange_now_ms=0))  # 0: no clock-based close (manual clock)
        streamed = pd.concat(frames)
        assert len(streamed) >= 4, f"only {len(streamed)} bars streamed"
        assert feed.mode == "websocket" and feed.builder.late == 0
        # the truth: the tape's own trades, on the clock the emulator reports
        tape, clock = emu.tape, emu.state.clock
        shown = np.array([clock.report_ms(t) for t in tape.ts_ms])
        for when, bar in streamed.iterrows():
            start = when.value // 1_000_000
            inside = (shown >= start) & (shown < start + 60_000)
            prices = tape.price[inside]
            expect = (prices[0], prices.max(), prices.min(), prices[-1], tape.size[inside].sum())
            got = (bar.open, bar.high, bar.low, bar.close, bar.volume)
            np.testing.assert_allclose(got, expect, rtol=1e-9, err_msg=f"bar {when}")
        assert feed.ticker() is not None  # the order book stream gives the touch
    finally:
        feed.stop()


def test_a_dead_websocket_falls_back_to_rest(manual_emulator, exchange_config):
    from ztb_core.live.venue.factory import make_adapter

    emu, _ = manual_emulator
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{s.getsockname()[1]}/"
    adapter = make_adapter(exchange_config.model_copy(update={"api_url": emu.base_url}))
    feed = MarketFeed.websocket(adapter, dead, max_ws_failures=2).start()
    try:
        deadline = time.monotonic() + 20
        while feed.mode == "websocket" and time.monotonic() < deadline:
            feed.next_bars(0.2)
        assert feed.mode == "rest" and "polling REST" in feed.fallback_reason
        feed.next_bars(0)  # REST polling picks up the trades since two minutes ago
        emu.advance(120)
        bars = feed.next_bars(0)
        assert len(bars) >= 1 and feed.builder.trades > 0
    finally:
        feed.stop()


def test_live_dry_run_decides_from_the_websocket(artifacts):
    cfg = EmulatorConfig(
        speed=120, clock="tape", history_s=3 * 3600, api_key=TEST_KEY, secret=TEST_SECRET, balances={"jpy": 1e6}
    )
    with EmulatorServer(cfg, tape=load_synthetic(0.5, seed=3)) as emu, WsServer(emu.state) as ws:
        args = live_args(
            emu, "--dry-run", "--max-bars", "3", "--set", "market_data=websocket", "--set", f"ws_url={ws.url}"
        )
        assert main(args) == 0
        assert ws.messages > 0
    (run,) = list_runs()
    events = read_jsonl(run.dir / "events.jsonl")
    assert not [e for e in events if e["event"] == "alert"], "the websocket should not have fallen back"
    report = json.loads((run.dir / "reports" / "live_report.json").read_text())
    assert report["bars"] == 3 and report["decisions"] == 3
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live"]
    placed = [m for m in metrics if m.get("decision") == "placed"]
    assert all(m["trade_to_order_ms"] is not None for m in placed)
    if placed:
        assert report["trade_to_order_ms"]["n"] == len(placed)


def test_live_falls_back_to_rest_when_the_websocket_is_dead(artifacts):
    cfg = EmulatorConfig(
        speed=120, clock="tape", history_s=3 * 3600, api_key=TEST_KEY, secret=TEST_SECRET, balances={"jpy": 1e6}
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{s.getsockname()[1]}/"
    with EmulatorServer(cfg, tape=load_synthetic(0.5, seed=3)) as emu:
        extra = ("--set", "market_data=websocket", "--set", f"ws_url={dead}", "--set", "ws_max_failures=1")
        assert main(live_args(emu, "--dry-run", "--max-bars", "2", *extra)) == 0
    (run,) = list_runs()
    events = read_jsonl(run.dir / "events.jsonl")
    alerts = [e["message"] for e in events if e["event"] == "alert"]
    assert any("polling REST" in m for m in alerts), alerts
    assert json.loads((run.dir / "reports" / "live_report.json").read_text())["bars"] == 2


def test_held_first_bar_takes_earlier_trades_in_time_order():
    """The stream starts mid-bar; REST then delivers that bar's earlier trades after later ones."""
    b = BarBuilder()
    b.hold = True
    b.add(trade(5, T0 + 40_000, 20.0))
    b.add(trade(6, T0 + 61_000, 30.0))  # closes the first bar, which is held back
    assert b.pop() == [] and b.first_open_ms() == T0
    b.add(trade(3, T0 + 10_000, 5.0))  # REST: earlier trades of the held bar
    b.add(trade(4, T0 + 20_000, 25.0))
    b.add(trade(5, T0 + 40_000, 20.0))  # a repeat is ignored
    b.hold = False
    (first,) = b.pop()
    assert (first.open, first.high, first.low, first.close, first.trades) == (5.0, 25.0, 5.0, 20.0, 3)
    assert b.late == 0


def test_a_minute_before_the_first_streamed_trade_is_built_while_held():
    """Found by the market-data fuzzer: the subscription's first trade fell in the minute after the
    history's last bar; the REST fill began at that trade's minute, and the minute between was never
    built (a bar missing from the agent's buffer). While held, REST trades of an earlier minute with
    no bar of its own make one, handed out in time order; once released, such a trade is late."""
    b = BarBuilder()
    b.hold = True
    b.add(trade(20, T0 + 65_000, 30.0))  # the stream starts in the second minute
    b.add(trade(11, T0 + 5_000, 10.0))  # REST from the history's end: the first minute
    b.add(trade(12, T0 + 50_000, 12.0))
    b.add(trade(21, T0 + 125_000, 31.0))  # the stream closes the second minute
    b.hold = False
    bars = b.pop()
    assert [x.open_ms for x in bars] == [T0, T0 + 60_000]
    assert (bars[0].open, bars[0].high, bars[0].close, bars[0].trades) == (10.0, 12.0, 12.0, 2)
    b.add(trade(13, T0 + 55_000, 1.0))  # no longer held: too late for a bar already handed out
    assert b.late == 1


# ---- issue 25 defect 2: a websocket that stays open but goes silent ------------------------------
def test_a_silent_websocket_falls_back_to_rest_and_comes_back(manual_emulator, exchange_config):
    """The emulator's websocket goes silent with the socket open (no trade, no book, no snapshot):
    after `silence_s` without a message the feed polls REST (trades keep arriving), drops the socket,
    tries a fresh one every `reconnect_s`, and hands the bars back to the websocket once the venue
    speaks again. Without the silence rule the feed waits on the open socket for ever."""
    from ztb_core.live.venue.factory import make_adapter

    emu, ws = manual_emulator
    adapter = make_adapter(exchange_config.model_copy(update={"api_url": emu.base_url}))
    feed = MarketFeed.websocket(adapter, ws.url, silence_s=2.0, reconnect_s=0.5).start()
    try:
        # the manual clock prints only when moved: keep it moving so the subscription hears trades
        assert _advance_until(emu, feed, lambda: feed._worker.connected.is_set(), limit_s=10.0)
        assert _advance_until(emu, feed, lambda: False, limit_s=0.5) is False and feed.mode == "websocket"
        ws.silence(for_s=5.0)
        withheld, t0 = ws.silenced, time.monotonic()
        seen = feed.builder.trades
        # the tape goes on printing; nothing reaches the socket
        assert _advance_until(emu, feed, lambda: feed.mode == "rest", limit_s=5.0)
        # silence is counted from the last message, which came a moment before the stall began
        assert 1.5 < time.monotonic() - t0 < 4.5 and ws.silenced > withheld
        assert "silent" in feed.fallback_reason and "polling REST" in feed.fallback_reason and feed.fallbacks == 1
        assert _advance_until(emu, feed, lambda: feed.builder.trades > seen + 5, limit_s=3.0)  # REST delivers
        assert feed.status()["market_data"] == "rest"
        # the stall ends: a reconnect hears the venue and the bars come from the websocket again
        assert _advance_until(emu, feed, lambda: feed.mode == "websocket", limit_s=8.0)
        assert feed.recoveries == 1 and feed.builder.late == 0
        sent = ws.messages
        assert _advance_until(emu, feed, lambda: ws.messages > sent, limit_s=3.0)
    finally:
        feed.stop()


def _advance_until(emu, feed, cond, limit_s: float = 5.0) -> bool:
    """Print ten seconds of tape every 0.1 s (polling the feed) until `cond()` or `limit_s`."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if cond():
            return True
        emu.advance(10)
        feed.next_bars(0.1, exchange_now_ms=0)
    return cond()


def _stall_emulator(**extra):
    cfg = EmulatorConfig(
        speed=120,
        clock="tape",
        history_s=3 * 3600,
        api_key=TEST_KEY,
        secret=TEST_SECRET,
        balances={"jpy": 1e6, "btc": 0.1},
        **extra,
    )
    return EmulatorServer(cfg, tape=load_synthetic(0.5, seed=3))


def _stop_after(runs_root, seconds: float, done: threading.Event) -> threading.Thread:
    """A watchdog: the run's kill-file after `seconds` (a frozen bot would otherwise never end)."""

    def stop() -> None:
        if not done.wait(seconds):
            for d in runs_root.glob("*/"):
                (d / "ztb.stop").write_text("watchdog\n")

    th = threading.Thread(target=stop, daemon=True)
    th.start()
    return th


def test_live_keeps_deciding_when_the_websocket_goes_silent(artifacts):
    """`ztb live` on the websocket; 4 s in, the emulator's socket goes silent for 10 minutes with
    the connection held open. The bot must fall back to REST (an alert says so) and keep deciding
    bar after bar; the `market` metrics show the channel. Before the fix it decided nothing after
    the stall (the watchdog's kill-file then ends it short of its bars)."""
    done = threading.Event()
    with _stall_emulator(ws_silent=[{"after_s": 4, "for_s": 600}]) as emu, WsServer(emu.state) as ws:
        _stop_after(artifacts / "runs", 60, done)
        extra = ["--set", "market_data=websocket", "--set", f"ws_url={ws.url}", "--set", "ws_silence_s=1"]
        extra += ["--set", "ws_reconnect_s=600", "--set", "risk_interval_s=0.5"]
        try:
            assert main(live_args(emu, "--dry-run", "--max-bars", "16", *extra)) == 0
        finally:
            done.set()
        assert ws.silenced > 0, "the stall never began: the test proved nothing"
    (run,) = list_runs()
    assert run.state == "completed", run.state
    events = read_jsonl(run.dir / "events.jsonl")
    alerts = [e["message"] for e in events if e["event"] == "alert"]
    assert any("websocket silent" in m and "polling REST" in m for m in alerts), alerts
    report = json.loads((run.dir / "reports" / "live_report.json").read_text())
    assert report["bars"] == 16 and report["decisions"] == 16


def test_a_stall_on_both_channels_trips_the_stale_breaker_and_syncs_go_on(artifacts, monkeypatch):
    """Real trading on the websocket; after two decisions the socket goes silent (held open) AND the
    public REST endpoints fail. No fresh price from either channel: the stale-data breaker trips
    (critical alert, the status line says STALE, `market` metrics say stale) while the private syncs
    keep running on their own timer (the exchange sees open-orders/fills requests during the stall)."""
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    runs_root = artifacts / "runs"
    seen: dict = {}

    with _stall_emulator() as emu, WsServer(emu.state) as ws:

        def stall_then_watch() -> None:
            status = None
            for _ in range(1200):  # 60 s
                time.sleep(0.05)
                dirs = list(runs_root.glob("*/")) if runs_root.exists() else []
                status = dirs[0] / "status.json" if dirs else None
                if status is None or not status.exists():
                    continue
                state = json.loads(status.read_text())
                if "stalled_at" not in seen and (state.get("step") or 0) >= 2:
                    for endpoint in ("ticker", "trades", "order_books"):
                        emu.add_fault({"kind": "http_5xx", "endpoint": endpoint, "times": None})
                    ws.silence(for_s=600)
                    seen["stalled_at"] = time.monotonic()
                    seen["private_before"] = _private(emu)
                events = (dirs[0] / "events.jsonl").read_text() if (dirs[0] / "events.jsonl").exists() else ""
                if "stalled_at" in seen and '"stale_data"' in events and "tripped_at" not in seen:
                    seen["tripped_at"] = time.monotonic()
                    seen["private_at_trip"] = _private(emu)
                if "tripped_at" in seen and time.monotonic() - seen["tripped_at"] > 1.5:
                    # the status line is rewritten about once a second: give a loaded machine time
                    seen["status"] = json.loads(status.read_text()).get("message", "")
                    if "STALE" in seen["status"] or time.monotonic() - seen["tripped_at"] > 10:
                        seen["private_after"] = _private(emu)
                        break
            if status is not None:
                (status.parent / "ztb.stop").write_text("test\n")

        th = threading.Thread(target=stall_then_watch, daemon=True)
        th.start()
        extra = ["--set", "market_data=websocket", "--set", f"ws_url={ws.url}", "--set", "ws_silence_s=1"]
        extra += ["--set", "ws_reconnect_s=600", "--set", "risk_interval_s=0.3", "--set", "risk.stale_data_s=2"]
        extra += ["--set", "exchange.retry.max_attempts=1", "--set", "risk.max_consecutive_errors=1000"]
        rc = main(live_args(emu, "--set", "mode=live", "--confirm-live", "--max-bars", "400", *extra))
        th.join(5)
    assert rc == 0
    assert "stalled_at" in seen, "the session never reached two decisions"
    assert "tripped_at" in seen, "no stale-data breaker within a minute of the stall"
    assert seen["tripped_at"] - seen["stalled_at"] < 15
    assert seen["private_after"] > seen["private_at_trip"] > seen["private_before"], seen
    assert "STALE" in seen["status"], seen["status"]
    (run,) = list_runs()
    events = read_jsonl(run.dir / "events.jsonl")
    assert any(e["event"] == "alert" and e.get("level") == "critical" and "stale" in e["message"] for e in events)
    market = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "market"]
    assert market and market[-1]["stale"] is True and market[-1]["market_data"] == "rest"


def _private(emu) -> int:
    return sum(emu.requests[e] for e in ("open_orders", "transactions", "transactions_pagination", "order"))
