"""Charts: whole-history series downsampled for drawing (bounded memory, exact means), redrawn
only when a drawn point completes; the run view draws loss, reward, Sharpe against every baseline
present (PSR/DSR on their own axes) and live equity with its drawdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import NOW, make_run
from test_app import open_run, wait_for

from ztb_tui.sources import ChartSource, Downsampled
from ztb_tui.widgets.charts import Chart, drawdown


def test_downsampled_is_bounded_and_keeps_exact_bucket_means() -> None:
    d = Downsampled(cap=64)
    completed = sum(d.add(i, float(i)) for i in range(100_000))
    xs, ys = d.points()
    assert len(xs) < 64 and d.count == 100_000
    assert d.width == 2048 and completed > 0
    # every drawn point is the mean of `width` consecutive values, at the step of the last one
    for x, y in zip(xs, ys, strict=True):
        assert y == pytest.approx(x - (d.width - 1) / 2)
    assert xs[-1] <= 99_999


def test_downsampled_draws_a_partial_point_only_while_nothing_else_exists() -> None:
    d = Downsampled(cap=4)
    assert d.add(0, 0.0) and d.points() == ([0], [0.0])
    for i in range(1, 4):
        d.add(i, float(i))
    assert d.width == 2 and d.points() == ([1, 3], [0.5, 2.5])  # full at 4: neighbours merged
    assert not d.add(4, 4.0)  # half a point: not drawn, no redraw
    assert d.points() == ([1, 3], [0.5, 2.5])
    assert d.add(5, 5.0)
    assert d.points() == ([1, 3, 5], [0.5, 2.5, 4.5])
    lone = Downsampled(cap=4)
    lone.width = 8
    lone.add(7, 1.5)
    assert lone.points() == ([7], [1.5])  # the first value of a run is shown at once


def test_chart_source_reads_the_whole_file_and_changes_only_on_new_points(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"time": 0, "step": i, "split": "train", "ep_rew_mean": i * 0.5, "gpu": "x"} for i in range(5000)]
    rows += [{"time": 0, "step": 10, "split": "sys", "cpu_pct": 50.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = ChartSource(tmp_path, cap=32)
    snap = src.poll()
    assert set(snap.series) == {"train/ep_rew_mean"}  # sys telemetry is not charted; text is skipped
    assert snap.counts["train/ep_rew_mean"] == 5000 and len(snap.series["train/ep_rew_mean"][0]) < 32
    assert src.poll().version == snap.version  # nothing new: same snapshot, no redraw
    with open(path, "a") as fh:
        fh.write(json.dumps({"time": 0, "step": 5000, "split": "train", "ep_rew_mean": 1.0}) + "\n")
    assert src.poll().version == snap.version  # one value does not complete a 256-wide point
    path.write_text(json.dumps({"time": 0, "step": 1, "split": "train", "ep_rew_mean": 3.0}) + "\n")
    again = src.poll()  # rewritten (resume rewinds): starts over
    assert again.version > snap.version and again.series["train/ep_rew_mean"] == ((1.0,), (3.0,))


def test_drawdown_from_the_running_peak() -> None:
    assert drawdown([1.0, 2.0, 1.5, 3.0]) == [0.0, 0.0, -0.25, 0.0]


pytestmark = pytest.mark.anyio


async def test_run_view_charts_sharpe_against_every_baseline_present(make_app, artifacts: Path) -> None:
    run = make_run(artifacts, "train-20260101-100000-a1b2")
    with open(run / "metrics.jsonl", "a") as fh:  # the keys another helper adds to periodic evaluation
        fh.write(
            json.dumps(
                {"time": NOW, "step": 41_000, "split": "val", "sharpe": 1.4, "buy_and_hold_sharpe": 0.5,
                 "sma_crossover_sharpe": 0.7, "ridge_sharpe": 0.9, "strongest_baseline_sharpe": 0.9,
                 "psr": 0.96, "dsr": 0.4}
            )
            + "\n"
        )  # fmt: skip
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, run.name)
        sharpe = screen.query_one("#chart-sharpe", Chart)
        await wait_for(pilot, lambda: "ridge" in sharpe.lines)
        assert {"agent", "buy & hold", "SMA cross", "ridge", "strongest baseline"} <= set(sharpe.lines)
        psr = screen.query_one("#chart-psr", Chart)
        assert set(psr.lines) == {"PSR", "DSR"} and psr.display
        assert set(screen.query_one("#chart-loss", Chart).lines) == {"policy", "value"}
        assert "ep reward" in screen.query_one("#chart-reward", Chart).lines


async def test_a_run_without_baselines_hides_their_chart(make_app, artifacts: Path) -> None:
    run = make_run(artifacts, "pretrain-20260101-090000-c3d4", kind="pretrain", state="completed", step=5000,
                   total_steps=5000)  # fmt: skip
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, run.name)
        loss = screen.query_one("#chart-loss", Chart)
        await wait_for(pilot, lambda: bool(loss.lines))
        assert set(loss.lines) == {"train", "val"}
        assert not screen.query("#chart-sharpe")  # pretraining has no Sharpe chart at all


async def test_live_equity_chart_draws_its_drawdown(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, app, "live-20260101-110000-e5f6")
        equity = screen.query_one("#chart-equity", Chart)
        dd_chart = screen.query_one("#chart-drawdown", Chart)
        await wait_for(pilot, lambda: "drawdown" in dd_chart.lines and "equity" in equity.lines)
        xs, dd = dd_chart.lines["drawdown"]
        assert max(dd) <= 0.0 and len(xs) == len(equity.lines["equity"][0])
        # its own axis: a drawdown of a few per cent is not flattened against an equity of 1e5
        assert set(equity.lines) == {"equity"}


def test_a_streaming_run_shows_its_buffer_fill_and_drops() -> None:
    """`--enable-streaming` writes split `stream`; a train run's curves list it (and only when present)."""
    from ztb_tui.sources import MetricsSnapshot, SeriesView
    from ztb_tui.widgets.metrics import curve_keys

    def snap(keys):
        return MetricsSnapshot({k: SeriesView.__new__(SeriesView) for k in keys}, {}, None, 0, False)

    plain = curve_keys("train", snap(["train/ep_rew_mean", "val/sharpe"]))
    assert not [k for k, _ in plain if k.startswith("stream/")]
    streamed = dict(curve_keys("train", snap(["train/ep_rew_mean", "stream/fill", "stream/dropped", "stream/blocked"])))
    assert (
        streamed["stream/fill"] == "stream buffer fill"
        and "stream/dropped" in streamed
        and "stream/blocked" in streamed
    )
