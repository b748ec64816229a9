"""The runs list remembers its sort order and compare marks across console restarts (in the
user's state directory, `ztb_tui.prefs`), over the run folders the real commands wrote; a
`--readonly` console reads them and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from real_runs import EVAL, TRAIN
from test_app import run_table, wait_for
from test_real_runs import console

from ztb_tui.prefs import state_file
from ztb_tui.screens.compare import CompareScreen

pytestmark = pytest.mark.anyio


async def _sort_and_mark(pilot, app) -> None:
    table = run_table(app)
    await wait_for(pilot, lambda: table.row_count >= 7, 20)
    table.focus()
    for rid in (TRAIN, EVAL):
        table.move_cursor(row=table.get_row_index(rid))
        await pilot.press("space")
    await pilot.press("o", "o")  # created -> run -> kind (only the columns shown at 80 columns)
    await pilot.press("O")  # and reversed
    await pilot.pause(0.1)


async def test_sort_and_marks_survive_a_restart(real_runs, console_state_home: Path) -> None:
    app = console(real_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await _sort_and_mark(pilot, app)
        first = app.screen
        sort = (first.sort_key, first.sort_reverse)
        assert sort == ("kind", True) and first.marked == {TRAIN, EVAL}
    saved = state_file()
    assert saved.is_relative_to(console_state_home) and saved.exists()
    entry = json.loads(saved.read_text())["artifacts"][str(real_runs.resolve())]
    assert entry == {"sort_key": "kind", "sort_reverse": True, "marked": sorted([EVAL, TRAIN])}

    again = console(real_runs)
    async with again.run_test(size=(80, 24)) as pilot:
        table = run_table(again)
        await wait_for(pilot, lambda: table.row_count >= 7, 20)
        screen = again.screen
        assert (screen.sort_key, screen.sort_reverse) == sort
        assert screen.marked == {TRAIN, EVAL}
        header = [str(c.label) for c in table.columns.values()]
        assert "kind ▼" in header  # the remembered sort is drawn on its column
        kinds = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert kinds == sorted(kinds, reverse=True)
        marked_cells = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert sum(c.startswith("●") for c in marked_cells) == 2
        await pilot.press("c")  # the remembered marks are what compare opens
        await wait_for(pilot, lambda: isinstance(again.screen, CompareScreen), 10)
        assert {p.name for p in again.screen.run_dirs} == {TRAIN, EVAL}


async def test_readonly_console_reads_the_preferences_and_writes_none(real_runs, console_state_home: Path) -> None:
    app = console(real_runs, readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _sort_and_mark(pilot, app)
        assert app.screen.sort_key == "kind"  # sorting and marking still work on screen
    assert list(console_state_home.rglob("*")) == []  # nothing written

    # a preferences file written by a normal console is honoured, and left byte for byte
    writer = console(real_runs)
    async with writer.run_test(size=(80, 24)) as pilot:
        await _sort_and_mark(pilot, writer)
    before = state_file().read_bytes()
    reader = console(real_runs, readonly=True)
    async with reader.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(reader).row_count >= 7, 20)
        assert reader.screen.sort_key == "kind" and reader.screen.marked == {TRAIN, EVAL}
        await pilot.press("space", "o")
        await pilot.pause(0.1)
    assert state_file().read_bytes() == before


async def test_a_malformed_preferences_file_is_reported_and_ignored(real_runs, console_state_home: Path) -> None:
    path = state_file()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    notices: list[str] = []
    app = console(real_runs)
    original = app.notify

    def spy(message, *a, **k):
        notices.append(str(message))
        return original(message, *a, **k)

    app.notify = spy  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_table(app).row_count >= 7, 20)
        assert app.screen.sort_key == "created"
        assert any("console preferences ignored" in n and str(path) in n for n in notices)
