"""`ztb canary`: phases x fault rows against the loopback emulator, a pass/fail table, exit 1 on a
failed cell. Positive control: a fault row whose fault never fires fails its cells (it proved
nothing). The kill/resume phase (two training processes) is the slow test."""

from __future__ import annotations

import pytest

from ztb_core.cli import main
from ztb_core.ops import canary
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
