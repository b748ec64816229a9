"""Issue 14, points 1, 2 and 4: the keys htop/k9s/lazygit users expect, a layout that adapts to
the terminal with every panel reachable, and screens that keep updating behind dialogs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import make_run
from test_app import open_run, run_table, wait_for
from textual.command import CommandPalette
from textual.widgets import DataTable, Footer, Input, Static

from ztb_core.atomic import atomic_write_json, read_json
from ztb_tui.screens.compare import CompareScreen
from ztb_tui.screens.confirm import ConfirmScreen
from ztb_tui.screens.help import HelpScreen, help_text
from ztb_tui.screens.run import RunScreen
from ztb_tui.screens.runs import RunsScreen
from ztb_tui.widgets.charts import Chart

pytestmark = pytest.mark.anyio


def footer_keys(app) -> dict[str, str]:
    """What the footer shows: key display -> description."""
    footer = app.screen.query_one(Footer)
    return {str(k.key_display): str(k.description) for k in footer.query("FooterKey")}


def ids_in_order(app) -> list[str]:
    table = run_table(app)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_help_screen_opens_on_question_mark_and_closes_on_escape(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = help_text()
        # wrapped descriptions stay in their column: every rendered row that continues one starts blank
        await pilot.pause(0.2)
        rows = ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]
        i = next(n for n, r in enumerate(rows) if "command palette" in r)
        start = rows[i].index("command palette")
        assert rows[i + 1][:start].strip(" █▌▐│") == "" and rows[i + 1][start:].strip()  # continues in its column
        # the help says which key resumes (r is refresh everywhere)
        assert "R" in text and "resume from the checkpoint" in text and "refresh now" in text
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        # the palette's Keys entry opens the same screen, and Esc closes it
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Keys")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        assert not app.screen.query("HelpPanel")


async def test_open_stays_in_the_footer_and_jk_gG_move_the_cursor(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        await pilot.pause(0.2)
        assert footer_keys(app).get("⏎") == "Open"
        table = run_table(app)
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == 3
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        # q leaves the run view (it quits only from the runs list)
        await pilot.press("q")
        assert isinstance(app.screen, RunsScreen)


async def test_slash_filters_and_escape_clears(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.display and box.has_focus
        await pilot.press(*"dead")
        await wait_for(pilot, lambda: run_table(app).row_count == 1)
        assert ids_in_order(app) == ["train-20260101-080000-dead"]
        await pilot.press("enter")  # keep the filter, back to the table
        assert run_table(app).has_focus and run_table(app).row_count == 1
        await pilot.press("slash", "ctrl+u", *"pretrain")
        await wait_for(pilot, lambda: ids_in_order(app) == ["pretrain-20260101-090000-c3d4"])
        await pilot.press("escape")
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        assert not box.display


async def test_columns_sort_by_key_and_by_header_click(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        newest_first = ids_in_order(app)
        assert newest_first[0] == "live-20260101-110000-e5f6"
        await pilot.press("o")  # next sort column: run id, ascending
        assert app.screen.sort_key == "run"
        assert ids_in_order(app) == sorted(newest_first)
        await pilot.press("O")
        assert ids_in_order(app) == sorted(newest_first, reverse=True)
        # a click on the progress header sorts by progress, most advanced first
        table = run_table(app)
        table.post_message(
            DataTable.HeaderSelected(table, table.ordered_columns[3].key, 3, table.ordered_columns[3].label)
        )
        await wait_for(pilot, lambda: app.screen.sort_key == "progress")
        assert ids_in_order(app)[0] == "pretrain-20260101-090000-c3d4"  # 100%
        assert "▼" in str(table.ordered_columns[3].label)


async def test_r_refreshes_in_both_views(make_app, fleet) -> None:
    app = make_app(refresh_s=30)  # no timer poll during the test: only `r` can show new data
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        make_run(app.artifacts, "train-20260101-130000-zz99", created="2026-01-01T13:00:00.000+00:00")
        await pilot.press("r")
        await wait_for(pilot, lambda: run_table(app).row_count == 5, timeout=5)
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await wait_for(pilot, lambda: screen.row is not None)
        status = read_json(fleet["train"] / "status.json")
        status["message"] = "refreshed by r"
        atomic_write_json(fleet["train"] / "status.json", status)
        await pilot.press("r")
        await wait_for(pilot, lambda: "refreshed by r" in str(screen.query_one("#run-title", Static).render()), 5)


async def test_80x24_every_panel_is_reachable_by_scrolling(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        scroll = screen.query_one("#overview-scroll")
        resources = screen.query_one("#resources")
        await wait_for(pilot, lambda: "sys/gpu0_util_pct" in resources.rows and screen.query(Chart))
        await pilot.pause(0.3)
        assert scroll.has_focus
        assert resources.region.y >= scroll.region.bottom  # below the fold at first
        await pilot.press("end")
        await pilot.pause(0.2)
        assert scroll.scroll_y > 0
        assert scroll.region.y <= resources.region.y and resources.region.bottom <= scroll.region.bottom
        await pilot.press("home", "pagedown")
        await pilot.pause(0.1)
        assert 0 < scroll.scroll_y


@pytest.mark.parametrize("size", [(60, 20), (160, 48)])
async def test_layout_adapts(make_app, fleet, size) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        table = run_table(app)
        # the run id is never cut; at 60 columns the missing columns move to the detail line
        assert table.columns[table.ordered_columns[0].key].width >= len("pretrain-20260101-090000-c3d4")
        assert table.region.width <= size[0]
        detail = app.screen.query_one("#run-detail", Static)
        await wait_for(pilot, lambda: "pid" in str(detail.render()))
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await wait_for(pilot, lambda: screen.row is not None)
        eta = screen.query_one("#eta", Static)
        await pilot.pause(0.3)
        assert "ETA 1:13" in str(eta.render())
        assert eta.region.right <= screen.query_one("#stop").region.x  # not under the STOP button
        overview = screen.query_one("#overview")
        charts = screen.query_one("#charts")
        if size[0] >= 120:  # side by side, and the charts use the height (no empty half screen)
            assert overview.has_class("-wide")
            await wait_for(pilot, lambda: any(c.display for c in charts.query(Chart)))
            first = next(c for c in charts.query(Chart) if c.display)
            assert first.region.height >= (size[1] - 9) // 2
            assert screen.query_one("#res-col").region.x > charts.region.right - 1
        else:
            assert not overview.has_class("-wide")


async def test_no_gpu_is_said_once(make_app, artifacts: Path) -> None:
    make_run(artifacts, "train-nogpu", gpu=False)
    app = make_app()  # the fixture host has no GPU either
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-nogpu")
        line = screen.query_one("#gpu-line", Static)
        await wait_for(pilot, lambda: "unavailable" in str(line.render()) and app.host_sample is not None)
        await pilot.pause(0.2)
        assert line.display
        shown = [w for w in screen.query(Static) if w.display and "GPU: unavailable" in str(w.render())]
        assert shown == [line]  # the run's panel says it; the host bar below shows only "GPU ✗"
        assert "GPU ✗" in str(screen.query_one("#host").render())


async def test_a_dialog_does_not_freeze_the_screen_behind_it(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        await wait_for(pilot, lambda: screen.row is not None)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        status = read_json(fleet["train"] / "status.json")
        status.update(step=50_000, message="moved while the dialog was open")
        atomic_write_json(fleet["train"] / "status.json", status)
        await wait_for(pilot, lambda: screen.row.step == 50_000, timeout=5)
        assert "50.0k/100.0k" in str(screen.query_one("#eta", Static).render())
        assert isinstance(app.screen, HelpScreen)
        # positive control: a full screen on top does pause it
        await pilot.press("escape")
        app.push_screen(CompareScreen([fleet["train"], fleet["dead"]]))
        await pilot.pause(0.3)
        polls = screen.pollers[0].polls
        await pilot.pause(0.6)
        assert screen.pollers[0].polls == polls


async def test_a_stale_run_shows_no_rate_or_eta(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, "train-20260101-100000-a1b2")
        eta = screen.query_one("#eta", Static)
        await wait_for(pilot, lambda: "ETA" in str(eta.render()))
        status = read_json(fleet["train"] / "status.json")
        status["updated_at"] = status["step_updated_at"] = status["updated_at"] - 120  # heartbeat 2 min old
        atomic_write_json(fleet["train"] / "status.json", status)
        await wait_for(pilot, lambda: "no progress" in str(eta.render()))
        text = str(eta.render())
        assert "ETA" not in text and "steps/s" not in text
        assert screen.row.liveness == "stale"


async def test_compare_overlays_marked_runs(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count == 4)
        await pilot.press("c")  # nothing marked: says how
        table = run_table(app)
        for rid in ("train-20260101-100000-a1b2", "train-20260101-080000-dead"):
            table.move_cursor(row=table.get_row_index(rid))
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        chart = app.screen.query_one("#chart-reward", Chart)
        await wait_for(pilot, lambda: len(chart.lines) == 2)
        assert set(chart.lines) == {"A ep reward", "B ep reward"}
        a, b = chart.lines["A ep reward"], chart.lines["B ep reward"]
        assert max(a[0]) > max(b[0])  # by step: the dead run stopped earlier
        await pilot.press("q")
        assert isinstance(app.screen, RunsScreen)


async def test_readonly_cannot_clear_the_global_kill_file(make_app, fleet, artifacts) -> None:
    """--readonly: no clearing the global kill-file either (positive control: it is offered otherwise)."""
    import os

    Path(os.environ["ZTB_KILL"]).write_text("stop")
    app = make_app(readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.screen.query_one("#global-stop", Static)
        await wait_for(pilot, lambda: banner.display)
        await pilot.press("X")
        assert not isinstance(app.screen, ConfirmScreen)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#global-stop", Static).display)
        await pilot.press("X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
    assert Path(os.environ["ZTB_KILL"]).exists()
