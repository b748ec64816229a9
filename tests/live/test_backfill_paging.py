"""Start-up history against Coincheck's paging (the emulator, real ccxt): the public trades are paged
back by id as far as the history is needed, the store is read first so a `ztb data fetch`-ed history
costs only the pages after it, and the command that would fill a gap names the session's REST URL
(the emulator's history is not the venue's)."""

from __future__ import annotations

import time

import pandas as pd

from ztb_core.data.store import write_bars
from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, TradeTape
from ztb_core.live.market.backfill import backfill
from ztb_core.live.venue.factory import make_adapter

from .conftest import TEST_KEY, TEST_SECRET

NEED = 50  # bars; the emulator shows one hour of a ~2 trades/s tape (about 72 pages of 100)


def test_the_whole_visible_history_is_paged_back_by_id(emulator, exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    bars, report = backfill(exchange_adapter, "1m", 60_000, 200, now, "BTC/JPY")
    # 200 bars asked, the emulator has one hour: every visible minute comes back, the rest is missing
    assert 58 <= report.from_exchange <= 61 and report.missing == 200 - report.have
    assert emulator.requests["trades"] >= 60  # one request per 100 trades, back to the first
    assert bars.index.is_monotonic_increasing and bars.index.is_unique


def test_the_store_is_read_first_and_only_newer_trades_are_paged(emulator, exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    exchange = exchange_adapter.fetch_ohlcv_or_build("1m", since_ms=now - 3_600_000, now_ms=now)
    emulator.requests.clear()
    cut = now - 10 * 60_000  # the store (a `ztb data fetch` ten minutes ago) ends here
    write_bars(exchange[exchange.index < pd.Timestamp(cut, unit="ms", tz="UTC")], "BTC_JPY", "M1")
    bars, report = backfill(exchange_adapter, "1m", 60_000, NEED, now, "BTC/JPY")
    assert report.missing == 0 and report.from_store >= NEED - 11 and report.from_exchange <= 11
    assert emulator.requests["trades"] <= 15  # ten minutes of trades, not the hour
    assert bars.index.is_unique and (bars["close"] == exchange["close"].reindex(bars.index)).all()


def test_positive_control_without_the_store_the_hour_is_paged(emulator, exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    emulator.requests.clear()
    _, report = backfill(exchange_adapter, "1m", 60_000, NEED, now, "BTC/JPY")
    assert report.from_exchange >= NEED and emulator.requests["trades"] > 15


def test_the_fill_command_names_the_sessions_rest_url(emulator, exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    _, report = backfill(exchange_adapter, "1m", 60_000, 200, now, "BTC/JPY")
    lines = report.lines("coincheck", "BTC/JPY", pd.Timestamp(now - 200 * 60_000, unit="ms", tz="UTC"))
    assert (
        f"--since {pd.Timestamp(now - 200 * 60_000, unit='ms', tz='UTC'):%Y-%m-%d} --api-url {emulator.base_url}`"
        in (lines[-1])
    )


def test_a_fast_replay_on_the_wall_clock_keeps_its_history_whole(exchange_config, test_credentials):
    """`ztb emulator --speed 60` (wall clock): the replay is compressed 60x, the history visible at
    start is not; compressed, two hours of history read as two minutes (2 bars instead of 120)."""
    cfg = EmulatorConfig(speed=60, history_s=7200, api_key=TEST_KEY, secret=TEST_SECRET)
    with EmulatorServer(cfg, tape=TradeTape.random_walk(seed=1)) as emu:
        adapter = make_adapter(exchange_config.model_copy(update={"api_url": emu.base_url}), test_credentials)
        now = adapter.fetch_ticker().timestamp_ms
        assert abs(now - time.time() * 1000) < 60_000  # still rebased onto now
        _, report = backfill(adapter, "1m", 60_000, 200, now, "BTC/JPY")
    assert 115 <= report.from_exchange <= 122
