"""Screenshots of the main screens at 80x24 and 160x48 (pytest-textual-snapshot). Time is
frozen, the host and GPU are fakes and fixture runs are pinned, so the SVGs are stable;
update them with `pytest tests/tui --snapshot-update` after an intended UI change."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fixtures import NOW, FakeGpu, FakeHost, make_fleet, make_run

from ztb_tui.app import ZtbApp

CONFIGS = Path(__file__).with_name("configs")


@pytest.fixture
def console(artifacts: Path, monkeypatch):
    monkeypatch.chdir(artifacts.parent)  # the header shows the artifacts folder relative to here

    def build(gpu: bool = True, **kwargs) -> ZtbApp:
        return ZtbApp(
            artifacts, now=lambda: NOW, host=FakeHost(FakeGpu(available=gpu)), refresh_s=0.2, configs=CONFIGS, **kwargs
        )

    return build


async def settle(pilot, predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("screen did not settle")
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def runs_loaded(pilot) -> bool:
    app = pilot.app
    return app.host_sample is not None and app.screen.query_one("#runs").row_count > 0


def run_view_ready(pilot) -> bool:
    screen = pilot.app.screen
    return (
        screen.__class__.__name__ == "RunScreen"
        and screen.row is not None
        and screen.snapshot is not None
        and pilot.app.host_sample is not None
        and all(r.view is not None for r in screen.query_one("#curves").rows.values())
    )


def open_first_train(pilot) -> None:
    pilot.app.open_run(pilot.app.runs_source.root / "train-20260101-100000-a1b2")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_runs_list(snap_compare, console, artifacts, size) -> None:
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))

    assert snap_compare(console(), terminal_size=size, run_before=before)


def test_runs_empty_state(snap_compare, console) -> None:
    async def before(pilot):
        await settle(pilot, lambda: pilot.app.screen.query_one("#empty").display and pilot.app.host_sample)

    assert snap_compare(console(gpu=False), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_run_view_curves_and_resources(snap_compare, console, artifacts, size) -> None:
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))
        open_first_train(pilot)
        await settle(pilot, lambda: run_view_ready(pilot))

    assert snap_compare(console(), terminal_size=size, run_before=before)


def test_run_view_gpu_unavailable(snap_compare, console, artifacts) -> None:
    make_run(artifacts, "train-20260101-100000-a1b2", gpu=False)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))
        open_first_train(pilot)
        await settle(pilot, lambda: run_view_ready(pilot))

    assert snap_compare(console(gpu=False), terminal_size=(160, 48), run_before=before)


@pytest.mark.parametrize("tab", ["2", "3", "4"])
def test_run_view_tabs(snap_compare, console, artifacts, tab) -> None:
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))
        open_first_train(pilot)
        await settle(pilot, lambda: run_view_ready(pilot))
        await pilot.press(tab)
        await settle(
            pilot,
            lambda: (
                pilot.app.screen.query_one("#checkpoints").row_count == 2
                and pilot.app.screen.query_one("#log").line_count >= 30
            ),
        )

    assert snap_compare(console(), terminal_size=(80, 24), run_before=before)


def test_stop_confirmation(snap_compare, console, artifacts) -> None:
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))
        open_first_train(pilot)
        await settle(pilot, lambda: run_view_ready(pilot))
        await pilot.press("s")

    assert snap_compare(console(), terminal_size=(80, 24), run_before=before)


def test_launch_dialog(snap_compare, console, artifacts) -> None:
    async def before(pilot):
        await settle(pilot, lambda: pilot.app.host_sample is not None)
        await pilot.press("n")

    assert snap_compare(console(), terminal_size=(80, 24), run_before=before)
