"""Pilot tests: every screen and action of the console on fixture run folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import NOW, make_run
from textual.command import CommandPalette
from textual.widgets import Button, DataTable, Input, RichLog, Select, Sparkline, Static, TabbedContent

from ztb_core.manifest import Manifest
from ztb_core.runs import RunReader
from ztb_tui import launching
from ztb_tui.screens.confirm import ConfirmScreen
from ztb_tui.screens.launch import LaunchScreen
from ztb_tui.screens.run import RunScreen
from ztb_tui.screens.runs import RunsScreen
from ztb_tui.screens.stop import StopScreen

pytestmark = pytest.mark.anyio

FAKE_RUN = Path(__file__).with_name("fake_run.py")


async def wait_for(pilot, predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(step)
    raise AssertionError("condition not reached in time")


def run_table(app) -> DataTable:
    return app.screen.query_one("#runs", DataTable)


def table_text(table: DataTable) -> str:
    return "\n".join(" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count))


async def open_run(pilot, app, run_id: str) -> RunScreen:
    table = run_table(app)
    await wait_for(pilot, lambda: table.row_count > 0)
    table.move_cursor(row=table.get_row_index(run_id))
    table.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
    return app.screen


# ---- runs list --------------------------------------------------------------------------


async def test_empty_state_says_how_to_start_and_new_runs_appear(make_app, artifacts: Path) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        empty = app.screen.query_one("#empty", Static)
        await wait_for(pilot, lambda: empty.display and "ztb train --headless" in str(empty.render()))
        assert "Press n" in str(empty.render())
        make_run(artifacts, "train-20260101-120000-new1")  # a run started elsewhere
        await wait_for(pilot, lambda: run_table(app).row_count == 1)
        assert not empty.display
        assert "train-20260101-120000-new1" in table_text(run_table(app))


async def test_runs_list_shows_kind_state_progress_fps_heartbeat(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        rows = {str(run_table(app).get_row_at(i)[0]): [str(c) for c in run_table(app).get_row_at(i)] for i in range(4)}
        assert rows["train-20260101-100000-a1b2"][1:] == ["train", "running", "███░░░░  41%", "812.5", "2s"]
        assert rows["live-20260101-110000-e5f6"][2] == "stale"
        assert rows["train-20260101-080000-dead"][2] == "dead"
        assert rows["train-20260101-080000-dead"][4] == "-"  # no rate for a dead run
        assert rows["pretrain-20260101-090000-c3d4"][2:4] == ["completed", "███████ 100%"]
        # newest first
        assert str(run_table(app).get_row_at(0)[0]) == "live-20260101-110000-e5f6"


# ---- run view ---------------------------------------------------------------------------


async def test_run_view_curves_resources_progress(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await wait_for(pilot, lambda: "train/ep_rew_mean" in screen.query_one("#curves").rows)
        curves = screen.query_one("#curves").rows
        assert list(curves)[:2] == ["train/ep_rew_mean", "val/sharpe"]
        assert "train/value_loss" in curves and "train/policy_loss" in curves
        await wait_for(pilot, lambda: curves["val/sharpe"].view is not None)
        assert curves["val/sharpe"].view.last == pytest.approx(1.3)
        # the periodic evaluation is drawn beside buy-and-hold on the same bars
        await wait_for(pilot, lambda: curves["val/sharpe"].ref is not None)
        assert curves["val/sharpe"].ref == pytest.approx(0.5) and curves["val/sharpe"].ref_label == "B&H"
        res = screen.query_one("#resources").rows
        await wait_for(pilot, lambda: "sys/gpu0_util_pct" in res)
        assert {
            "sys/cpu_pct",
            "sys/rss_mb",
            "sys/sys_mem_pct",
            "sys/proc_vram_mb",
            "sys/gpu0_mem_used_mb",
            "sys/gpu0_temp_c",
            "sys/gpu0_power_w",
        } <= set(res)
        await wait_for(pilot, lambda: "81,559" in str(res["sys/gpu0_mem_used_mb"].query_one(".metric-stats").render()))
        eta = str(screen.query_one("#eta", Static).render())
        assert "41.0k/100.0k · ETA 1:13 · 812.5 steps/s" in eta  # ETA first: it must not be the part cut
        title = str(screen.query_one("#run-title", Static).render())
        assert "running" in title and "pid 1" in title
        # the loss sparkline grows as the run appends
        spark = curves["train/value_loss"].query_one(Sparkline)
        before = len(spark.data)
        with open(fleet["train"] / "metrics.jsonl", "a") as fh:
            for i in range(5):
                fh.write(json.dumps({"time": NOW, "step": 41_000 + i, "split": "train", "value_loss": 0.01}) + "\n")
        await wait_for(pilot, lambda: len(spark.data) == before + 5)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_gpu_unavailable_is_a_state_not_an_error(make_app, artifacts: Path) -> None:
    make_run(artifacts, "train-nogpu", gpu=False)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-nogpu")
        line = screen.query_one("#gpu-line", Static)
        await wait_for(pilot, lambda: "unavailable" in str(line.render()))
        assert str(line.render()) == "GPU: unavailable — NVML: driver not loaded (test)"
        assert "sys/cpu_pct" in screen.query_one("#resources").rows  # the rest keeps working
        host = str(screen.query_one("#host").render())
        # the footer says it with an icon: the reason is told once (a notice) and stays in the panel
        assert "GPU ✗" in host and "NVML" not in host


async def test_kind_specific_curves(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "live-20260101-110000-e5f6")
        await wait_for(pilot, lambda: "live/equity" in screen.query_one("#curves").rows)
        assert list(screen.query_one("#curves").rows)[:2] == ["live/equity", "live/pnl"]
        assert not screen.query_one("#progress").display  # a live run has no total
        await pilot.press("escape")
        screen = await open_run(pilot, app, "pretrain-20260101-090000-c3d4")
        await wait_for(pilot, lambda: "val/corr_return_M1" in screen.query_one("#curves").rows)
        rows = screen.query_one("#curves").rows
        assert {"train/loss", "val/loss"} <= set(rows)
        # baselines sit beside their model row; level correlation (no target) is not drawn
        assert "val/corr_return_linear_M1" not in rows and "val/corr_level_M1" not in rows
        await wait_for(pilot, lambda: rows["val/corr_return_M1"].ref is not None)
        assert rows["val/corr_return_M1"].ref == pytest.approx(0.27) and rows["val/corr_return_M1"].ref_label == "lin"
        # the interior-return correlation comes first, beside the strongest naive filler's
        curve_rows = [k for k in rows if k.startswith("val/corr")]
        assert curve_rows[0] == "val/corr_interior_M1" and "val/corr_interior_baseline_M1" not in rows
        interior = rows["val/corr_interior_M1"]
        await wait_for(pilot, lambda: interior.ref is not None)
        assert interior.ref == pytest.approx(0.33) and interior.ref_label == "best naive"
        assert screen.query_one("#stop", Button).disabled  # nothing to stop in a completed run


async def test_logs_follow_and_events_highlight_alerts(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await pilot.press("3")
        assert screen.query_one("#tabs", TabbedContent).active == "tab-logs"
        log = screen.query_one("#log", RichLog)

        def log_lines() -> list[str]:
            return [line.text.rstrip() for line in log.lines]

        await wait_for(pilot, lambda: len(log.lines) >= 30)
        with open(fleet["train"] / "logs" / "run.log", "a") as fh:
            fh.write("ERROR something new\n")
        await wait_for(pilot, lambda: log_lines()[-1] == "ERROR something new")
        (fleet["train"] / "logs" / "run.log").write_text("after truncation\n")
        await wait_for(pilot, lambda: log_lines()[-1] == "after truncation")
        assert "— log truncated; following it from the top —" in log_lines()
        await pilot.press("4")
        events = screen.query_one("#events", RichLog)
        await wait_for(pilot, lambda: len(events.lines) >= 4)
        text = "\n".join(line.text for line in events.lines)
        assert "⚠ alert message=drawdown above 15% threshold" in text
        assert "checkpoint_saved" in text
        label = str(screen.query_one("#tabs", TabbedContent).get_tab("tab-events").label)
        assert "⚠1" in label
        await pilot.press("5")
        assert "total_timesteps" in str(screen.query_one("#config", Static).render())


# ---- checkpoints ------------------------------------------------------------------------


async def test_checkpoint_verify_and_delete_with_confirmation(make_app, fleet) -> None:
    run = fleet["train"]
    manifest = Manifest(run / "checkpoints")
    first = manifest.entries()[0]["file"]
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await pilot.press("2")
        table = screen.query_one("#checkpoints", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert [str(c) for c in table.get_row_at(1)][:5] == [
            "40,960 ★",
            "2026-01-01 11:11:00",
            "20.5 KiB",
            "3.00",
            "unverified",
        ]
        await pilot.press("v")
        await wait_for(pilot, lambda: str(table.get_row_at(0)[4]) == "ok")
        (run / "checkpoints" / first).write_bytes(b"x" * manifest.entries()[0]["size"])  # same size, new bytes
        await pilot.press("v")
        await wait_for(pilot, lambda: str(table.get_row_at(0)[4]) == "BAD: sha256 mismatch")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # cancel keeps it
        assert (run / "checkpoints" / first).exists()
        await pilot.press("d")
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 1)
        assert not (run / "checkpoints" / first).exists()
        assert [e["file"] for e in manifest.entries()] == [f for f in [manifest.entries()[0]["file"]]]
        assert first not in [e["file"] for e in manifest.entries()]


@pytest.fixture
def spy_launch(monkeypatch, tmp_path):
    """Record what the console launches, and start a harmless sleeper in its place (detached
    exactly like the real thing)."""
    calls: list[dict] = []
    real = launching.launch_detached

    def fake(argv, log_path, env=None, cwd=None):
        calls.append({"argv": argv, "log": log_path, "env": env})
        return real(
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(20)"],
            log_path,
            env=env,
            cwd=cwd,
        )

    monkeypatch.setattr(launching, "launch_detached", fake)
    yield calls
    for c in calls:
        c.get("proc") and c["proc"].kill()


async def test_resume_from_checkpoint_launches_detached(make_app, fleet, spy_launch, artifacts) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await pilot.press("2")
        table = screen.query_one("#checkpoints", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        table.move_cursor(row=1)
        await pilot.press("R")  # r is refresh everywhere; R resumes, after verifying the checkpoint
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "checksum verified" in str(app.screen.query_one("#detail", Static).render())
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.launched) == 1)
        proc = app.launched[0].proc
        try:
            argv = spy_launch[0]["argv"]
            assert argv[3:6] == ["train", "--headless", "--resume"]
            assert argv[6] == str(fleet["train"] / "checkpoints" / "step-000040960.zip")
            assert spy_launch[0]["env"] == {"ZTB_ARTIFACTS": str(artifacts)}
            assert os.getsid(proc.pid) == proc.pid  # its own session: survives the console and SSH
            assert spy_launch[0]["log"].parent == artifacts / "launches"
        finally:
            proc.kill()
            proc.wait()


# ---- launch -----------------------------------------------------------------------------


async def test_launch_dialog_starts_a_detached_run(make_app, spy_launch, artifacts: Path) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, LaunchScreen)
        dialog = app.screen
        dialog.query_one("#kind", Select).value = "live-dry-run"
        await pilot.pause()
        dialog.query_one("#overrides", Input).value = "oops"
        await pilot.press("ctrl+l")
        assert "expected key=value" in str(dialog.query_one("#launch-error", Static).render())
        assert spy_launch == []
        dialog.query_one("#overrides", Input).value = "risk.max_position=0.5"
        dialog.query_one("#run-id", Input).value = "live-test-1"
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(spy_launch) == 1)
        assert isinstance(app.screen, RunsScreen)
        argv = spy_launch[0]["argv"]
        assert argv[3:5] == ["live", "--dry-run"]
        assert argv[-4:] == ["--set", "risk.max_position=0.5", "--run-id", "live-test-1"]
        assert spy_launch[0]["log"] == artifacts / "launches" / "live-test-1.out"
        await wait_for(pilot, lambda: (artifacts / "launches" / "live-test-1.out").read_text().startswith("started"))
        app.launched[0].proc.kill()
        app.launched[0].proc.wait()


async def test_failed_launch_is_reported(make_app, monkeypatch, artifacts: Path) -> None:
    real = launching.launch_detached
    monkeypatch.setattr(
        launching,
        "launch_detached",
        lambda argv, log, env=None, cwd=None: real(
            [sys.executable, "-c", "import sys; print('no such config'); sys.exit(2)"], log, env=env
        ),
    )
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.press("ctrl+l")
        await wait_for(
            pilot,
            lambda: any("exited with code 2: no such config" in n.message for n in app._notifications),
            timeout=10,
        )
        assert app.launched == []  # reaped


# ---- STOP -------------------------------------------------------------------------------


def start_fake_run(artifacts: Path, run_id: str, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_RUN), str(artifacts), run_id, *extra],
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (
            RunReader(artifacts / "runs" / run_id).status().get("state") == "running"
            if (artifacts / "runs" / run_id).is_dir()
            else False
        ):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("fake run did not start")


async def test_stop_button_confirm_countdown_and_final_state(make_app, artifacts: Path) -> None:
    proc = start_fake_run(artifacts, "train-stopme")
    app = make_app(now=time.time, stop_timeout_s=15, kill_timeout_s=5)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_run(pilot, app, "train-stopme")
            await wait_for(pilot, lambda: screen.row is not None and screen.row.liveness == "running")
            await pilot.click("#stop")
            assert isinstance(app.screen, ConfirmScreen)
            assert "SIGTERM" in str(app.screen.query_one("#detail", Static).render())
            await pilot.press("y")
            assert isinstance(app.screen, StopScreen)
            stop = app.screen
            await wait_for(pilot, lambda: stop.done, timeout=20)
            outcome = str(stop.query_one("#outcome", Static).render())
            assert "final state stopped" in outcome and "wrote kill-file" in outcome
            await pilot.press("enter")
            assert app.screen is screen
            await wait_for(pilot, lambda: screen.row.state == "stopped")
            assert screen.query_one("#stop", Button).disabled
        assert proc.wait(5) == 0
        events = [e["event"] for e in RunReader(artifacts / "runs" / "train-stopme").events()]
        assert "stop_requested" in events and "console_stop" in events
    finally:
        proc.kill()


async def test_stop_dialog_says_stopped_as_soon_as_the_status_does(make_app, artifacts: Path) -> None:
    """A run that wrote its final state but whose process is still exiting is stopped: the dialog
    says so and stops counting toward SIGTERM, instead of counting until the process is gone."""
    proc = start_fake_run(artifacts, "train-linger", "--linger")
    app = make_app(now=time.time, stop_timeout_s=30, kill_timeout_s=5)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: run_table(app).row_count == 1)
            await pilot.press("s", "y")
            stop = app.screen
            assert isinstance(stop, StopScreen)
            phase = stop.query_one("#phase", Static)
            await wait_for(pilot, lambda: "final state written" in str(phase.render()), timeout=15)
            assert RunReader(artifacts / "runs" / "train-linger").status()["state"] == "stopped"
            assert proc.poll() is None  # the process is still there: the worker alone would keep counting
            shown = str(phase.render())
            assert "stopped" in shown and "before SIGTERM" not in shown
            await pilot.pause(1.0)
            assert str(phase.render()) == shown  # no longer counting
            assert not stop.query_one("#close", Button).disabled
            await pilot.press("enter")
            assert not isinstance(app.screen, StopScreen)
    finally:
        proc.kill()
        proc.wait(5)


async def test_stop_escalates_to_sigterm_then_sigkill(make_app, artifacts: Path) -> None:
    proc = start_fake_run(artifacts, "train-stubborn", "--stubborn")
    app = make_app(now=time.time, stop_timeout_s=0.6, kill_timeout_s=0.6)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: run_table(app).row_count == 1)
            await pilot.press("s", "y")
            stop = app.screen
            assert isinstance(stop, StopScreen)
            await wait_for(pilot, lambda: stop.done, timeout=20)
            outcome = str(stop.query_one("#outcome", Static).render())
            assert "sent SIGTERM" in outcome and "sent SIGKILL" in outcome and "final state dead" in outcome
        assert proc.wait(5) == -9
        events = [e["event"] for e in RunReader(artifacts / "runs" / "train-stubborn").events()]
        assert events.count("stop_escalated") == 2 and "killed" in events and "console_stop" in events
    finally:
        proc.kill()


async def test_stop_all_writes_the_global_kill_file(make_app, artifacts: Path) -> None:
    proc = start_fake_run(artifacts, "train-all")
    app = make_app(now=time.time, stop_timeout_s=15, kill_timeout_s=5)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: run_table(app).row_count == 1)
            await pilot.press("S")
            assert "STOP ALL 1" in str(app.screen.query_one("#question").render())
            await pilot.press("y")
            assert Path(os.environ["ZTB_KILL"]).exists()
            stop = app.screen
            await wait_for(pilot, lambda: isinstance(stop, StopScreen) and stop.done, timeout=20)
            assert stop.outcomes[0].final_state == "stopped"
            await pilot.press("enter")
            # the launch dialog warns while the global kill-file is there
            await pilot.press("n")
            assert app.screen.query("#global-warning")
            await pilot.press("escape")
            # the runs list says the kill-file is there, and removes it only after a confirmation
            banner = app.screen.query_one("#global-stop", Static)
            await wait_for(pilot, lambda: banner.display and "global kill-file present" in str(banner.render()))
            await pilot.press("X")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert Path(os.environ["ZTB_KILL"]).exists()
            await pilot.press("X", "y")
            assert not Path(os.environ["ZTB_KILL"]).exists()
            await wait_for(pilot, lambda: not banner.display)
        assert proc.wait(5) == 0
    finally:
        proc.kill()


# ---- read-only, keyboard, palette -------------------------------------------------------


async def test_readonly_hides_launch_stop_delete(make_app, fleet) -> None:
    app = make_app(readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        # the screen's own launch/stop bindings are off; the keys fall through to the app, which
        # answers them with a read-only notice (test_real_runs checks the notice)
        keys = {
            b.binding.key
            for b in app.screen.active_bindings.values()
            if not b.binding.action.startswith("refused") and app.screen.check_action(b.binding.action, ())
        }
        assert not {"n", "s", "S"} & keys
        await pilot.press("n", "s", "S")
        assert isinstance(app.screen, RunsScreen)
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        assert not screen.query_one("#stop", Button).display
        await pilot.press("s", "2", "d")
        assert isinstance(app.screen, RunScreen)
        assert not (fleet["train"] / "ztb.stop").exists()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Launch a run" not in titles and "Stop all runs" not in titles


async def test_command_palette_and_keyboard_navigation(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        # the screen fills its table, then tells the app (RunsListed), whose palette lists the runs:
        # wait for both, or a busy machine checks the palette in between
        await wait_for(pilot, lambda: run_table(app).row_count == 4 and len(app.runs_snapshot) == 4)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Launch a run", "Stop all runs", "Refresh", "Open run train-20260101-100000-a1b2"} <= set(titles)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        # keyboard only: down, enter opens; number keys switch every tab
        run_table(app).focus()
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        assert app.screen.run_dir.name == "train-20260101-100000-a1b2"
        for key, tab in zip(
            "12345", ("tab-overview", "tab-checkpoints", "tab-logs", "tab-events", "tab-config"), strict=True
        ):
            await pilot.press(key)
            assert app.screen.query_one("#tabs", TabbedContent).active == tab


def test_tui_command_is_registered_and_lazy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, ztb_core.cli; print('textual' in sys.modules, 'ztb_tui' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split() == ["False", "False"]
    help_out = subprocess.run(
        [sys.executable, "-m", "ztb_core.cli", "tui", "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_out.returncode == 0 and "--readonly" in help_out.stdout and "--kill-timeout" in help_out.stdout
