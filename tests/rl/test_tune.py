"""`ztb tune`: an Optuna study whose trials are real `ztb train --headless` runs.

Two worker processes share one SQLite study (no trial lost or duplicated); a pruned trial's run is
stopped through its kill-file; the study's trials feed the DSR through the trial registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import TINY, status, ztb

#: each trial: 256 steps of the tiny config, evaluated every 128 (two evaluation rows)
TRIAL_SETS = [s for s in TINY if not s.startswith(("eval.every_steps", "checkpoint.every_steps"))] + [
    "eval.every_steps=128",
    "checkpoint.every_steps=128",
    "total_timesteps=256",
]
SPACE = {"ppo.n_steps": {"choices": [64, 128]}, "ppo.gamma": {"low": 0.8, "high": 0.99}}


def tune_args(run_id: str, storage: str, trials: int, *extra: str) -> list[str]:
    return [
        "tune",
        "--trials",
        str(trials),
        "--study",
        "shared",
        "--storage",
        storage,
        "--run-id",
        run_id,
        "--set",
        f"train_overrides={json.dumps(TRIAL_SETS)}",
        "--set",
        f"space={json.dumps(SPACE)}",
        "--set",
        "poll_s=0.2",
        *extra,
    ]


def _finish(proc, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


@pytest.mark.slow
def test_two_workers_share_one_study_and_no_trial_is_lost_or_duplicated(art, tmp_path):
    import optuna

    from ztb_core.evaluation.trials import collect_trials

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    env = {"ZTB_ARTIFACTS": str(art)}
    workers = [ztb(*tune_args(f"w{k}", storage, 2, "--set", f"seed={k}"), env=env) for k in range(2)]
    for w in workers:
        _finish(w)
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # 2 workers x 2 trials, none lost
    run_ids = [t.user_attrs["run_id"] for t in trials]
    assert len(set(run_ids)) == 4  # none run twice
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    runs = art / "runs"
    for rid in run_ids:
        assert status(runs / rid)["state"] in ("completed", "stopped"), rid
    # each worker is a run of kind tune with one `trial` row per trial it ran, and the study as the console sees it
    mine = []
    for k in range(2):
        wdir = runs / f"w{k}"
        assert json.loads((wdir / "run.json").read_text())["kind"] == "tune"
        assert status(wdir)["state"] == "completed"
        rows = [json.loads(x) for x in (wdir / "metrics.jsonl").read_text().splitlines()]
        trial_rows = [r for r in rows if r["split"] == "trial"]
        assert len(trial_rows) == 2 and all({"value", "state"} <= set(r) for r in trial_rows)
        mine += [r["step"] for r in trial_rows]
        doc = json.loads((wdir / "reports" / "trials.json").read_text())
        assert doc["study"] == "shared" and doc["direction"] == "maximize" and doc["storage"] == storage
        for t in doc["trials"]:
            assert set(t) == {"number", "state", "value", "params", "run_id", "started_at", "finished_at"}
    assert sorted(mine) == [0, 1, 2, 3]  # every trial reported by exactly one worker
    # the study's trials feed the DSR of any of its models: every evaluation of all 4 runs counts
    per_run = [collect_trials(runs / rid, "val", include_studies=False).n_trials for rid in run_ids]
    assert all(n >= 1 for n in per_run)
    for rid in run_ids:
        got = collect_trials(runs / rid, "val")
        assert got.n_trials == sum(per_run) and "study" in got.source


@pytest.mark.slow
def test_a_pruned_trial_is_stopped_through_its_kill_file(art, tmp_path):
    storage = f"journal://{tmp_path / 'study.log'}"
    sets = ["--set", "min_sharpe=1e9", "--set", "warmup_evaluations=0", "--set", "pruner=none"]
    long_trial = [s for s in TRIAL_SETS if not s.startswith("total_timesteps")] + ["total_timesteps=20000"]
    args = tune_args("pr", storage, 1, *sets)
    args[args.index(f"train_overrides={json.dumps(TRIAL_SETS)}")] = f"train_overrides={json.dumps(long_trial)}"
    _finish(ztb(*args, env={"ZTB_ARTIFACTS": str(art)}))
    doc = json.loads((art / "runs" / "pr" / "reports" / "trials.json").read_text())
    (t,) = doc["trials"]
    assert t["state"] == "pruned" and t["value"] is not None
    child = art / "runs" / t["run_id"]
    st = status(child)
    assert st["state"] == "stopped" and st["step"] < 20000  # it saved and stopped long before its end
    stop = json.loads((child / "ztb.stop").read_text())
    assert "pruned by tune" in stop["reason"]


def test_bad_knob_or_storage_fails_before_any_run_exists(art, capsys, monkeypatch):
    from ztb_core.cli import main

    monkeypatch.setenv("ZTB_ARTIFACTS", str(art))
    code = main(["tune", "--trials", "1", "--set", 'space={"ppo.learning_rat": {"low": 0.001, "high": 0.01}}'])
    assert code == 2 and "learning_rat" in capsys.readouterr().err
    code = main(["tune", "--trials", "1", "--storage", "redis://user:secret@host/0"])
    err = capsys.readouterr().err
    assert code == 2 and "secret" not in err and "user:***@host" in err
    code = main(["tune", "--trials", "1", "--set", f"train_overrides={json.dumps(['eval.every_steps=0'])}"])
    assert code == 2 and "eval.every_steps" in capsys.readouterr().err
    assert not (art / "runs").exists() or not any((art / "runs").iterdir())


def test_bundled_tune_config_is_the_model_defaults():
    from ztb_core.config import load_config
    from ztb_core.paths import configs_dir
    from ztb_core.rl.tune import TuneConfig, redact_url

    assert load_config(TuneConfig, configs_dir() / "tune.yaml") == TuneConfig()
    assert redact_url("postgresql://me:pa55@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert redact_url("sqlite:///a/b.db") == "sqlite:///a/b.db"


def test_trial_value_is_the_best_or_the_last_evaluation():
    from ztb_core.rl.tune import trial_value

    assert trial_value([0.5, 2.0, -1.0], "best") == 2.0
    assert trial_value([0.5, 2.0, -1.0], "last") == -1.0


def test_a_child_that_ignores_its_kill_file_is_terminated(art, monkeypatch, tmp_path):
    """A stop drops the child's kill-file; a child still running `stop_timeout_s` later gets SIGTERM."""
    import sys
    import time

    from ztb_core.rl.child import ChildTrainRun

    monkeypatch.setenv("ZTB_ARTIFACTS", str(art))
    child = ChildTrainRun("stubborn", None, [], tmp_path)
    # a stand-in that makes its run folder and then never looks at the kill-file
    child.argv = [sys.executable, "-c", f"import os, time; os.makedirs({str(child.run_dir)!r}); time.sleep(120)"]
    t0 = time.monotonic()
    rc, why = child.follow(lambda row: None, lambda: True, poll_s=0.05, stop_timeout_s=1.0)
    assert rc != 0 and why == "the parent run was asked to stop" and time.monotonic() - t0 < 30
    assert json.loads((child.run_dir / "ztb.stop").read_text())["reason"] == why


def _flat_policy_eval_row(art, monkeypatch, tmp_path) -> dict:
    """The evaluation row the real periodic evaluator writes for a policy that never trades (its
    positions forced flat), as it lands in metrics.jsonl."""
    from ztb_core.rl.agent import LoadedAgent
    from ztb_core.rl.evaluate import PeriodicEvaluator
    from ztb_core.rl.forecast import fit_forecast
    from ztb_core.rl.market import prepare_splits
    from ztb_core.rl.trainer import build_model, build_vec_env

    from .conftest import tiny_cfg

    cfg = tiny_cfg()
    splits = prepare_splits(cfg, ("train", "val"))
    forecast = fit_forecast(cfg.forecast, splits["train"])  # as the trainer does: the policy sees its column
    venv, vecnorm = build_vec_env(cfg, forecast.augment(splits["train"]))
    monkeypatch.setattr(LoadedAgent, "positions", lambda self, features, **kw: np.zeros(len(features)))
    (tmp_path / "run" / "reports").mkdir(parents=True)
    evaluator = PeriodicEvaluator(
        cfg, splits["val"], tmp_path / "run" / "reports", train=splits["train"], forecast=forecast
    )
    flat, score = evaluator(build_model(cfg, venv), vecnorm, 128)
    venv.close()
    return json.loads(json.dumps({"time": 0.0, "step": 128, "split": "val", **flat}))


class _FakeChild:
    """Stands in for the trial's train run: hands the runner the rows its metrics.jsonl would hold."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def follow(self, on_row, stop, poll_s, stop_timeout_s):
        for row in self.rows:
            on_row(row)
        return 0, None


@pytest.mark.parametrize("old_row", [False, True], ids=["row-with-sharpe-0", "row-without-sharpe"])
def test_a_trial_whose_policy_never_trades_is_complete_with_sharpe_0(art, monkeypatch, tmp_path, old_row):
    """A flat policy's Sharpe is undefined (constant returns). It earned nothing: the trial is
    COMPLETE with value 0, so TPE learns from it, not FAIL "wrote no evaluation rows"."""
    import optuna

    from ztb_core.rl.tune import TrialRunner, TuneConfig

    written = _flat_policy_eval_row(art, monkeypatch, tmp_path)
    row = dict(written)
    if old_row:  # what the evaluator wrote before flat policies were scored 0: no sharpe at all
        row.pop("sharpe", None)
    rows = [row, {**row, "step": 256}, {"time": 0.0, "step": 256, "split": "train", "loss": 0.1}]
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    cfg = TuneConfig.model_validate({"space": SPACE})
    runner = TrialRunner(cfg, tiny_cfg_with_eval(), tmp_path, stop=lambda: False)
    monkeypatch.setattr(runner, "child", lambda run_id, params: _FakeChild(rows))
    out = runner.run(trial, {}, "flat-t0000")
    assert (out.state, out.value) == ("complete", 0.0), out.message
    study.tell(trial, out.value)
    assert study.trials[0].state.name == "COMPLETE" and study.best_value == 0.0
    # the row itself says why its Sharpe is 0
    assert written["never_traded"] == 1.0 and written["sharpe"] == 0.0 and written["turnover"] == 0.0


def tiny_cfg_with_eval():
    from .conftest import tiny_cfg

    return tiny_cfg("eval.every_steps=128")
