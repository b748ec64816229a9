"""History download into the data store (pagination, resume), bars from trades, and the
`ztb data fetch` / `ztb exchange health` commands, all against the emulator."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ztb_core.cli import app
from ztb_core.data import store
from ztb_core.data.bars_from_trades import ohlcv_to_bars, store_timeframe, trades_to_bars
from ztb_core.live.emulator import FaultRule
from ztb_core.live.market.fetch import fetch_history
from ztb_core.live.venue.errors import ExchangeUnavailable
from ztb_core.live.venue.exchange import ExchangeAdapter
from ztb_core.live.venue.factory import make_adapter
from ztb_core.live.venue.types import PublicTrade

MIN = 60_000


def emulator_now(emulator) -> int:
    return emulator.state.clock.report_ms(emulator.state.clock.tape_now_ms())


def tape_bars(emulator, lo_ms: int, hi_ms: int) -> pd.DataFrame:
    """The bars the emulator's tape implies for [lo, hi), built independently of the adapter."""
    clock, tape = emulator.state.clock, emulator.tape
    ts = np.array([clock.report_ms(t) for t in tape.ts_ms[: emulator.state.visible]])
    keep = (ts >= lo_ms) & (ts < hi_ms)
    trades = pd.DataFrame(
        {
            "timestamp_ms": ts[keep],
            "price": tape.price[: emulator.state.visible][keep],
            "amount": tape.size[: emulator.state.visible][keep],
        }
    )
    return trades_to_bars(trades, "1m")


def test_trades_to_bars_ohlcv_and_gaps():
    t0 = 1_700_000_000_000 // (5 * MIN) * (5 * MIN)
    trades = [
        PublicTrade("1", t0 + 1_000, Decimal("100"), Decimal("1"), "buy"),
        PublicTrade("2", t0 + 20_000, Decimal("105"), Decimal("2"), "sell"),
        PublicTrade("3", t0 + 59_999, Decimal("98"), Decimal("0.5"), "buy"),
        PublicTrade("4", t0 + 3 * MIN, Decimal("99"), Decimal("1"), "buy"),
    ]
    bars = trades_to_bars(list(reversed(trades)), "1m")
    assert list(bars.index.asi8 // 1_000_000) == [t0, t0 + 3 * MIN]  # empty minutes are absent
    assert bars.iloc[0][["open", "high", "low", "close", "volume", "trades"]].tolist() == [100, 105, 98, 98, 3.5, 3]
    assert str(bars.index.tz) == "UTC" and bars.index.name == "time"
    five = trades_to_bars(trades, "5m")
    assert len(five) == 1 and five.iloc[0]["close"] == 99 and five.iloc[0]["trades"] == 4
    ohlcv = ohlcv_to_bars([[t0 + MIN, 1, 2, 0.5, 1.5, 10], [t0, 1, 1, 1, 1, 1], [t0 + MIN, 1, 3, 0.5, 2, 11]])
    assert list(ohlcv["high"]) == [1, 3] and store_timeframe("1h") == "H1"


def test_fetch_history_pages_back_to_since_and_stores_complete_bars(exchange_adapter, emulator, tmp_path):
    now = emulator_now(emulator)
    since = now - 40 * MIN
    result = fetch_history(exchange_adapter, "1m", since, data_dir=tmp_path, now_ms=now)
    assert result.pages > 10 and result.trades_fetched > 1000 and not result.resumed
    stored = store.read_bars("BTC/JPY", "M1", data_dir=tmp_path)
    expected = tape_bars(emulator, since // MIN * MIN, now // MIN * MIN)
    assert len(stored) == len(expected) == result.bars_written >= 38
    np.testing.assert_allclose(
        stored[["open", "high", "low", "close", "volume", "trades"]].to_numpy(),
        expected[["open", "high", "low", "close", "volume", "trades"]].to_numpy(),
    )
    assert store.read_meta("BTC/JPY", "M1", tmp_path)["exchange"] == "coincheck"
    # a later run only fetches what is new since the last stored bar
    emulator.advance(300)
    later = fetch_history(exchange_adapter, "1m", since, data_dir=tmp_path, now_ms=now + 300_000)
    assert 4 <= later.bars_written <= 6 and later.pages < result.pages
    assert len(store.read_bars("BTC/JPY", "M1", data_dir=tmp_path)) == len(expected) + later.bars_written


def test_interrupted_fetch_resumes_from_its_checkpoint(exchange_config, test_credentials, emulator, tmp_path):
    now = emulator_now(emulator)
    since = now - 40 * MIN
    adapter = make_adapter(exchange_config, test_credentials)
    emulator.add_fault(FaultRule(kind="http_5xx", endpoint="trades", after=15, times=None))
    with pytest.raises(ExchangeUnavailable):
        fetch_history(adapter, "1m", since, data_dir=tmp_path, now_ms=now, checkpoint_every=5)
    state_file = next((tmp_path / ".fetch").glob("*.json"))
    state = json.loads(state_file.read_text())
    # 15 requests succeed before the fault; on a loaded machine a timed-out request is retried
    # and counts against those 15, so allow a page or two fewer
    done = state["pages"]
    assert 12 <= done <= 15 and state["cursor"]
    assert not store.has_dataset("BTC/JPY", "M1", tmp_path)  # nothing half-written into the store
    emulator.faults.clear()
    before = emulator.requests["trades"]
    resumed = fetch_history(adapter, "1m", since, data_dir=tmp_path, now_ms=now)
    assert resumed.resumed and resumed.pages > done
    # it continued from the cursor instead of starting over
    new_requests = emulator.requests["trades"] - before  # retries under load may add a few
    assert resumed.pages - done <= new_requests < resumed.pages
    stored = store.read_bars("BTC/JPY", "M1", data_dir=tmp_path)
    expected = tape_bars(emulator, since // MIN * MIN, now // MIN * MIN)
    np.testing.assert_allclose(
        stored[["open", "close", "volume", "trades"]].to_numpy(),
        expected[["open", "close", "volume", "trades"]].to_numpy(),
    )
    assert not state_file.exists()


class _OhlcvExchange:
    """A stand-in for a ccxt exchange that has fetchOHLCV (no such exchange is on loopback)."""

    has = {"fetchOHLCV": True}
    rateLimit = 0
    last_json_response = last_http_response = None

    def __init__(self, t0: int, n: int) -> None:
        self.rows = [[t0 + i * MIN, 100 + i, 101 + i, 99 + i, 100.5 + i, 1.0] for i in range(n)]
        self.calls = []

    def fetch_ohlcv(self, symbol, timeframe, since, limit):
        self.calls.append(since)
        return [r for r in self.rows if r[0] >= since][:3]


def test_fetch_uses_exchange_ohlcv_with_forward_paging(exchange_config, tmp_path):
    t0 = 1_700_000_000_000 // MIN * MIN
    fake = _OhlcvExchange(t0, 10)
    adapter = ExchangeAdapter(exchange_config.model_copy(update={"exchange": "binance"}), exchange=fake)
    result = fetch_history(adapter, "1m", t0, until_ms=t0 + 8 * MIN, data_dir=tmp_path, now_ms=t0 + 60 * MIN)
    stored = store.read_bars("BTC/JPY", "M1", data_dir=tmp_path)
    assert result.bars_written == len(stored) == 8 and list(stored["open"]) == [100 + i for i in range(8)]
    assert fake.calls[:3] == [t0, t0 + 3 * MIN, t0 + 6 * MIN]
    again = fetch_history(adapter, "1m", t0, until_ms=t0 + 10 * MIN, data_dir=tmp_path, now_ms=t0 + 60 * MIN)
    assert again.resumed and again.bars_written == 2


def test_cli_data_fetch_and_exchange_health(emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("ZTB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    fast = [
        "--set",
        "rate_limit.ccxt_rate_limit=false",
        "--set",
        "rate_limit.requests_per_s=10000",
        "--set",
        "rate_limit.burst=10000",
    ]
    since = pd.Timestamp(emulator_now(emulator) - 20 * MIN, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M")
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "fetch",
            "--exchange",
            "coincheck",
            "--symbol",
            "BTC/JPY",
            "--timeframe",
            "1m",
            "--since",
            since,
            "--api-url",
            emulator.base_url,
            *fast,
        ],
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"stored \d+ bars", res.output)
    assert len(store.read_bars("BTC/JPY", "M1")) >= 18
    res = runner.invoke(
        app,
        [
            "exchange",
            "health",
            "--exchange",
            "coincheck",
            "--symbol",
            "BTC/JPY",
            "--api-url",
            emulator.base_url,
            "--samples",
            "3",
            *fast,
        ],
    )
    assert res.exit_code == 0, res.output
    for needle in ("reachable", "yes", "p50", "p95", "clock skew", "HTTP Date header", "min 0.005"):
        assert needle in res.output
    dead = runner.invoke(
        app, ["exchange", "health", "--api-url", "http://127.0.0.1:1/api", "--set", "retry.max_attempts=1", *fast]
    )
    assert dead.exit_code == 1 and "NO:" in dead.output
    bad = runner.invoke(app, ["data", "fetch", "--since", "yesterday-ish", "--api-url", emulator.base_url])
    assert bad.exit_code != 0 and "not a date" in str(bad.exception)


def test_ticker_polling_builds_bars_when_no_trades_endpoint_helps():
    from ztb_core.data.bars_from_trades import TickerBarBuilder

    t0 = 1_700_000_000_000 // MIN * MIN
    builder = TickerBarBuilder("1m")
    out = [builder.update(t0 + s * 1000, p) for s, p in [(0, 10.0), (20, 12.0), (40, 9.0), (59, 11.0)]]
    assert all(len(b) == 0 for b in out)  # the minute is still open
    closed = builder.update(t0 + MIN + 5_000, 13.0)
    assert closed.iloc[0][["open", "high", "low", "close", "trades"]].tolist() == [10, 12, 9, 11, 4]
    assert closed.index[0].value // 1_000_000 == t0
    assert len(builder.update(t0 + 30_000, 99.0)) == 0  # a late poll does not reopen a closed bar
    later = builder.update(t0 + 3 * MIN, 14.0)
    assert later.iloc[0][["open", "close", "trades"]].tolist() == [13, 13, 1]


def test_cli_emulator_serves_until_interrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time as _time

    import requests

    env = {**os.environ, "ZTB_ARTIFACTS": str(tmp_path), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ztb_core.cli",
            "emulator",
            "--port",
            "0",
            "--speed",
            "0",
            "--set",
            "synthetic_days=0.1",
            "--set",
            "history_s=600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = None
        deadline = _time.time() + 30
        while url is None and _time.time() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"REST URL: (http://127\.0\.0\.1:\d+/api)", line)
            url = match.group(1) if match else None
        assert url, "the emulator printed its URL"
        assert requests.get(f"{url}/ticker?pair=btc_jpy", timeout=5).json()["last"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "emulator stopped; requests served: 1" in out


def test_health_reports_rate_limit_headroom_and_private_access(emulator_config, test_credentials, exchange_config):
    from ztb_core.live.emulator import EmulatorServer, TradeTape
    from ztb_core.live.venue.health import check_health

    cfg = emulator_config.model_copy(update={"rate_limit_per_s": 50.0, "rate_limit_burst": 40})
    with EmulatorServer(cfg, tape=TradeTape.random_walk(n=3000)) as emu:
        adapter = make_adapter(exchange_config.model_copy(update={"api_url": emu.base_url}), test_credentials)
        report = check_health(adapter, samples=4)
    assert report.reachable and report.status == "ok" and report.latency["n"] == 4
    assert report.rate_limit["limit"] == "40" and 30 <= int(report.rate_limit["remaining"]) < 40
    assert abs(report.clock_skew_ms) < 1500 and report.private.startswith("ok")
    assert report.limits.min_amount == Decimal("0.005")


def test_ctrl_c_the_moment_the_url_is_printed_still_stops_cleanly(monkeypatch, capsys):
    """A script that reads the URL and interrupts at once (the test above, on a loaded machine)
    caught the emulator between printing and its wait loop: a KeyboardInterrupt traceback and
    exit 130. The interrupt is raised here exactly as the URL is printed; the command must still
    stop the server and say so, returning normally."""
    from rich.console import Console

    from ztb_core.cli.exchange import emulator_cmd

    printed: list[str] = []
    real_print = Console.print

    def interrupted_at_the_url(self, *objects, **kw):
        real_print(self, *objects, **kw)
        printed.append(" ".join(map(str, objects)))
        if "REST URL" in printed[-1]:
            raise KeyboardInterrupt

    monkeypatch.setattr(Console, "print", interrupted_at_the_url)
    try:
        emulator_cmd(
            port=0,
            source="synthetic",
            api_key="k",
            secret="s",
            speed=0.0,
            config=None,
            set_=["synthetic_days=0.1", "history_s=600"],
            ws_port=-1,
        )
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped the command: a traceback and exit 130 for the user")
    assert any("REST URL" in p for p in printed)
    assert printed[-1].startswith("emulator stopped; requests served: 0")


@pytest.mark.parametrize("flag", ["--port", "--ws-port"])
def test_a_port_in_use_is_one_clear_error(flag, capsys):
    """A REST or websocket port another process holds: exit 2, one line naming the address and the
    flag to change, no traceback, and no "emulator stopped" for a REST server that never started."""
    import socket

    from ztb_core.cli.app import main

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        other = {"--port": ["--ws-port", "-1"], "--ws-port": ["--port", "0"]}[flag]
        args = ["emulator", flag, str(port), *other, "--speed", "0", "--set", "synthetic_days=0.1"]
        code = main([*args, "--set", "history_s=600"])
    out = capsys.readouterr()
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.err and flag in out.err
    assert "Traceback" not in out.err + out.out
    assert ("emulator stopped" in out.out) == (flag == "--ws-port")  # the REST server ran only then
