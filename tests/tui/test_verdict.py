"""A finished training run's view shows its end-of-run verdict: what `ztb train` printed at the
end (the agent against the strongest baseline on its last evaluation, PSR/DSR), read from the
`reports/eval-latest.json` the real `ztb train` wrote."""

from __future__ import annotations

import json
import socket
import time

import psutil
import pytest
from real_runs import TRAIN
from test_app import open_run, wait_for
from test_real_runs import SIZES, console, screen_lines
from textual.widgets import Static

from ztb_core.atomic import atomic_write_json

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("size", SIZES)
async def test_a_finished_training_run_shows_its_verdict_on_first_sight(real_runs, size) -> None:
    report = json.loads((real_runs / "runs" / TRAIN / "reports" / "eval-latest.json").read_text())
    vs = report["result"]["vs_strongest"]
    app = console(real_runs)
    async with app.run_test(size=size) as pilot:
        screen = await open_run(pilot, app, TRAIN)
        box = screen.query_one("#verdict", Static)
        await wait_for(pilot, lambda: box.display and "Verdict" in str(box.render()), 10)
        text = " ".join(str(box.render()).split())
        assert f"step {report['step']:,}" in text
        assert " ".join(vs["sentence"].split()) in text  # the interval's own words, as ztb train prints them
        assert "DSR" in text and f"ztb eval --model {TRAIN}" in text
        await pilot.pause(0.2)
        shown = "\n".join(screen_lines(app))
        assert "Verdict" in shown and vs["word"] in shown  # on screen without scrolling, at 80x24 too


async def test_no_verdict_while_running_and_a_hint_when_no_evaluation_was_made(real_runs, copy_run, artifacts) -> None:
    run = copy_run(real_runs, TRAIN)[TRAIN]
    status = json.loads((run / "status.json").read_text())
    # alive: this test's own process, beating now
    me = psutil.Process()
    alive = {"state": "running", "pid": me.pid, "pid_create_time": me.create_time(), "host": socket.gethostname()}
    atomic_write_json(run / "status.json", {**status, **alive, "updated_at": time.time()})
    app = console(artifacts)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, app, TRAIN)
        await wait_for(pilot, lambda: screen.row is not None, 10)
        await pilot.pause(0.3)
        assert not screen.query_one("#verdict", Static).display  # a run still going has no verdict yet
        # it ends with no evaluation made: the view says so and how to get one
        (run / "reports" / "eval-latest.json").unlink()
        atomic_write_json(run / "status.json", {**status, "state": "completed"})
        box = screen.query_one("#verdict", Static)
        await wait_for(pilot, lambda: box.display, 10)
        text = " ".join(str(box.render()).split())
        assert "no evaluation" in text and f"ztb eval --model {TRAIN}" in text


def test_verdict_lines_of_an_old_report_make_no_claim() -> None:
    from ztb_tui.verdict import verdict_lines

    old = {
        "split": "val",
        "step": 100,
        "result": {"sharpe": 1.0, "strongest_baseline": "ridge", "strongest_baseline_sharpe": 0.5},
    }
    (line, *_) = verdict_lines(old, "train-x")
    assert "no claim that either is better" in line
    (line, *_) = verdict_lines({"result": {}}, "train-x")
    assert "undefined" in line
