"""Screenshots of the main screens at 80x24, 120x40 and 200x60 (pytest-textual-snapshot). Time is
frozen, the host and GPU are fakes and fixture runs are pinned, so the SVGs are stable;
update them with `pytest tests/tui --snapshot-update` after an intended UI change."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fixtures import NOW, FakeGpu, FakeHost, make_fleet, make_run

from ztb_core.atomic import atomic_write_json, read_json
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
        and screen.query_one("#charts").version > 0
    )


def open_first_train(pilot) -> None:
    pilot.app.open_run(pilot.app.runs_source.root / "train-20260101-100000-a1b2")


SIZES = [(80, 24), (120, 40), (200, 60)]


@pytest.mark.parametrize("size", SIZES)
def test_runs_list(snap_compare, console, artifacts, size) -> None:
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))

    assert snap_compare(console(), terminal_size=size, run_before=before)


def test_runs_empty_state(snap_compare, console) -> None:
    async def before(pilot):
        await settle(pilot, lambda: pilot.app.screen.query_one("#empty").display and pilot.app.host_sample)

    assert snap_compare(console(gpu=False), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("size", SIZES)
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
                # a hidden RichLog holds its lines until it is shown: count them on the logs tab only
                and (tab != "3" or len(pilot.app.screen.query_one("#log").lines) >= 30)
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


def test_run_view_scrolled_to_the_end_at_80x24(snap_compare, console, artifacts) -> None:
    """The resources panel, below the curves on a small terminal, is reached with End."""
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))
        open_first_train(pilot)
        await settle(pilot, lambda: run_view_ready(pilot))
        await pilot.press("end")
        await pilot.pause(0.3)

    assert snap_compare(console(), terminal_size=(80, 24), run_before=before)


def test_help_screen(snap_compare, console, artifacts) -> None:
    make_fleet(artifacts)

    async def before(pilot):
        await settle(pilot, lambda: runs_loaded(pilot))
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(console(), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_live_run_trading_view(snap_compare, console, artifacts, size) -> None:
    from test_kind_views import write_live_run

    run, _ = write_live_run(artifacts, active=False)
    status = read_json(run / "status.json")
    status.update(updated_at=NOW - 1, step_updated_at=NOW - 1, pid=1, pgid=1, host=None)
    status.pop("pid_create_time", None)
    atomic_write_json(run / "status.json", status)

    async def before(pilot):
        await settle(pilot, lambda: pilot.app.host_sample is not None)
        pilot.app.open_run(run)
        await settle(pilot, lambda: pilot.app.screen.__class__.__name__ == "RunScreen")
        await pilot.press("6")
        await settle(pilot, lambda: pilot.app.screen.query_one("#live-orders").row_count == 1)

    assert snap_compare(console(), terminal_size=size, run_before=before)


def test_eval_report_view(snap_compare, console, artifacts) -> None:
    from test_kind_views import write_eval_run

    run = write_eval_run(artifacts)
    status = read_json(run / "status.json")
    status.update(updated_at=NOW - 60, step_updated_at=NOW - 60, step=7, pid=1, pgid=1, host=None)
    status.pop("pid_create_time", None)
    atomic_write_json(run / "status.json", status)

    async def before(pilot):
        await settle(pilot, lambda: pilot.app.host_sample is not None)
        pilot.app.open_run(run)
        await settle(pilot, lambda: pilot.app.screen.__class__.__name__ == "RunScreen")
        await pilot.press("6")
        await settle(pilot, lambda: pilot.app.screen.query_one("#eval-metrics").row_count > 0)

    assert snap_compare(console(), terminal_size=(120, 40), run_before=before)
