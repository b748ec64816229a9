"""The live events a person is notified of (configs/notify.yaml): a breaker that latches reduce-only
and a summary of the fills each sync recorded, written by the real runner against the emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ztb_core.live.execution.journal import Journal
from ztb_core.live.loop.risk import RiskConfig, RiskManager

from .test_faults import far_bid, make_runner


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite", "live", "coincheck", "BTC/JPY") as j:
        yield j


def test_a_tripped_breaker_is_an_event_once(exchange_adapter, emulator, journal, tmp_path):
    runner, writer = make_runner(exchange_adapter, journal, tmp_path)
    assert runner.poll()
    assert not [d for k, d in writer.events if k == "breaker_tripped"]  # positive control: healthy, silent
    emulator.add_fault({"kind": "http_5xx", "endpoint": "transactions_pagination", "times": None})
    for _ in range(6):
        runner.poll()
    tripped = [d for k, d in writer.events if k == "breaker_tripped"]
    assert [d["breaker"] for d in tripped] == ["consecutive_errors"], tripped  # latched: told once, not per bar
    assert "private API errors in a row" in tripped[0]["reason"]


def test_the_daily_loss_halt_is_told_like_a_breaker(journal):
    told: list[tuple[str, str]] = []
    risk = RiskManager(RiskConfig(daily_loss_limit=100), journal, on_trip=lambda b, r: told.append((b, r)))
    risk.update_pnl(Decimal(10_000), Decimal(0), None, Decimal(1))
    risk.update_pnl(Decimal(9_950), Decimal(0), None, Decimal(1))
    assert told == []
    risk.update_pnl(Decimal(9_850), Decimal(0), None, Decimal(1))
    risk.update_pnl(Decimal(9_800), Decimal(0), None, Decimal(1))
    assert [b for b, _ in told] == ["daily_loss_limit"] and "reached the limit 100" in told[0][1]


def test_each_sync_that_records_fills_writes_a_fills_summary(exchange_adapter, emulator, journal, tmp_path):
    runner, writer = make_runner(exchange_adapter, journal, tmp_path)
    order = runner.manager.place("buy", Decimal("0.01"), far_bid(exchange_adapter))  # rests: no fill yet
    assert runner._sync() and not [d for k, d in writer.events if k == "fills_summary"]
    emulator.state.execute(int(order.exchange_id), Decimal("0.001"), rate=Decimal("1200000"))
    emulator.state.execute(int(order.exchange_id), Decimal("0.002"), rate=Decimal("1203000"))
    assert runner._sync()
    (summary,) = [d for k, d in writer.events if k == "fills_summary"]
    assert summary["fills"] == 2 and Decimal(summary["buy_amount"]) == Decimal("0.003")
    assert Decimal(summary["buy_avg_price"]) == Decimal("1202000") and summary["sell_avg_price"] is None
    assert Decimal(summary["position"]) == journal.position() == Decimal("0.003")
    assert runner._sync()  # nothing new: no second summary
    assert len([d for k, d in writer.events if k == "fills_summary"]) == 1
