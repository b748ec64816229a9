"""End to end: launch a real short PPO training run from the console, watch its loss sparkline
grow, press STOP, confirm, and see the run reach `stopped` with a checkpoint. Plus, on a
machine with an NVIDIA GPU, the host panel showing the real GPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Sparkline

from ztb_core.manifest import Manifest
from ztb_core.runs import RunReader
from ztb_tui.screens.launch import LaunchScreen
from ztb_tui.screens.run import RunScreen
from ztb_tui.screens.stop import StopScreen

pytestmark = pytest.mark.anyio

#: the training helper's tiny-but-complete settings: 128-step rollouts, checkpoints every 256 steps
TINY = (
    "data.synthetic.n_bars=12000 splits.embargo=0 env.lookback=8 env.episode_length=256 ppo.n_envs=2 "
    "ppo.n_steps=64 ppo.batch_size=64 ppo.n_epochs=2 ppo.net_arch=[32,32] checkpoint.every_steps=256 "
    "eval.every_steps=0 telemetry_interval_s=0.5 total_timesteps=1000000"
)


async def wait_for(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


@pytest.mark.slow
async def test_launch_watch_and_stop_a_real_training_run(make_app, artifacts: Path) -> None:
    app = make_app(now=time.time, refresh_s=0.25, stop_timeout_s=60, kill_timeout_s=10)
    run_dir = artifacts / "runs" / "train-e2e"
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("n")
            dialog = app.screen
            assert isinstance(dialog, LaunchScreen)
            dialog.query_one("#kind", Select).value = "train"
            dialog.query_one("#overrides", Input).value = TINY
            dialog.query_one("#run-id", Input).value = "train-e2e"
            await pilot.press("ctrl+l")
            await wait_for(pilot, lambda: (run_dir / "run.json").exists(), 90, "the run folder")
            app.open_run(run_dir)
            await wait_for(
                pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.query("#curves"), 10, "the run view"
            )
            screen = app.screen
            curves = screen.query_one("#curves")
            await wait_for(
                pilot,
                lambda: (
                    "train/value_loss" in curves.rows
                    and curves.rows["train/value_loss"].view is not None
                    and curves.rows["train/value_loss"].query(Sparkline)  # rows mount their children a tick later
                ),
                120,
                "the first loss value",
            )
            spark = curves.rows["train/value_loss"].query_one(Sparkline)
            first = len(spark.data)
            await wait_for(pilot, lambda: len(spark.data) >= first + 2, 120, "the loss sparkline to grow")
            await wait_for(pilot, lambda: screen.row is not None and screen.row.liveness == "running", 30, "running")
            await pilot.press("s")
            await pilot.press("y")
            stop = app.screen
            assert isinstance(stop, StopScreen)
            await wait_for(pilot, lambda: stop.done, 90, "the stop to finish")
            assert stop.outcomes[0].final_state == "stopped", stop.outcomes[0].actions
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.row.state == "stopped", 10, "the run view to show stopped")
        status = RunReader(run_dir).status()
        assert status["state"] == "stopped"
        entries = Manifest(run_dir / "checkpoints").entries()
        assert entries, "a stopped training run leaves a checkpoint"
        last = entries[-1]
        assert Manifest(run_dir / "checkpoints").verify(last) == (True, "ok")
        assert last["step"] == status["step"]  # the checkpoint is the step it stopped at
    finally:
        for item in app.launched:
            if item.proc.poll() is None:
                item.proc.kill()


@pytest.mark.gpu
async def test_host_panel_shows_the_real_gpu(make_app) -> None:
    from ztb_core.runtime.telemetry import NvmlSource
    from ztb_tui.sources import HostSource

    nvml = NvmlSource()
    if not nvml.available:
        pytest.skip(f"no NVIDIA GPU: {nvml.reason}")
    name = nvml.gpus()[0].name
    app = make_app(host=HostSource(gpu=nvml))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.host_sample is not None, 10, "a host sample")
        text = str(app.screen.query_one("#host").render())
        assert f"GPU0 {name}" in text and "GiB" in text
