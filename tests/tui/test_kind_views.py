"""Issue 14: views for the run kinds that had none: an evaluation run's report, a tuning study's
trials, a live run's trading state with a confirmed, read-only-aware reset of the breakers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_app import open_run, wait_for
from textual.widgets import DataTable, Static

from ztb_core.atomic import atomic_write_json
from ztb_core.evaluation import EvalConfig, evaluate_positions, write_report
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import Fill, Order
from ztb_core.live.loop.requests import RESET_BREAKERS, request_breaker_reset, take_breaker_reset
from ztb_core.live.loop.risk import RiskConfig, RiskManager
from ztb_core.live.loop.runner import LiveRunner
from ztb_core.runs import RunWriter
from ztb_core.trading_costs import CostConfig
from ztb_tui.screens.confirm import ConfirmScreen
from ztb_tui.screens.run import RunScreen
from ztb_tui.widgets.charts import Chart, drawdown

pytestmark = pytest.mark.anyio

SCHEMA = Path(__file__).resolve().parents[2] / "ztb_core" / "schemas" / "eval_report.schema.json"

# The report fields the evaluation view reads, as (section, key) — checked against the schema
# the evaluation writer validates every report with, so a renamed key fails here.
EVAL_FIELDS = [
    ("metrics", "sharpe"),
    ("metrics", "max_drawdown"),
    ("sharpe_inference", "dsr"),
    ("sharpe_inference", "psr"),
    ("sharpe_inference", "n_trials"),
    ("verdict", "summary"),
    ("curves", "equity"),
    ("curves", "drawdown"),
    ("curves", "benchmark_equity"),
    ("curves", "ridge_equity"),
    ("curves", "bar"),
]


def schema_has(schema: dict, section: str, key: str) -> bool:
    node = schema.get("properties", {}).get(section, {})
    return key in node.get("properties", {}) or key in node.get("required", [])


def test_the_eval_view_reads_keys_the_report_schema_has() -> None:
    schema = json.loads(SCHEMA.read_text())
    missing = [f for f in EVAL_FIELDS if not schema_has(schema, *f)]
    assert not missing, missing
    assert not schema_has(schema, "metrics", "no_such_metric")  # positive control


def write_eval_run(artifacts: Path, run_id: str = "eval-20260101-100000-ev01") -> Path:
    w = RunWriter.create("eval", {"seed": 0}, run_id=run_id, artifacts=artifacts, total_steps=7)
    n = 50
    equity = [1.0 + 0.01 * i - (0.05 if 20 < i < 30 else 0.0) for i in range(n)]
    report = {
        "kind": "eval_report",
        "metrics": {"sharpe": 1.25, "sortino": 1.8, "total_return": 0.49, "max_drawdown": -0.05, "trades": 12},
        "sharpe_inference": {"psr": 0.97, "dsr": 0.62, "n_trials": 40, "n_trials_source": "registry"},
        "baselines": {
            "buy_and_hold": {"metrics": {"sharpe": 0.4, "total_return": 0.1, "max_drawdown": -0.2}},
            "sma_crossover": {"metrics": {"sharpe": 0.9, "total_return": 0.3, "max_drawdown": -0.1}},
        },
        "verdict": {
            "sharpe_ci_above_zero": True,
            "psr_above_0_95": True,
            "dsr_above_0_95": False,
            "beats_strongest_baseline": False,
            "beats_random": True,
            "survives_costs_x2": True,
            "passed": 4,
            "total": 6,
            "summary": "positive Sharpe, but not robust to every check below; treat with caution",
            "strongest_baseline": "sma_crossover",
        },
        "curves": {
            "bar": list(range(n)),
            "equity": equity,
            "drawdown": drawdown(equity),
            "benchmark_equity": [1.0 + 0.002 * i for i in range(n)],
        },
    }
    atomic_write_json(w.reports_dir / f"eval_{run_id}.json", report)
    w.close("completed")
    return w.dir


async def test_eval_run_shows_verdict_dsr_metrics_and_equity(make_app, artifacts: Path) -> None:
    write_eval_run(artifacts)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, "eval-20260101-100000-ev01")
        await pilot.press("6")
        verdict = screen.query_one("#eval-verdict", Static)
        await wait_for(pilot, lambda: "treat with caution" in str(verdict.render()))
        assert "(4/6 checks)" in str(verdict.render()) and "✗ DSR > 0.95" in str(verdict.render())
        dsr = str(screen.query_one("#eval-dsr", Static).render())
        assert "DSR 0.6200 over 40 trials (registry)" in dsr
        table = screen.query_one("#eval-metrics", DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}
        assert rows["Sharpe (annualised)"] == [
            "Sharpe (annualised)",
            "1.250",
            "0.4000",
            "0.9000",
            "-",  # ridge: not in this hand-written report
        ]
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[3] == "SMA cross ★"  # the strongest baseline is starred
        equity = screen.query_one("#eval-equity", Chart)
        assert set(equity.lines) == {"agent", "buy & hold"} and len(equity.lines["agent"][1]) == 50


def write_evaluated_run(artifacts: Path, run_id: str = "eval-20260101-110000-ev02") -> tuple[Path, dict]:
    """An eval run whose report is made by the evaluation itself (`evaluate_positions` with the ridge
    baseline, `write_report`), as `ztb eval` makes it, on a small random walk."""
    rng = np.random.default_rng(4)
    n = 600
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    index = pd.date_range("2026-01-05", periods=n, freq="5min", tz="UTC")
    agent = np.sign(np.sin(np.arange(n) / 17.0))
    ridge = np.sign(np.cos(np.arange(n) / 29.0))
    cfg = EvalConfig.model_validate(
        {
            "bootstrap": {"n_resamples": 100},
            "monte_carlo": {"n_paths": 100, "horizon_days": 0.5},
            "baselines": {"random_seeds": 3, "sma_fast": 5, "sma_slow": 20},
            "report": {"curve_points": 40},
        }
    )
    report = evaluate_positions(
        agent,
        open_,
        close,
        index,
        CostConfig(fee_bps=1.0, spread_bps=0.0, slippage_bps=0.5),
        "M5",
        "crypto",
        cfg,
        extra_baselines={"ridge": (ridge, {"alpha": 0.1, "band_sd": 0.5})},
    )
    w = RunWriter.create("eval", {"seed": 0}, run_id=run_id, artifacts=artifacts, total_steps=10)
    write_report(report, w.reports_dir, run_id, plots=False)
    w.close("completed")
    return w.dir, report


async def test_eval_equity_chart_draws_the_ridge_curve_the_report_carries(make_app, artifacts: Path) -> None:
    """Ridge is the strongest baseline most often: the eval view's equity chart shows its curve,
    on the report's bars, beside the agent and buy-and-hold."""
    _, report = write_evaluated_run(artifacts)
    curves = report["curves"]
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, "eval-20260101-110000-ev02")
        await pilot.press("6")
        equity = screen.query_one("#eval-equity", Chart)
        await wait_for(pilot, lambda: "ridge" in equity.lines)
        assert set(equity.lines) == {"agent", "buy & hold", "ridge"}
        assert equity.lines["ridge"] == (curves["bar"], curves["ridge_equity"])
        assert equity.lines["ridge"][1] != equity.lines["agent"][1]  # its own curve, not the agent's
        assert "ridge" in equity.title


def write_study(artifacts: Path) -> Path:
    study = RunWriter.create("tune", {"seed": 0}, run_id="tune-20260101-100000-st01", artifacts=artifacts)
    trial_run = RunWriter.create("train", {"seed": 1}, run_id="train-20260101-100500-tr01", artifacts=artifacts)
    trial_run.close("completed")
    trials = [
        {"number": 0, "state": "COMPLETE", "value": 0.8, "params": {"lr": 0.0003}, "run_id": trial_run.run_id,
         "started_at": "2026-01-01T10:05:00+00:00", "finished_at": "2026-01-01T10:20:00+00:00"},
        {"number": 1, "state": "COMPLETE", "value": 1.4, "params": {"lr": 0.001}, "run_id": "train-gone",
         "started_at": "2026-01-01T10:21:00+00:00", "finished_at": "2026-01-01T10:40:00+00:00"},
        {"number": 2, "state": "RUNNING", "value": None, "params": {"lr": 0.01}, "run_id": None,
         "started_at": "2026-01-01T10:41:00+00:00", "finished_at": None},
    ]  # fmt: skip
    atomic_write_json(
        study.reports_dir / "trials.json",
        {"study": "ppo-lr", "storage": "sqlite:///x.db", "direction": "maximize", "trials": trials},
    )
    for t in trials:
        if t["value"] is not None:
            study.metric(t["number"], "trial", {"value": t["value"], "state": t["state"]})
    study.close("completed")
    return study.dir


async def test_tune_study_lists_trials_and_opens_one(make_app, artifacts: Path) -> None:
    write_study(artifacts)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, "tune-20260101-100000-st01")
        await pilot.press("6")
        table = screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
        assert rows[1][:3] == ["1 ★", "complete", "1.400"]  # best score, maximised (states read in lower case)
        assert rows[2][1:3] == ["running", "-"]
        summary = str(screen.query_one("#tune-summary", Static).render())
        assert "study ppo-lr" in summary and "3 trials: 2 complete, 1 running" in summary
        assert table.has_focus
        await pilot.press("j", "enter")  # trial 1's run is gone: said, not crashed
        await wait_for(pilot, lambda: any("no run folder" in n.message for n in app._notifications))
        await pilot.press("g", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen is not screen)
        assert app.screen.run_dir.name == "train-20260101-100500-tr01"
        # the study's scores are charted on its curves tab
        await pilot.press("q")
        chart = screen.query_one("#chart-trials", Chart)
        await wait_for(pilot, lambda: "score" in chart.lines)


def write_live_run(artifacts: Path, active: bool = True) -> tuple[Path, Path]:
    w = RunWriter.create(
        "live",
        {"mode": "dry_run", "exchange": {"exchange": "coincheck", "symbol": "BTC/JPY"}, "journal_path": None},
        run_id="live-20260101-110000-lv01",
        artifacts=artifacts,
    )
    journal_path = artifacts / "live" / "journal-paper-coincheck-BTC_JPY.sqlite"
    journal = Journal(journal_path, "paper", "coincheck", "BTC/JPY")
    risk = RiskManager(RiskConfig(), journal)
    risk.trip("price_jump", "close moved 7% in one bar")
    journal.record_submission(Order("c-000001", "BTC/JPY", "buy", Decimal("0.01"), Decimal("5000000")))
    journal.record_fill(
        Fill(
            "t-1",
            "c-000000",
            "x-1",
            "sell",
            Decimal("0.02"),
            Decimal("5010000"),
            Decimal("0"),
            "JPY",
            1_767_268_000_000,
        )
    )
    journal.close()
    w.metric(
        12,
        "live",
        {"equity": 100_500.0, "pnl": 500.0, "daily_pnl": 120.0, "position": 0.02, "position_value": 100_200.0,
         "price": 5_010_000.0, "open_orders": 1, "risk_state": "reduce_only", "trades_today": 3},
    )  # fmt: skip
    w.set_status("running", step=12)
    if active:
        w.start_heartbeat(0.2)
    return w.dir, journal_path


async def test_live_view_shows_position_orders_fills_and_breakers(make_app, artifacts: Path) -> None:
    run, _ = write_live_run(artifacts)
    app = make_app(now=__import__("time").time)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, run.name)
        await pilot.press("6")
        summary = screen.query_one("#live-summary", Static)
        await wait_for(pilot, lambda: "position" in str(summary.render()))
        text = str(summary.render())
        assert "P&L 500.0" in text and "trades today 3" in text and "open orders 1" in text
        risk = str(screen.query_one("#live-risk", Static).render())
        assert "REDUCE-ONLY" in risk and "price_jump (close moved 7% in one bar)" in risk
        orders = screen.query_one("#live-orders", DataTable)
        assert orders.row_count == 1 and [str(c) for c in orders.get_row_at(0)][1:3] == ["buy", "0.01"]
        fills = screen.query_one("#live-fills", DataTable)
        assert fills.row_count == 1 and str(fills.get_row_at(0)[1]) == "sell"
        # reset: asked first; "n" writes nothing, "y" drops the request for the loop
        await pilot.press("B")
        assert isinstance(app.screen, ConfirmScreen)
        assert "price_jump" in str(app.screen.query_one("#detail", Static).render())
        await pilot.press("n")
        assert not (run / RESET_BREAKERS).exists()
        await pilot.press("B", "y")
        assert (run / RESET_BREAKERS).exists()
        await wait_for(pilot, lambda: "request pending" in str(screen.query_one("#live-risk", Static).render()))


async def test_readonly_console_cannot_reset_breakers(make_app, artifacts: Path) -> None:
    run, _ = write_live_run(artifacts)
    app = make_app(now=__import__("time").time, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, run.name)
        await pilot.press("6")
        await wait_for(pilot, lambda: "REDUCE-ONLY" in str(screen.query_one("#live-risk", Static).render()))
        await pilot.press("B")
        assert not isinstance(app.screen, ConfirmScreen)
        assert not (run / RESET_BREAKERS).exists()


def test_the_live_loop_takes_a_reset_request_once(tmp_path: Path, artifacts: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", "paper", "coincheck", "BTC/JPY")
    risk = RiskManager(RiskConfig(), journal)
    risk.trip("stale_data", "no bar for 400 s")
    writer = RunWriter.create("live", {}, run_id="live-reset", artifacts=artifacts)
    loop = SimpleNamespace(writer=writer, risk=risk)
    LiveRunner.take_requests(loop)  # no request: nothing happens
    assert risk.state.breakers == {"stale_data": "no bar for 400 s"}
    request_breaker_reset(writer.dir, by="console")
    LiveRunner.take_requests(loop)
    LiveRunner.take_requests(loop)  # taken once
    writer.close()
    assert risk.state.breakers == {} and not risk.state.reduce_only
    events = [json.loads(x) for x in (writer.dir / "events.jsonl").read_text().splitlines()]
    resets = [e for e in events if e["event"] == "breakers_reset"]
    assert len(resets) == 1 and resets[0]["cleared"] == ["stale_data"] and resets[0]["requested_by"] == "console"
    assert not list(writer.dir.glob(f"{RESET_BREAKERS}*"))
    # persisted in the journal: a restart does not bring the breaker back
    assert RiskManager(RiskConfig(), journal).state.breakers == {}
    assert take_breaker_reset(writer.dir) is None
