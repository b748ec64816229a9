"""`ztb tune` workers on many machines share one study through PostgreSQL: two real worker processes
against a real server lose and duplicate no trial, and a worker killed in the middle of a trial (its
train run with it, as when a machine dies) leaves that trial FAIL, not RUNNING forever, while the
other worker's study goes on."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from .conftest import status, wait_for, ztb
from .postgres import postgres_server
from .test_tune import _finish, tune_args

pytestmark = pytest.mark.slow


def _events(run_dir) -> list[dict]:
    path = run_dir / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_two_workers_on_postgres_and_a_killed_worker_leaves_its_trial_failed(art, tmp_path):
    import optuna

    beats = ["--set", "heartbeat_s=1", "--set", "grace_s=4"]
    env = {"ZTB_ARTIFACTS": str(art)}
    with postgres_server() as url:
        survivor = ztb(*tune_args("wa", url, 3, "--set", "seed=1", *beats), env=env)
        doomed = ztb(*tune_args("wb", url, 2, "--set", "seed=2", *beats), env=env)
        runs = art / "runs"
        # kill the second worker once its first trial's train run is working, with that run
        started = wait_for(
            lambda: next((e for e in _events(runs / "wb") if e["event"] == "trial_started"), None),
            240,
            "worker wb to start a trial",
        )
        child = runs / started["run_id"]
        child_pgid = wait_for(lambda: status(child).get("pgid"), 240, "the trial's train run to start")
        _kill_group(doomed.pid)  # the worker runs in its own session: pgid == pid
        _kill_group(int(child_pgid))
        doomed.wait(timeout=30)
        killed_at = time.monotonic()
        _finish(survivor, timeout=900)

        study = optuna.load_study(study_name="shared", storage=url)
        trials = study.get_trials()
        by_number = {t.number: t for t in trials}
        assert sorted(by_number) == list(range(len(trials)))  # no number skipped
        assert len(trials) == 4  # the survivor's 3 and the one the killed worker had started
        run_ids = [t.user_attrs["run_id"] for t in trials]
        assert len(set(run_ids)) == len(run_ids)  # no trial run twice
        dead = next(t for t in trials if t.user_attrs["run_id"] == started["run_id"])
        assert dead.state.name == "FAIL", dead.state  # failed by the survivor's stale-trial check
        others = [t for t in trials if t is not dead]
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in others), [t.state for t in others]
        # the survivor reported each of its trials once, and the last one started after the kill was seen
        rows = [json.loads(x) for x in (runs / "wa" / "metrics.jsonl").read_text().splitlines()]
        assert sorted(r["step"] for r in rows if r["split"] == "trial") == sorted(t.number for t in others)
        assert time.monotonic() - killed_at > 0
        doc = json.loads((runs / "wa" / "reports" / "trials.json").read_text())
        assert {t["number"]: t["state"] for t in doc["trials"]}[dead.number] == "fail"
        assert "***" not in doc["storage"] and doc["storage"].startswith("postgresql")
