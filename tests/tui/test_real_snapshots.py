"""SVG snapshots of every console view over the run folders the real commands wrote during this test
session (`real_runs`: a tiny `ztb train`, `ztb eval` on it, a two-trial `ztb tune`, a pretrain
fast-dev-run and a few-step pretrain, a trading and a never-ready dry-run `ztb live`), each at 80x24
and 200x60.

Those folders carry wall-clock times and values from training on whatever CPU runs the tests, so the
snapshots are compared by layout (`svg_snapshot`: every line's labels, titles, borders, colours and
widgets exactly; numbers and the marks a chart draws from them not at all) and the console's clock
is frozen an hour after the newest run's last heartbeat, so every age is "about an hour".

Snapshots live in tests/tui/__snapshots__/real_snapshots/. After an intended change to a view:

    pytest tests/tui/test_real_snapshots.py --snapshot-update      (or ZTB_SNAPSHOT_UPDATE=1)

then look at the rewritten SVGs before committing them. On a mismatch the assertion names the actual
screenshot and a line diff of the layouts, written under the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import FakeGpu, FakeHost
from real_runs import EVAL, LIVE, LIVE_NOT_READY, PRETRAIN, PRETRAIN_FDR, TRAIN, TUNE
from svg_snapshot import SnapshotMismatch, check_snapshot, layout
from test_app import open_run, run_table, wait_for

from ztb_tui.app import ZtbApp
from ztb_tui.poller import Poller
from ztb_tui.prefs import RunsListPrefs
from ztb_tui.prefs import save as save_prefs
from ztb_tui.screens.run import RunScreen

pytestmark = pytest.mark.anyio

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SNAPSHOTS = Path(__file__).with_name("__snapshots__") / "real_snapshots"
SIZES = [(80, 24), (200, 60)]
#: the parts of a view left out of its snapshot, with why. A dry-run `ztb live` trades against the
#: emulator's replay in real time, so which orders are still open and how many fills there were
#: when it stopped differ from one build of the runs to the next (the not-ready run shares the
#: emulator account, so it shows the same orders); test_real_runs.py checks their contents.
LIVE_TABLES = ["#live-orders", "#live-fills", ".live-heading"]
#: a run's resources panel shows its own telemetry: the GPU line says what the building machine has
#: (no driver, a driver and no GPU, a GPU), and whether a run of a few steps wrote a `sys` row at
#: all depends on its timing. The panel's frame and title stay; its contents are left out.
RESOURCES = ["#resources > *"]
#: (name, run to open or None for the runs list, keys pressed once it is open, parts left out)
VIEWS = [
    ("runs", None, [], []),
    ("train-curves", TRAIN, [], RESOURCES),
    ("train-checkpoints", TRAIN, ["2"], RESOURCES),
    ("train-logs", TRAIN, ["3"], RESOURCES),
    ("train-events", TRAIN, ["4"], RESOURCES),
    ("train-config", TRAIN, ["5"], RESOURCES),
    ("eval-report", EVAL, [], RESOURCES),
    ("tune-trials", TUNE, [], RESOURCES),
    ("pretrain-fast-dev-run", PRETRAIN_FDR, [], RESOURCES),
    ("pretrain", PRETRAIN, [], RESOURCES),
    ("live-trading", LIVE, [], [*RESOURCES, *LIVE_TABLES]),
    ("live-not-ready", LIVE_NOT_READY, [], [*RESOURCES, *LIVE_TABLES]),
]


def frozen_now(artifacts: Path) -> float:
    """An hour after the newest heartbeat of any run: ages read the same on every test run."""
    newest = 0.0
    for status in (artifacts / "runs").glob("*/status.json"):
        doc = json.loads(status.read_text())
        newest = max(newest, float(doc.get("updated_at") or 0.0), float(doc.get("step_updated_at") or 0.0))
    return newest + 3600.0


@pytest.fixture
def update_snapshots(request) -> bool:
    return bool(request.config.getoption("--snapshot-update", default=False)) or os.environ.get(
        "ZTB_SNAPSHOT_UPDATE"
    ) not in (None, "", "0")


def console(artifacts: Path, later_s: float = 0.0) -> ZtbApp:
    now = frozen_now(artifacts) + later_s
    app = ZtbApp(
        artifacts,
        configs=CONFIGS,
        now=lambda: now,
        host=FakeHost(FakeGpu(available=False, reason="NVML: no NVIDIA driver on this machine")),
        refresh_s=0.1,
    )
    # sorted by name, as a user's remembered sort (ztb_tui.prefs): the default, newest first,
    # follows which of the concurrently built runs happened to start first
    save_prefs(app.prefs_path, artifacts, RunsListPrefs(sort_key="run", sort_reverse=False))
    return app


def screen_pollers(app: ZtbApp) -> list[Poller]:
    screen = app.screen
    found = list(getattr(screen, "pollers", []))
    found += [p for p in (getattr(screen, "poller", None), getattr(screen, "health_poller", None)) if p is not None]
    return found


async def settled_svg(pilot, quiet_s: float = 0.6, timeout: float = 40.0) -> str:
    """The screenshot once its layout has held still while every running source of the screen
    completed two polls (so one poll began after the last change) and for at least `quiet_s`. A
    busy machine makes it wait longer instead of capturing a half-filled screen."""
    app = pilot.app
    deadline = time.monotonic() + timeout

    def polls() -> dict[Poller, int]:
        return {p: p.polls for p in screen_pollers(app) if not p._stopped}

    svg = app.export_screenshot()
    last, since, base = layout(svg), time.monotonic(), polls()
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        svg = app.export_screenshot()
        now = layout(svg)
        if now != last:
            last, since, base = now, time.monotonic(), polls()
            continue
        polled = all(n >= base.get(p, 0) + 2 for p, n in polls().items())
        if polled and time.monotonic() - since >= quiet_s:
            return svg
    raise AssertionError(f"the screen did not settle within {timeout:.0f} s")


async def render(
    artifacts: Path,
    run: str | None,
    keys: list[str],
    masked: list[str],
    size: tuple[int, int],
    later_s: float = 0.0,
    change: Callable[[ZtbApp], None] | None = None,
) -> str:
    """The view's settled screenshot; `later_s` moves the frozen clock on, `change` alters the
    screen before it settles (the positive controls)."""
    app = console(artifacts, later_s)
    n_runs = len(list((artifacts / "runs").glob("*/run.json")))
    async with app.run_test(size=size) as pilot:
        table = run_table(app)
        await wait_for(pilot, lambda: table.row_count >= n_runs and app.host_sample is not None, 30)
        if run is not None:
            screen = await open_run(pilot, app, run)
            await wait_for(pilot, lambda: isinstance(screen, RunScreen) and screen.snapshot is not None, 20)
            for key in keys:
                await pilot.press(key)
        await settled_svg(pilot)
        # the data as shown now stays: no poll may undo a change or bring back a part left out
        for poller in screen_pollers(app):
            poller.stop()
        if change is not None:
            change(app)
        for selector in masked:
            for widget in app.screen.query(selector):
                widget.display = False
        # a fresh layout of what is shown, as a terminal resize gives: the run title is updated
        # without a re-layout (to spare the CPU), so whether a title that grew to two lines after
        # the first paint shows its second line depended on when the polls came in
        for widget in app.screen.walk_children():
            widget.clear_cached_dimensions()
        await pilot.resize_terminal(size[0] + 1, size[1])
        await pilot.pause(0.1)
        await pilot.resize_terminal(*size)
        return await settled_svg(pilot)


@pytest.fixture
def in_parent_of(monkeypatch):
    """The header names the artifacts folder relative to the working folder: "artifacts", not a
    tmp path that differs between machines."""

    def go(artifacts: Path) -> None:
        monkeypatch.chdir(artifacts.parent)

    return go


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("name", "run", "keys", "masked"), VIEWS, ids=[v[0] for v in VIEWS])
async def test_view_matches_its_snapshot(
    real_runs, in_parent_of, update_snapshots, tmp_path, name, run, keys, masked, size
) -> None:
    in_parent_of(real_runs)
    svg = await render(real_runs, run, keys, masked, size)
    check_snapshot(svg, SNAPSHOTS / f"{name}-{size[0]}x{size[1]}.svg", update_snapshots, tmp_path)


# ---- the comparer: it catches a changed layout, and only that ---------------------------------


async def test_positive_control_a_hidden_panel_fails_with_a_report(real_runs, in_parent_of, tmp_path) -> None:
    """The train run's verdict panel hidden: the comparison fails, names the actual screenshot and
    the layout diff, and both files are there to open."""
    in_parent_of(real_runs)

    def hide_verdict(app: ZtbApp) -> None:
        app.screen.query_one("#verdict").display = False

    svg = await render(real_runs, TRAIN, [], RESOURCES, (80, 24), change=hide_verdict)
    with pytest.raises(SnapshotMismatch) as failed:
        check_snapshot(svg, SNAPSHOTS / "train-curves-80x24.svg", False, tmp_path / "report")
    message = str(failed.value)
    assert "-06 " in message and "Verdict" in message  # the diff shows the verdict lines gone
    for name in ("train-curves-80x24.actual.svg", "train-curves-80x24.layout.diff"):
        assert str(tmp_path / "report" / name) in message and (tmp_path / "report" / name).exists()


async def test_positive_control_a_colour_or_a_title_change_fails(real_runs, in_parent_of, tmp_path) -> None:
    in_parent_of(real_runs)

    def recolour(app: ZtbApp) -> None:
        app.screen.query_one("#runs").styles.color = "red"  # a CSS change: the table's text colour

    svg = await render(real_runs, None, [], [], (80, 24), change=recolour)
    with pytest.raises(SnapshotMismatch):
        check_snapshot(svg, SNAPSHOTS / "runs-80x24.svg", False, tmp_path)
    plain = await render(real_runs, None, [], [], (80, 24))
    check_snapshot(plain, SNAPSHOTS / "runs-80x24.svg", False, tmp_path)  # the control: unchanged passes
    renamed = plain.replace("&#160;state", "&#160;stage", 1)  # a column title changed
    assert renamed != plain
    with pytest.raises(SnapshotMismatch):
        check_snapshot(renamed, SNAPSHOTS / "runs-80x24.svg", False, tmp_path)


def _scaled(value: object, factor: float) -> object:
    if isinstance(value, float):
        return value * factor
    if isinstance(value, dict):
        return {
            k: v if k in ("time", "step", "updated_at", "created_at") else _scaled(v, factor) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    return value


async def test_other_numbers_and_a_later_clock_still_match(real_runs, copy_run, artifacts, in_parent_of, tmp_path):
    """What another CPU or another day changes: every float the training and the evaluation wrote
    scaled by 1.37 (longer numbers, other axis labels, the same ordering), and the clock five hours
    later (every age and time). The snapshots still match."""
    copied = copy_run(real_runs, TRAIN, EVAL)
    for run in copied.values():
        for path in [run / "metrics.jsonl", *(run / "reports").glob("*.json")]:
            if path.suffix == ".jsonl":
                rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
                path.write_text("".join(json.dumps(_scaled(r, 1.37)) + "\n" for r in rows))
            else:
                path.write_text(json.dumps(_scaled(json.loads(path.read_text()), 1.37)))
    changed = (copied[TRAIN] / "metrics.jsonl").read_text()
    assert changed != (real_runs / "runs" / TRAIN / "metrics.jsonl").read_text()
    in_parent_of(artifacts)
    shown = {}
    for run, name in ((TRAIN, "train-curves"), (EVAL, "eval-report")):
        shown[run] = await render(artifacts, run, [], RESOURCES, (80, 24), later_s=5 * 3600.0)
        check_snapshot(shown[run], SNAPSHOTS / f"{name}-80x24.svg", False, tmp_path)
    # the control: the screen itself did change (its numbers), so the normalisation is what matched
    in_parent_of(real_runs)
    as_built = await render(real_runs, TRAIN, [], RESOURCES, (80, 24))
    assert re.findall(r">([^<]*\d[^<]*)</text>", as_built) != re.findall(r">([^<]*\d[^<]*)</text>", shown[TRAIN])
