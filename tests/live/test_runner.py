"""The decision loop end to end through `ztb live`, against the emulator with the real ccxt client:
a dry run writes the run directory the console reads; the kill-file stops it safely."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from pathlib import Path

import pytest

from ztb_core.cli import main
from ztb_core.live.emulator import EmulatorConfig, EmulatorServer
from ztb_core.live.execution.journal import Journal
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET

PRIVATE = {"create_order", "cancel_order", "open_orders", "balance", "transactions", "accounts", "order"}


def live_args(emu: EmulatorServer, *extra: str) -> list[str]:
    return [
        "live",
        "--set",
        f"exchange.api_url={emu.base_url}",
        "--set",
        "exchange.rate_limit.requests_per_s=10000",
        "--set",
        "exchange.rate_limit.burst=10000",
        "--set",
        "exchange.rate_limit.ccxt_rate_limit=false",
        "--set",
        "exchange.timeout_ms=2000",
        "--set",
        "poll_interval_s=0.05",
        "--set",
        "warmup_bars=40",
        "--set",
        "policy.sma_fast=2",
        "--set",
        "policy.sma_slow=4",
        "--set",
        "sizing.min_change_fraction=0",
        "--set",
        "sizing.vol_lookback_bars=30",
        *extra,
    ]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_dry_run_session_end_to_end(fast_emulator, artifacts):
    assert main(live_args(fast_emulator, "--dry-run", "--max-bars", "8")) == 0
    (run,) = list_runs()
    assert run.kind == "live" and run.state == "completed" and run.step == 8
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live"]
    assert len(metrics) == 8
    for key in ("equity", "pnl", "position", "open_orders", "latency_ms", "risk_state"):
        assert key in metrics[-1]
    events = [e["event"] for e in read_jsonl(run.dir / "events.jsonl")]
    assert "reconciled_at_start" in events and "live_started" in events and events[-1] == "completed"
    report = json.loads((run.dir / "reports" / "live_report.json").read_text())
    assert report["mode"] == "dry_run" and report["bars"] == 8
    assert (run.dir / "reports" / "equity.png").stat().st_size > 1000
    # the dry run never touched a private endpoint, and kept its own journal
    assert not (set(fast_emulator.requests) & PRIVATE), dict(fast_emulator.requests)
    journal = artifacts / "live" / "journal-paper-coincheck-BTC_JPY.sqlite"
    with Journal(journal, "paper", "coincheck", "BTC/JPY") as j:
        assert report["orders"] == len(j.orders())
        if report["orders"]:
            placed = [m for m in metrics if m.get("decision") == "placed"]
            assert placed and all(m["latency_ms"] is not None and m["latency_ms"] < 1000 for m in placed)


def test_kill_file_cancels_open_orders_and_stops(fast_emulator, artifacts, monkeypatch):
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    runs_root = artifacts / "runs"

    def drop_kill_file_when_an_order_rests():
        for _ in range(600):
            resting = any(o.open for o in list(fast_emulator.state.orders.values()))
            for d in runs_root.glob("*") if runs_root.exists() and resting else []:
                (d / "ztb.stop").write_text("stop\n")
                return
            time.sleep(0.05)

    th = threading.Thread(target=drop_kill_file_when_an_order_rests, daemon=True)
    th.start()
    # passive prices (far below the touch) so orders rest and have to be cancelled on stop
    rc = main(
        live_args(
            fast_emulator,
            "--set",
            "mode=live",
            "--confirm-live",
            "--set",
            "sizing.aggressiveness_bps=-300",
            "--set",
            "policy.kind=sma",
            "--max-bars",
            "400",
        )
    )
    th.join(5)
    assert rc == 0
    (run,) = list_runs()
    assert run.state == "stopped"
    events = read_jsonl(run.dir / "events.jsonl")
    assert any(e["event"] == "stop_requested" for e in events)
    assert not any(o.open for o in fast_emulator.state.orders.values()), "an order was left open"
    stop_cancels = [e for e in events if e["event"] == "orders_cancelled" and e.get("why") == "stop"]
    assert stop_cancels and len(fast_emulator.state.orders) >= 1


def test_daily_report_at_each_utc_day_rollover(artifacts):
    """Manual exchange clock (speed 0) in tape time, 20 minutes before midnight UTC: a thread
    moves time on a minute at a time while the dry run trades across midnight."""
    from datetime import datetime

    from ztb_core.live.emulator import TradeTape

    start = datetime(2018, 1, 20, 23, 0, tzinfo=UTC)
    cfg = EmulatorConfig(
        speed=0,
        clock="tape",
        history_s=40 * 60,
        api_key=TEST_KEY,
        secret=TEST_SECRET,
        balances={"jpy": 1_000_000.0, "btc": 0.1},
    )
    with EmulatorServer(cfg, tape=TradeTape.random_walk(start_ms=int(start.timestamp() * 1000), seed=1)) as emu:
        done = threading.Event()

        def clock() -> None:  # once the loop runs: one minute of exchange time every 100 ms until it ends
            while not done.wait(0.05) and not any(
                '"running"' in (d / "status.json").read_text()
                for d in (artifacts / "runs").glob("*/")
                if (d / "status.json").exists()
            ):
                pass
            while not done.wait(0.1):
                emu.advance(60)

        th = threading.Thread(target=clock, daemon=True)
        th.start()
        try:
            # 30 decisions take at least 30 minutes of exchange time: midnight is crossed once
            rc = main(live_args(emu, "--dry-run", "--max-bars", "30"))
        finally:
            done.set()
            th.join(5)
    assert rc == 0
    (run,) = list_runs()
    reports = run.dir / "reports"
    events = read_jsonl(run.dir / "events.jsonl")
    daily = [e for e in events if e["event"] == "daily_report"]
    assert [e["date"] for e in daily] == ["2018-01-20"], [e["event"] for e in events]
    report = json.loads((reports / "live_report_2018-01-20.json").read_text())
    assert report["date"] == "2018-01-20" and report["mode"] == "dry_run"
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live"]
    assert 1 <= report["bars"] < len(metrics) == 30  # the day's decisions, not the whole session
    before = metrics[report["bars"] - 1]["equity"]  # the last point of that day
    assert report["equity_close"] == pytest.approx(before)
    assert report["equity_open"] == pytest.approx(100_000.0)  # the capital: the session began that day
    assert report["pnl"] == pytest.approx(report["equity_close"] - report["equity_open"])
    assert (reports / "equity_2018-01-20.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (reports / "live_report_2018-01-21.json").exists()  # the day in progress is in the stop report
    assert (reports / "live_report.json").exists()


def test_raising_capital_between_restarts_keeps_the_day_s_loss_and_halts(fast_emulator, artifacts, tmp_path):
    """Issue 25 defect 7: the day's P&L is measured from the day's equity at its start (recorded in
    the journal at the first sync), not from the config's `capital`. A session starts the day with
    100,000; a round trip then loses 21,000 JPY; the next session starts with `capital` raised to
    150,000: the day is still -21,000 (not +29,000) and the daily-loss halt (10,000) fires."""
    from decimal import Decimal

    from ztb_core.live.execution.orders import Fill

    path = tmp_path / "paper.sqlite"
    base = live_args(fast_emulator, "--dry-run", "--set", f"journal_path={path}", "--set", "policy.sma_fast=3")
    base += ["--set", "costs.fee_bps=0", "--set", "risk.daily_loss_limit=10000"]
    assert main([*base, "--set", "capital=100000", "--max-bars", "1"]) == 0
    now = int(time.time() * 1000)
    with Journal(path, "paper", "coincheck", "BTC/JPY") as j:  # the day's trading: -21,000 JPY, flat again
        lost = Decimal("0.02") * Decimal("1050000")
        assert lost == 21000
        j.record_fill(Fill("PF9001", None, "P9001", "buy", Decimal("0.02"), Decimal("2250000"), Decimal(0), "JPY", now))
        j.record_fill(
            Fill("PF9002", None, "P9002", "sell", Decimal("0.02"), Decimal("1200000"), Decimal(0), "JPY", now)
        )
    assert main([*base, "--set", "capital=150000", "--max-bars", "1"]) == 0
    second = max(list_runs(), key=lambda r: r.dir.stat().st_mtime)
    (metric,) = [m for m in read_jsonl(second.dir / "metrics.jsonl") if m["split"] == "live"]
    assert -21_500 < metric["daily_pnl"] < -20_500, metric["daily_pnl"]
    trips = [e for e in read_jsonl(second.dir / "events.jsonl") if e["event"] == "breaker_tripped"]
    assert [e["breaker"] for e in trips] == ["daily_loss_limit"], trips
    report = json.loads((second.dir / "reports" / "live_report.json").read_text())
    assert report["risk"]["daily_halt"] and "21" in report["risk"]["daily_halt"]


def test_stop_loss_is_checked_on_the_watch_timer_when_no_bar_closes(emulator, artifacts, tmp_path):
    """Issue 25 defect 2: the risk checks run on their own timer, not only on a bar close. The
    exchange clock is frozen (no bar ever closes) while the paper journal holds a long bought 10%
    above the market: the stop-loss (5%) must trip and flatten within a few watch intervals. Before
    the fix nothing ran until a bar closed (the watchdog's kill-file ends the run with no trip)."""
    from decimal import Decimal

    from ztb_core.live.execution.orders import Fill

    path = tmp_path / "paper.sqlite"
    price = Decimal(repr(emulator.state.ticker()["last"]))
    with Journal(path, "paper", "coincheck", "BTC/JPY") as j:
        entry = (price * Decimal("1.10")).quantize(Decimal(1))
        j.record_fill(
            Fill("PF9001", None, "P9001", "buy", Decimal("0.02"), entry, Decimal(0), "JPY", int(time.time() * 1000))
        )

    def watchdog() -> None:
        for _ in range(300):  # 15 s
            time.sleep(0.05)
            for d in (artifacts / "runs").glob("*/") if (artifacts / "runs").exists() else []:
                events = (d / "events.jsonl").read_text() if (d / "events.jsonl").exists() else ""
                if "stop_loss_exit" in events:
                    time.sleep(0.5)  # the exit order is placed right after the event
                    (d / "ztb.stop").write_text("test\n")
                    return
        for d in (artifacts / "runs").glob("*/"):
            (d / "ztb.stop").write_text("watchdog\n")

    th = threading.Thread(target=watchdog, daemon=True)
    th.start()
    args = live_args(emulator, "--dry-run", "--set", f"journal_path={path}", "--set", "risk_interval_s=0.3")
    assert main([*args, "--max-bars", "5"]) == 0
    th.join(5)
    (run,) = list_runs()
    assert run.step == 0  # no bar closed: whatever happened, the watch did it
    events = read_jsonl(run.dir / "events.jsonl")
    trips = [e for e in events if e["event"] == "breaker_tripped"]
    assert [e["breaker"] for e in trips] == ["stop_loss"], [e["event"] for e in events]
    assert any(e["event"] == "stop_loss_exit" for e in events)
    with Journal(path, "paper", "coincheck", "BTC/JPY") as j:
        sells = [o for o in j.orders() if o.side == "sell"]
    assert sells and sells[0].amount == Decimal("0.02")  # the whole long offered for sale at once
    market = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "market"]
    assert market and market[0]["market_data"] == "rest_bars"
