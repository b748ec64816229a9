"""`ztb live --minimal` against the emulator: the pass path and each failure path."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ztb_core.cli import main
from ztb_core.errors import ZtbError
from ztb_core.live.emulator import FaultRule
from ztb_core.live.execution.journal import Journal
from ztb_core.live.loop.minimal import flow_qty_from_env, run_minimal
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET


def args(emulator, *extra):
    return [
        "live",
        "--minimal",
        "--set",
        f"exchange.api_url={emulator.base_url}",
        "--set",
        "exchange.rate_limit.requests_per_s=10000",
        "--set",
        "exchange.rate_limit.burst=10000",
        "--set",
        "exchange.rate_limit.ccxt_rate_limit=false",
        "--set",
        "exchange.timeout_ms=500",
        "--set",
        "exchange.retry.base_delay_ms=1",
        *extra,
    ]


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)


def report_of():
    (run,) = list_runs()
    return run, json.loads((run.dir / "reports" / "minimal.json").read_text())


def test_minimal_passes_every_step(emulator, keys, capsys):
    assert main(args(emulator)) == 0
    run, rep = report_of()
    assert rep["passed"] and run.state == "completed"
    names = [s["name"] for s in rep["steps"]]
    assert names == [
        "balances_before",
        "reconcile",
        "leftover_test_orders",
        "ticker",
        "market_limits",
        "place_order",
        "confirm_open",
        "cancel_order",
        "confirm_cancelled",
        "balances_unchanged",
    ]
    assert all(s["latency_ms"] >= 0 for s in rep["steps"])
    (order,) = emulator.state.orders.values()
    assert order.status == "CANCELED" and order.amount == Decimal("0.005")  # coincheck's minimum
    assert "PASS" in capsys.readouterr().err


def test_minimal_refuses_without_keys(emulator, monkeypatch, capsys):
    monkeypatch.delenv("COINCHECK_API_KEY", raising=False)
    monkeypatch.delenv("COINCHECK_API_SECRET", raising=False)
    assert main(args(emulator)) == 2
    err = capsys.readouterr().err
    assert "needs API keys" in err and "COINCHECK_API_KEY" in err
    assert not emulator.requests  # nothing was sent


def test_test_flow_qty_overrides_and_is_validated(emulator, keys, monkeypatch):
    monkeypatch.setenv("TEST_FLOW_QTY", "0.007")
    assert main(args(emulator)) == 0
    assert next(iter(emulator.state.orders.values())).amount == Decimal("0.007")
    with pytest.raises(ZtbError, match="TEST_FLOW_QTY"):
        flow_qty_from_env({"TEST_FLOW_QTY": "-1"})


@pytest.mark.parametrize(
    "setup,failed_step",
    [
        (lambda emu, mp: mp.setenv("COINCHECK_API_SECRET", "wrong-secret"), "balances_before"),
        (lambda emu, mp: emu.state.totals.update({"jpy": Decimal(0)}), "place_order"),
        (
            lambda emu, mp: emu.add_fault(FaultRule(kind="http_5xx", endpoint="cancel_order", times=None)),
            "cancel_order",
        ),
        (lambda emu, mp: emu.add_fault(FaultRule(kind="http_5xx", endpoint="ticker", times=None)), "ticker"),
    ],
)
def test_minimal_failure_paths(emulator, keys, monkeypatch, setup, failed_step):
    setup(emulator, monkeypatch)
    assert main(args(emulator)) == 1
    run, rep = report_of()
    assert not rep["passed"] and run.state == "failed"
    failed = [s for s in rep["steps"] if not s["ok"]]
    assert failed[0]["name"] == failed_step and failed[0]["detail"]
    assert not any(o.open for o in emulator.state.orders.values()) or failed_step == "cancel_order"


def test_lost_placement_response_is_resolved_and_still_cleaned_up(emulator, exchange_adapter, tmp_path):
    emulator.add_fault(FaultRule(kind="response_lost", endpoint="create_order", hang_ms=10))
    with Journal(tmp_path / "j.sqlite", "live", "coincheck", "BTC/JPY") as j:
        rep = run_minimal(exchange_adapter, j, confirm_wait_s=0.01)
    assert rep.passed, rep.as_dict()
    assert [o.status for o in emulator.state.orders.values()] == ["CANCELED"]


def test_a_test_order_left_resting_by_a_killed_run_is_cancelled_first(emulator, exchange_adapter, tmp_path):
    from ztb_core.live.execution.broker import OrderManager
    from ztb_core.live.loop.minimal import FLOW

    with Journal(tmp_path / "j.sqlite", "live", "coincheck", "BTC/JPY") as j:
        bid = exchange_adapter.fetch_ticker().bid
        # what an earlier --minimal run killed after placing its order leaves behind
        left = OrderManager(exchange_adapter, j, "BTC/JPY").place(
            "buy", Decimal("0.005"), (bid * Decimal("0.7")).quantize(Decimal(1)), detail={"flow": FLOW}
        )
        other = OrderManager(exchange_adapter, j, "BTC/JPY").place(
            "buy", Decimal("0.005"), (bid * Decimal("0.69")).quantize(Decimal(1))
        )
        rep = run_minimal(exchange_adapter, j, confirm_wait_s=0.01)
        assert rep.passed, rep.as_dict()
        step = next(s for s in rep.steps if s.name == "leftover_test_orders")
        assert left.client_id in step.detail and other.client_id not in step.detail
        assert j.get(left.client_id).state == "cancelled"
    assert emulator.state.orders[int(left.exchange_id)].status == "CANCELED"
    assert emulator.state.orders[int(other.exchange_id)].open  # a trading order is not the flow's to cancel
