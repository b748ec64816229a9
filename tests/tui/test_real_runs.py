"""The console over run folders the real commands wrote during this test session (`real_runs`):
what `ztb train`, `ztb eval`, `ztb tune`, `ztb pretrain` and `ztb live --dry-run` put on disk is
what these views must show, at 80x24 and 200x60. Where a test needs a state the tiny runs do not
reach (a trial still running, training that went wrong), it copies a real run and changes only
the lines that state needs, in the format the command wrote."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
from fixtures import FakeGpu, FakeHost
from real_runs import EVAL, LIVE, LIVE_NOT_READY, PRETRAIN, PRETRAIN_FDR, TRAIN, TUNE
from test_app import open_run, run_table, wait_for
from textual.widgets import DataTable, Static, TabbedContent

from ztb_core.atomic import atomic_write_json
from ztb_tui.app import ZtbApp
from ztb_tui.screens.run import RunScreen
from ztb_tui.widgets.charts import Chart
from ztb_tui.widgets.metrics import MetricPanel

pytestmark = pytest.mark.anyio

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SIZES = [(80, 24), (200, 60)]


def console(artifacts: Path, **kwargs) -> ZtbApp:
    kwargs.setdefault("host", FakeHost(FakeGpu(available=False)))
    kwargs.setdefault("refresh_s", 0.1)
    return ZtbApp(artifacts, configs=CONFIGS, **kwargs)


def text_of(widget) -> str:
    return str(widget.render())


def screen_lines(app) -> list[str]:
    """What the terminal shows, line by line."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def active_keys(app) -> set[str]:
    return {key for key, b in app.active_bindings.items() if b.enabled}


# ---- 1. a live run that never decides --------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_live_run_that_never_decides_is_a_warning_with_its_reason_and_fix(real_runs, size) -> None:
    runs = real_runs / "runs"
    events = jsonl(runs / LIVE_NOT_READY / "events.jsonl")
    reasons = [e["reason"] for e in events if e["event"] == "not_ready"]
    assert len(reasons) >= 2, "the real run logged a not_ready bar each bar"  # what the command wrote
    app = console(real_runs)
    async with app.run_test(size=size) as pilot:
        table = run_table(app)
        await wait_for(pilot, lambda: table.row_count >= 7 and LIVE_NOT_READY in app.screen.flags, 30)
        cells = {r: str(table.get_row(r)[0]) for r in (LIVE_NOT_READY, LIVE, TRAIN)}
        assert "⚠" in cells[LIVE_NOT_READY]
        assert "⚠" not in cells[LIVE] and "⚠" not in cells[TRAIN]  # a live run that trades is not flagged
        table.move_cursor(row=table.get_row_index(LIVE_NOT_READY))
        await pilot.pause(0.1)
        detail = text_of(app.screen.query_one("#run-detail", Static))
        assert "never decided" in detail and reasons[-1] in detail
        screen = await open_run(pilot, app, LIVE_NOT_READY)
        await wait_for(pilot, lambda: screen.flags, 10)
        banner = text_of(screen.query_one("#health", Static))
        assert "never decided" in banner and reasons[-1] in banner
        # the Trading tab (where the run opens) says it too, above the "waiting" line
        assert screen.query_one("#tabs", TabbedContent).active == "tab-kind"
        warning = screen.query_one("#live-warning", Static)
        await wait_for(pilot, lambda: warning.display, 10)
        assert "never decided" in text_of(warning) and "fix:" in text_of(warning) and "warmup_bars" in text_of(warning)


# ---- 2. the tune view ----------------------------------------------------------------------


async def test_tune_view_counts_the_real_trials_and_shows_the_best_with_its_parameters(real_runs) -> None:
    doc = json.loads((real_runs / "runs" / TUNE / "reports" / "trials.json").read_text())
    assert {t["state"] for t in doc["trials"]} == {"complete"}  # what `ztb tune` writes: lower case
    best = max(doc["trials"], key=lambda t: t["value"])
    app = console(real_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, TUNE)
        assert screen.query_one("#tabs", TabbedContent).active == "tab-kind"  # opens on Trials
        table = screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, 10)
        summary = text_of(screen.query_one("#tune-summary", Static))
        assert "2 trials: 2 complete" in summary
        assert f"best so far: #{best['number']}" in summary
        for key in best["params"]:
            assert key in summary
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(2)}
        assert rows[f"{best['number']} ★"][1] == "complete"
        # enter on a trial opens its own training run
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen is not screen, 10)
        assert app.screen.run_dir.name == doc["trials"][0]["run_id"]


async def test_tune_view_lists_the_trial_still_running_with_its_score_so_far(real_runs, copy_run, artifacts) -> None:
    """The study as it stood while trial 1 ran: `trials.json` held trial 0 only (it is rewritten
    after each trial) and the events ended at trial 1's `trial_started`."""
    doc = json.loads((real_runs / "runs" / TUNE / "reports" / "trials.json").read_text())
    second = next(t for t in doc["trials"] if t["number"] == 1)
    copied = copy_run(real_runs, TUNE, second["run_id"])
    tune = copied[TUNE]
    atomic_write_json(
        tune / "reports" / "trials.json", {**doc, "trials": [t for t in doc["trials"] if t["number"] == 0]}
    )
    lines = (tune / "events.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"trial_started"' in line and '"trial":1' in line.replace(" ", ""))
    (tune / "events.jsonl").write_text("".join(lines[: cut + 1]))
    trial_metrics = jsonl(copied[second["run_id"]] / "metrics.jsonl")
    so_far = max(r["sharpe"] for r in trial_metrics if r["split"] == "val")
    app = console(artifacts)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await open_run(pilot, app, TUNE)
        table = screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, 10)
        running = [str(c) for c in table.get_row("1")]
        assert running[1] == "running" and running[4] == second["run_id"]
        assert running[2] == ZtbNum(so_far)
        summary = text_of(screen.query_one("#tune-summary", Static))
        assert "1 complete, 1 running" in summary and "best so far: #0" in summary


def ZtbNum(value: float) -> str:  # noqa: N802  (reads as the console's own formatter)
    from ztb_tui.fmt import num

    return num(value)


# ---- 3. pretraining --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_pretrain_rows_are_labelled_in_full_with_a_correlation_chart(real_runs, size) -> None:
    app = console(real_runs)
    run = real_runs / "runs" / PRETRAIN
    log = "\n".join(p.read_text() for p in (run / "logs").glob("*.log"))
    logged = {int(st): float(loss) for st, loss in re.findall(r"step (\d+)/\d+ loss ([\d.]+)", log)}
    last_logged = max(logged)
    # the writer records each step as the log prints it: the row at step S holds the loss of "step S"
    train_rows = {r["step"]: r for r in jsonl(run / "metrics.jsonl") if r["split"] == "train"}
    for st, loss in logged.items():
        assert round(train_rows[st]["loss"], 4) == loss, (st, loss, train_rows.get(st))
    assert max(train_rows) == json.loads((run / "status.json").read_text())["step"] == last_logged
    async with app.run_test(size=size) as pilot:
        screen = await open_run(pilot, app, PRETRAIN)
        panel = screen.query_one("#curves", MetricPanel)
        await wait_for(pilot, lambda: "val/corr_interior_M15" in panel.rows and panel.rows["train/loss"].view, 15)
        await pilot.pause(0.3)
        labels = [str(lbl.render()) for lbl in panel.query(".metric-name")]
        corr = [lbl for lbl in labels if lbl.startswith("interior corr")]
        assert len(corr) == 6 and len(set(corr)) == 6, labels  # six timeframes, six distinct labels
        for lbl in panel.query(".metric-name"):  # drawn whole, not cut by the column
            assert lbl.size.width >= len(str(lbl.render())), str(lbl.render())
        panel.rows["val/corr_interior_M15"].scroll_visible(animate=False)
        await pilot.pause(0.3)
        shown = "\n".join(screen_lines(app))
        assert "interior corr M15" in shown and "interior corr M1 " in shown
        # the loss row's step is the step the log counts
        stats = str(panel.rows["train/loss"].query_one(".metric-stats").render())
        assert f"@{last_logged}" in stats, (stats, last_logged)
        chart = screen.query_one("#chart-corr", Chart)
        await wait_for(pilot, lambda: chart.display and chart.draws, 15)
        assert "bars:model" in chart.lines and len(chart.lines["bars:model"][0]) == 6


async def test_a_completed_fast_dev_run_reads_done_not_zero_percent(real_runs) -> None:
    status = json.loads((real_runs / "runs" / PRETRAIN_FDR / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] < status["total_steps"]  # as the command wrote it
    app = console(real_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        table = run_table(app)
        await wait_for(pilot, lambda: table.row_count >= 7, 20)
        cells = [str(c) for c in table.get_row(PRETRAIN_FDR)]
        assert "done" in cells[3] and "0%" not in cells[3], cells
        screen = await open_run(pilot, app, PRETRAIN_FDR)
        await wait_for(pilot, lambda: screen.row is not None, 10)
        eta = text_of(screen.query_one("#eta", Static))
        assert "completed" in eta and f"{status['total_steps']} planned" in eta
        bar = screen.query_one("#progress")
        assert bar.percentage == 1.0


# ---- 4. the evaluation report ------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_eval_view_shows_the_whole_report(real_runs, size) -> None:
    (path,) = (real_runs / "runs" / EVAL / "reports").glob("eval_*.json")
    report = json.loads(path.read_text())
    app = console(real_runs)
    async with app.run_test(size=size) as pilot:
        screen = await open_run(pilot, app, EVAL)
        assert screen.query_one("#tabs", TabbedContent).active == "tab-kind"  # opens on its report
        table = screen.query_one("#eval-metrics", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, 10)
        verdict = text_of(screen.query_one("#eval-verdict", Static))
        assert report["verdict"]["summary"] in verdict
        boot = text_of(screen.query_one("#eval-bootstrap", Static))
        low = report["bootstrap"]["intervals"]["sharpe"]["low"]
        assert "bootstrap" in boot and ZtbNum(low) in boot
        mc = text_of(screen.query_one("#eval-mc", Static))
        assert "VaR 95.0%" in mc and "CVaR" in mc
        assert f"{report['monte_carlo']['var']['0.95'] * 100:.1f}%" in mc
        costs = text_of(screen.query_one("#eval-costs", Static))
        c = report["cost_sensitivity"]
        assert ("break-even" in costs) or (c["profitable_before_costs"] is False and "zero cost" in costs)
        assert "robustness" in text_of(screen.query_one("#eval-robustness", Static))
        rows = {str(table.get_row_at(i)[0]): [str(x) for x in table.get_row_at(i)] for i in range(table.row_count)}
        assert rows["trades"][1] == f"{report['metrics']['trades']:,}"  # a count, not "85.00"
        ridge_trades = report["baselines"]["ridge"]["metrics"]["trades"]
        assert rows["trades"][4] == f"{int(ridge_trades):,}"  # ridge has its own column
        labels = [str(col.label) for col in table.columns.values()]
        strongest = report["verdict"]["strongest_baseline"]
        assert any(lbl.endswith("★") for lbl in labels) == (strongest in ("buy_and_hold", "sma_crossover", "ridge"))
        cost_chart = screen.query_one("#eval-cost-curve", Chart)
        assert cost_chart.lines and len(next(iter(cost_chart.lines.values()))[0]) == len(c["curve"])


# ---- 5. live details -----------------------------------------------------------------------


async def test_live_view_numbers_panel_title_and_keys(real_runs) -> None:
    metrics = [m for m in jsonl(real_runs / "runs" / LIVE / "metrics.jsonl") if m["split"] == "live"]
    price = metrics[-1]["price"]
    assert price >= 1e6  # the emulator's BTC/JPY: the case that printed "1.20e+06"
    app = console(real_runs)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await open_run(pilot, app, LIVE)
        assert screen.query_one("#tabs", TabbedContent).active == "tab-kind"
        summary = screen.query_one("#live-summary", Static)
        await wait_for(pilot, lambda: "price" in text_of(summary), 10)
        assert "e+" not in text_of(summary) and f"{price:,.0f}" in text_of(summary)
        fills = screen.query_one("#live-fills", DataTable)
        for i in range(fills.row_count):
            assert re.fullmatch(r"[\d,]+", str(fills.get_row_at(i)[3])), fills.get_row_at(i)
        assert screen.query_one("#curves", MetricPanel).border_title == "live metrics"
        await pilot.press("2")  # the checkpoints tab: a live run has none, so no v/R/d
        await pilot.pause(0.2)
        assert not {"v", "R", "d"} & active_keys(app)


async def test_checkpoint_keys_show_on_a_training_run_with_checkpoints(real_runs) -> None:
    """Positive control for the test above: the same keys are offered where checkpoints exist."""
    app = console(real_runs)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await open_run(pilot, app, TRAIN)
        assert screen.query_one("#tabs", TabbedContent).active == "tab-overview"
        await wait_for(pilot, lambda: screen.ckpt_rows, 10)
        await pilot.press("2")
        await pilot.pause(0.2)
        assert {"v", "R", "d"} <= active_keys(app)


# ---- 6. training going wrong --------------------------------------------------------------


def _append(path: Path, rows: list[dict]) -> None:
    with path.open("a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


@pytest.mark.parametrize("size", SIZES)
async def test_training_going_wrong_is_flagged_in_the_list_and_the_run_view(real_runs, copy_run, artifacts, size):
    """The real run's last train and evaluation rows, continued the way the reported runs went:
    a negative learning rate, the value loss jumping to 7.0, a NaN loss (the run writer stores NaN
    as null), the step rate collapsing and an evaluation far below the best."""
    bad = copy_run(real_runs, TRAIN)[TRAIN]
    rows = jsonl(bad / "metrics.jsonl")
    train = [r for r in rows if r["split"] == "train"][-1]
    val = max((r for r in rows if r["split"] == "val"), key=lambda r: r["sharpe_per_period"])
    step = train["step"]
    t = time.time()
    _append(
        bad / "metrics.jsonl",
        [
            {**train, "time": t, "step": step + 128, "learning_rate": -7.5e-05, "value_loss": 7.0, "fps": 10.0},
            {**val, "time": t, "step": step + 128, "sharpe_per_period": val["sharpe_per_period"] - 1.0},
            {**train, "time": t + 1, "step": step + 256, "learning_rate": -1.5e-4, "loss": None, "fps": 5.0},
        ],
    )
    app = console(artifacts)
    async with app.run_test(size=size) as pilot:
        table = run_table(app)
        await wait_for(pilot, lambda: TRAIN in app.screen.flags, 30)
        assert "⚠" in str(table.get_row(TRAIN)[0])
        screen = await open_run(pilot, app, TRAIN)
        await wait_for(pilot, lambda: screen.flags, 10)
        codes = {f.code for f in screen.flags}
        assert {"learning_rate", "loss_jump", "non_finite", "fps_collapse", "eval_drop"} <= codes, codes
        banner = text_of(screen.query_one("#health", Static))
        assert "learning rate -0.00015" in banner and "value loss jumped to 7" in banner
        assert "standard errors below the best" in banner and "non-finite train metrics" in banner


async def test_the_real_training_run_is_not_flagged(real_runs) -> None:
    """Positive control: the untouched real run raises none of those flags."""
    from ztb_tui.health import HealthSource

    assert HealthSource(real_runs / "runs" / TRAIN, "train").poll() == ()


# ---- 8. read-only ---------------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


async def _press_every_mutating_key(pilot, app) -> None:
    for key in ("n", "s", "S", "X"):
        await pilot.press(key)
        await pilot.pause(0.05)
    screen = await open_run(pilot, app, TRAIN)
    await wait_for(pilot, lambda: screen.ckpt_rows, 10)
    await pilot.press("2")
    await pilot.pause(0.1)
    for key in ("v", "R", "d", "s"):
        await pilot.press(key)
        await pilot.pause(0.3)
    await pilot.press("escape")
    await pilot.pause(0.1)
    live = await open_run(pilot, app, LIVE)
    await wait_for(pilot, lambda: live.query("#live-summary"), 10)
    await pilot.press("B")
    await pilot.pause(0.1)


async def test_readonly_writes_nothing_and_answers_refused_keys(real_runs, copy_run, artifacts) -> None:
    copy_run(real_runs, TRAIN, LIVE)
    root = artifacts.parent
    before = tree_digest(root)
    notices: list[str] = []
    app = console(artifacts, readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        original = app.notify

        def spy(message, *a, **k):
            notices.append(str(message))
            return original(message, *a, **k)

        app.notify = spy  # type: ignore[method-assign]
        await wait_for(pilot, lambda: run_table(app).row_count == 2, 10)
        assert "READONLY" in app.screen.title
        await _press_every_mutating_key(pilot, app)
        assert "READONLY" in app.screen.title
        await wait_for(pilot, lambda: any("checksum ok" in n for n in notices), 10)  # verified, in memory
    refused = [n for n in notices if n.startswith("read-only console")]
    for key in ("n", "s", "S", "X", "R", "d", "B"):
        assert any(f": {key} (" in n for n in refused), (key, notices)
    assert all("\n" not in n for n in refused)  # one line each
    assert tree_digest(root) == before


async def test_the_same_keys_write_when_not_readonly(real_runs, copy_run, artifacts) -> None:
    """Positive control: the digest check sees what `v` writes in a normal console."""
    copy_run(real_runs, TRAIN)
    before = tree_digest(artifacts.parent)
    app = console(artifacts)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, TRAIN)
        await wait_for(pilot, lambda: screen.ckpt_rows, 10)
        await pilot.press("2")
        await pilot.pause(0.1)
        await pilot.press("v")
        verify = artifacts / "runs" / TRAIN / "reports" / "verify.json"
        await wait_for(pilot, verify.exists, 10)
    assert tree_digest(artifacts.parent) != before


# ---- 7. charts you can read ----------------------------------------------------------------


async def test_a_chart_fills_the_screen_zooms_and_pans_and_escape_restores_it(real_runs) -> None:
    app = console(real_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, TRAIN)
        chart = screen.query_one("#chart-loss", Chart)
        await wait_for(pilot, lambda: chart.display and chart.draws, 20)
        steps = sorted({x for xs, _ in chart.lines.values() for x in xs})
        chart.focus()
        await pilot.press("f")
        assert screen.maximized is chart and chart.size.height >= 18  # the whole screen, not 12 rows
        await pilot.press("plus")
        assert chart.window == (0.5, 1.0)
        assert "(0: all)" in str(chart.border_subtitle)  # the zoomed range is shown
        await pilot.press("left")
        assert chart.window[0] < 0.5
        await pilot.press("0")
        assert chart.window == (0.0, 1.0)
        await pilot.press("escape")
        assert screen.maximized is None and app.screen is screen  # escape restores, it does not leave
        assert len(steps) >= 2


def test_chart_axes_read_as_people_read_them() -> None:
    from ztb_tui.widgets.charts import tick_label, y_limits

    assert tick_label(49152) == "49.2k" and tick_label(1_000_000) == "1M" and tick_label(512) == "512"
    lo, hi = y_limits([-0.006])  # a single negative point: an axis that runs upwards around it
    assert lo < -0.006 < hi
    assert y_limits([1.0, 2.0]) is None  # a real range: plotext's own limits


# ---- 9. smaller things -------------------------------------------------------------------


async def test_sorting_keeps_the_selected_run_and_q_asks_before_quitting(real_runs) -> None:
    from ztb_tui.screens.confirm import ConfirmScreen
    from ztb_tui.screens.runs import RunsScreen

    app = console(real_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        table = run_table(app)
        await wait_for(pilot, lambda: table.row_count >= 7, 20)
        table.focus()
        table.move_cursor(row=table.get_row_index(EVAL))
        for _ in range(3):  # run id, kind, state: the cursor stays on the same run
            await pilot.press("o")
            await pilot.pause(0.1)
            assert app.screen.selected_id() == EVAL
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)  # one stray q does not close the console
        await pilot.press("n")
        assert isinstance(app.screen, RunsScreen)


def test_events_show_rounded_numbers(real_runs) -> None:
    from ztb_tui.sources import event_text

    events = jsonl(real_runs / "runs" / TRAIN / "events.jsonl")
    evaluated = next(e for e in events if e["event"] == "evaluated")
    text = event_text(evaluated)
    assert not re.search(r"\d\.\d{6,}", text), text  # the real event holds -86.63009312734144
    assert re.search(r"\d\.\d{6,}", json.dumps(evaluated))  # positive control: the raw line does


async def test_compare_colours_each_run_and_keeps_a_legend_at_80x24(real_runs) -> None:
    from ztb_tui.screens.compare import CompareScreen
    from ztb_tui.widgets.charts import run_color

    app = console(real_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        table = run_table(app)
        await wait_for(pilot, lambda: table.row_count >= 7, 20)
        table.focus()
        for rid in (TRAIN, "tune-real-t0000", "tune-real-t0001"):
            table.move_cursor(row=table.get_row_index(rid))
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), 10)
        chart = app.screen.query_one("#chart-loss", Chart)
        await wait_for(pilot, lambda: len(chart.lines) >= 6, 20)
        # one colour per run, the same in the key at the top and in the lines
        key = app.screen.query_one("#compare-key", Static).render()
        spans = {str(key)[s.start : s.end]: str(s.style) for s in key.spans}
        for i, letter in enumerate("ABC"):
            assert run_color(i) in spans[letter]
            assert {c for name, (c, _) in chart.line_styles.items() if name.startswith(letter + " ")} == {run_color(i)}
        assert "A policy" in str(chart.border_subtitle)  # the legend, below a short chart


async def test_the_gpu_problem_is_said_once_then_an_icon(real_runs) -> None:
    app = console(real_runs, refresh_s=0.1)
    said: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        original = app.notify

        def spy(message, *a, **k):
            said.append(str(message))
            return original(message, *a, **k)

        app.notify = spy  # type: ignore[method-assign]
        await wait_for(pilot, lambda: app.host_poller.polls >= 3, 20)
        host = str(app.screen.query_one("#host").render())
        assert "GPU ✗" in host and "driver not loaded" not in host
        footer_rows = [r for r in screen_lines(app) if "GPU" in r]
        assert len(footer_rows) == 1  # one line at 80 columns, not three
    assert sum("GPU: unavailable" in m for m in said) <= 1


async def test_a_run_title_that_grows_to_two_lines_keeps_its_second_line_at_80x24(real_runs, copy_run, artifacts):
    """The run title follows the run's status message. It was updated without a re-layout, so its
    height stayed what the first paint gave it: a title that grew to two lines (at 80 columns, beside
    the STOP button) lost its second line, one that shrank kept an empty one."""
    run = copy_run(real_runs, EVAL)[EVAL]
    app = console(artifacts)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, EVAL)
        title = screen.query_one("#run-title", Static)
        status = json.loads((run / "status.json").read_text())
        status["message"] = "short"
        (run / "status.json").write_text(json.dumps(status))
        await wait_for(pilot, lambda: text_of(title).endswith("short"), 10)
        await pilot.pause()
        assert title.size.height == 1
        status["message"] = "a status message long enough to need a second line at eighty columns"
        (run / "status.json").write_text(json.dumps(status))
        await wait_for(pilot, lambda: text_of(title).endswith("columns"), 10)
        await wait_for(pilot, lambda: title.size.height >= 2, 5)
