"""`ztb report weekly`: steps trained in the window (a resumed run counts only new steps), best
evaluation per run with its DSR, live P&L from daily reports and risk events; Markdown + PNG."""

from __future__ import annotations

import json
import time

from ztb_core.cli import main
from ztb_core.ops.weekly import build
from ztb_core.runs import RunWriter

DAY = 86400


def rewrite_times(path, fn):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(fn(r)) + "\n" for r in rows))


def world(artifacts):
    now = time.time()
    train = RunWriter.create("train", {}, run_id="train-w")
    for step in (1000, 2000, 3000):
        train.metric(step, "train", {"loss": 1.0})
    train.metric(2000, "val", {"sharpe": 1.5, "psr": 0.9, "dsr": 0.7, "dsr_trials": 3.0})
    train.metric(3000, "val", {"sharpe": 0.5, "psr": 0.6, "dsr": 0.4, "dsr_trials": 4.0})
    train.close("completed")
    # the first 1000 steps happened 10 days ago: outside the window
    rewrite_times(train.dir / "metrics.jsonl", lambda r: {**r, "time": now - 10 * DAY} if r["step"] == 1000 else r)
    live = RunWriter.create("live", {}, run_id="live-w")
    live.event("daily_report", date="2026-11-28", pnl=120.5, orders=4, bars=1440)
    live.event("daily_report", date="2026-11-29", pnl=-20.25, orders=2, bars=1440)
    live.event("order_denied", reason="max position")
    live.event("breaker_tripped", breaker="drawdown")
    live.close("stopped")
    old = RunWriter.create("train", {}, run_id="train-old")
    old.metric(500, "train", {"loss": 1.0})
    old.close("completed")
    rewrite_times(old.dir / "metrics.jsonl", lambda r: {**r, "time": now - 30 * DAY})
    rewrite_times(old.dir / "events.jsonl", lambda r: {**r, "time": now - 30 * DAY})
    return train, live


def test_weekly_figures(artifacts):
    world(artifacts)
    w = build(artifacts, days=7)
    assert {r["run_id"] for r in w.runs} == {"train-w", "live-w"}
    assert w.steps_by_run == {"train-w": 2000}  # 3000 now minus 1000 before the window
    assert w.best_evals == [
        {"run_id": "train-w", "step": 2000, "split": "val", "sharpe": 1.5, "psr": 0.9, "dsr": 0.7, "trials": 3.0}
    ]
    assert w.live_pnl == 100.25 and len(w.live_days) == 2
    assert w.risk_events == {"order_denied": 1, "breaker_tripped": 1}


def test_cli_writes_markdown_png_json(artifacts, capsys):
    world(artifacts)
    assert main(["report", "weekly"]) == 0
    md = next((artifacts / "reports").glob("weekly-*.md"))
    png = md.with_suffix(".png")
    text = md.read_text()
    assert "steps trained: **2,000**" in text and "| train-w | 2,000 | val | 1.50 | 0.900 | 0.700 | 3 |" in text
    assert "live P&L (daily reports): **100.25**" in text and "breaker_tripped 1" in text
    assert f"]({png.name})" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads(md.with_suffix(".json").read_text())["steps_trained"] == 2000
    assert "2,000 steps trained" in capsys.readouterr().out
