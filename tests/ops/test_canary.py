"""`ztb canary`: phases x fault rows against the loopback emulator, a pass/fail table, exit 1 on a
failed cell. Positive control: a fault row whose fault never fires fails its cells (it proved
nothing). The kill/resume phase (two training processes) is the slow test."""

from __future__ import annotations

import sqlite3

import pytest

from ztb_core.cli import canary, main
from ztb_core.live.execution.journal import Journal
from ztb_core.runs import RunReader, list_runs


def test_live_lite_under_exchange_faults(artifacts, capsys):
    assert main(["canary", "--phase", "live-lite", "--row", "none", "--row", "429", "--row", "disconnect"]) == 0
    out = capsys.readouterr().out
    assert "3/3 passed" in out and "faults fired 2" in out
    (run,) = [r for r in list_runs() if r.kind == "canary"]
    assert run.state == "completed"
    rows = [r for r in RunReader(run.dir).metrics_tail().poll().records if r["split"] == "canary"]
    assert [(r["phase"], r["row"], r["passed"]) for r in rows] == [
        ("live-lite", "none", True),
        ("live-lite", "429", True),
        ("live-lite", "disconnect", True),
    ]


def test_a_fault_that_never_fires_fails_the_cell(artifacts, monkeypatch, capsys):
    monkeypatch.setitem(canary.EXCHANGE_FAULTS, "429", [{"kind": "http_429", "after": 100_000}])
    assert main(["canary", "--phase", "live-lite", "--row", "429", "--no-record"]) == 1
    out = capsys.readouterr().out
    assert "0/1 passed" in out and "the 429 fault never fired" in out


def test_unknown_rows_are_refused(artifacts):
    assert main(["canary", "--row", "meteor"]) == 2


@pytest.mark.slow
def test_kill_resume_with_a_failing_checkpoint_write(artifacts):
    result = canary.run_canary(rows=("memory",), phases=("kill/resume",))
    (cell,) = result.cells
    assert cell.passed, cell.detail
    assert "completed at 2048 of 2048" in cell.detail and "steps counted twice 0" in cell.detail


def test_a_killed_and_resumed_live_session_agrees_with_the_exchange(artifacts, tmp_path, monkeypatch, capsys):
    """A real `ztb live` process group SIGKILLed with an order at the exchange, resumed on the same
    journal and stopped: the journal equals the emulator's books. Positive controls: a journal with
    one fill lost, one fill altered, one order lost, one foreign order or one order left of unknown
    outcome fails `check_books`."""
    made = []

    def keep_emulator(row: str):
        made.append(real(row))
        return made[-1]

    real = canary.emulator
    monkeypatch.setattr(canary, "emulator", keep_emulator)
    keep = tmp_path / "canary"
    argv = ["canary", "--phase", "kill/resume live", "--row", "none", "--keep", str(keep), "--no-record"]
    assert main(argv) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "1/1 passed" in out and "killed" in out  # the detail line itself is wrapped by the console
    (emu,) = made
    assert emu.state.orders and not any(o.open for o in emu.state.orders.values())

    kept = keep / "artifacts" / "live" / "canary-live-kill-none.sqlite"

    def books_after(*sql: tuple[str, tuple]) -> list[str]:
        """check_books on a copy of the session's journal altered by `sql`."""
        copy = tmp_path / f"altered-{len(list(tmp_path.glob('altered-*')))}.sqlite"
        with sqlite3.connect(kept) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
            for statement, args in sql:
                dst.execute(statement, args)
        with Journal(copy, "live", canary.LIVE_VENUE, canary.LIVE_SYMBOL) as journal:
            return canary.check_books(journal, emu)[0]

    bad, figures = [], {}
    with Journal(kept, "live", canary.LIVE_VENUE, canary.LIVE_SYMBOL) as journal:
        bad, figures = canary.check_books(journal, emu)
        fill = journal.fills()[-1]
        order = next(o for o in journal.orders() if o.exchange_id)
    assert not bad and figures["fills"] > 0, (bad, figures)
    assert books_after() == []  # the copy itself is clean
    lost_fill = books_after(("DELETE FROM fills WHERE trade_id=?", (fill.trade_id,)))
    assert any("exchange fills missing from the journal" in b for b in lost_fill)
    assert any(b.startswith("position: journal") for b in lost_fill)
    altered = books_after(("UPDATE fills SET amount=? WHERE trade_id=?", (str(fill.amount * 2), fill.trade_id)))
    assert any(f"journal fill {fill.trade_id} differs" in b for b in altered)
    lost_order = books_after(("DELETE FROM orders WHERE client_id=?", (order.client_id,)))
    assert any("not in the journal (placed twice or lost)" in b for b in lost_order)
    foreign = books_after(
        ("UPDATE orders SET exchange_id='999999', state='open' WHERE client_id=?", (order.client_id,))
    )
    assert any("the exchange never saw: ['999999']" in b for b in foreign)
    assert any("journal's live orders" in b for b in foreign)
    unknown = books_after(("UPDATE orders SET state='unknown' WHERE client_id=?", (order.client_id,)))
    assert any("unknown outcome left" in b for b in unknown)


def test_phases_of_one_canary_do_not_judge_each_other_s_journals(artifacts):
    """One canary, several rows: live-lite's check reads the default journals only, not the per-cell
    journals kill/resume live leaves behind (ids from other emulators read as unknown and duplicated:
    14/18 on the first full run)."""
    result = canary.run_canary(rows=("none", "5xx"), phases=("live-lite", "kill/resume live"))
    assert [(c.phase, c.row) for c in result.cells] == [
        ("live-lite", "none"),
        ("kill/resume live", "none"),
        ("live-lite", "5xx"),
        ("kill/resume live", "5xx"),
    ]
    assert all(c.passed for c in result.cells), [c.detail for c in result.cells if not c.passed]


def test_live_session_through_a_silent_websocket_stall(artifacts):
    """The silent-stall row: the emulator's websocket goes silent (socket open) after three
    decisions; the bot must fall back to REST with an alert, keep deciding and syncing, and end with
    books equal to the exchange's. Before the fix it froze on the open socket (no alert, no
    decision after the stall: the cell fails at its deadline)."""
    result = canary.run_canary(rows=("silent_stall",), phases=("live session",))
    (cell,) = result.cells
    assert cell.passed, cell.detail
    assert "violations 0" in cell.detail and "messages withheld 0" not in cell.detail


def test_live_session_with_a_late_execution_agrees_with_the_exchange(artifacts):
    """The late-execution row: the first placement is executed 15 s after the client timed out (2 s)
    and after the reconcile grace; the journal must end equal to the exchange's books."""
    result = canary.run_canary(rows=("late_execution",), phases=("live session",))
    (cell,) = result.cells
    assert "late executions 1" in cell.detail  # the fault fired: the cell judged a real late execution
    assert cell.passed, cell.detail


def test_session_rows_apply_to_the_live_session_phase_only(artifacts):
    """A late-execution or stall row has no cell in the other phases (it would prove nothing there)."""
    result = canary.run_canary(rows=("late_execution",), phases=("live-lite", "replay"))
    assert result.cells == []
