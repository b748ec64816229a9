"""`ztb smoke` reports each step and fails (exit 1) when one fails; the full pass itself runs in
`make test` before pytest. Positive control: a step that exits non-zero turns the run red."""

from __future__ import annotations

from ztb_core.cli import main, smoke
from ztb_core.runs import RunReader, list_runs


def test_a_failing_step_fails_the_smoke_and_is_recorded(artifacts, monkeypatch, capsys):
    monkeypatch.setattr(
        smoke,
        "plan_steps",
        lambda emu, csv: [smoke.Step("runs", ["runs", "--json"]), smoke.Step("bad option", ["runs", "--no-such"])],
    )
    assert main(["smoke"]) == 1
    out = capsys.readouterr().out
    assert "pass runs" in out and "FAIL bad option" in out and "1/2 passed" in out
    assert "No such option" in out  # the failing step's own output is shown
    (run,) = [r for r in list_runs() if r.kind == "smoke"]  # recorded in the real artifacts folder only
    assert run.state == "failed" and "bad option" in run.message
    rows = [r for r in RunReader(run.dir).metrics_tail().poll().records if r["split"] == "smoke"]
    assert [(r["step"], r["passed"]) for r in rows] == [("runs", True), ("bad option", False)]


def test_steps_run_in_a_temporary_folder_that_is_removed(artifacts, monkeypatch):
    seen = {}

    def plan(emu, csv):
        seen["csv"] = csv
        return [smoke.Step("runs", ["runs", "--json"])]

    monkeypatch.setattr(smoke, "plan_steps", plan)
    result = smoke.run_smoke()
    assert result.passed and [s.name for s in result.steps] == ["runs"]
    assert not seen["csv"].exists() and str(artifacts) not in str(seen["csv"])
