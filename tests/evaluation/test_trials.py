"""The trial registry, and training's periodic evaluation writing into it (on a real tiny run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ztb_core.errors import ConfigError
from ztb_core.evaluation.trials import TrialRegistry, collect_trials


def _rec(reg: TrialRegistry, run_id: str, step: int, sharpe: float = 1.0, split: str = "val") -> None:
    reg.record(
        run_id=run_id,
        split=split,
        step=step,
        sharpe=sharpe,
        sharpe_per_period=sharpe / 600,
        n_obs=1000,
        source="periodic_eval",
    )


def test_a_trial_is_one_checkpoint_on_one_split_and_a_torn_line_is_skipped(tmp_path):
    run = tmp_path / "run-a"
    run.mkdir()
    reg = TrialRegistry(run)
    _rec(reg, "run-a", 100, 1.0)
    _rec(reg, "run-a", 200, 2.0)
    _rec(reg, "run-a", 200, 2.0)  # the same checkpoint evaluated again (a resume): one trial
    _rec(reg, "run-a", 200, 0.5, split="test")  # other data: its own trial set
    with open(reg.path, "a") as fh:
        fh.write('{"run_id": "run-a", "split": "val", "st')  # a writer killed mid-line
    val = collect_trials(run, "val")
    assert val.n_trials == 2 and val.sharpes_per_period == pytest.approx([1 / 600, 2 / 600])
    assert "2 evaluation(s) on val in run run-a" in val.source
    assert collect_trials(run, "test").n_trials == 1
    assert collect_trials(run, "all").n_trials == 0


def test_a_run_in_a_study_is_deflated_for_every_sibling(tmp_path):
    study, a, b = tmp_path / "study", tmp_path / "t0", tmp_path / "t1"
    for d in (study, a, b):
        d.mkdir()
    (study / "run.json").write_text(json.dumps({"kind": "tune"}))
    _rec(TrialRegistry(a), "t0", 100)
    _rec(TrialRegistry(b), "t1", 100, 3.0)
    _rec(TrialRegistry(b), "t1", 200, -1.0)
    # the study copies each finished trial run's records into its own registry
    TrialRegistry(study).append(TrialRegistry(a).records() + TrialRegistry(b).records())
    got = collect_trials(a, "val")
    assert got.n_trials == 3 and "study study (2 run(s) with trials on val)" in got.source
    assert collect_trials(a, "val", include_studies=False).n_trials == 1  # positive control
    (study / "run.json").write_text(json.dumps({"kind": "walkforward"}))  # folds are not chosen among each other
    assert collect_trials(a, "val").n_trials == 1


_WRITER = """
import sys
from ztb_core.evaluation.trials import TrialRegistry
reg = TrialRegistry(sys.argv[1])
for i in range(300):
    reg.record(run_id="w" + sys.argv[2], split="val", step=i, sharpe=1.0, sharpe_per_period=0.001,
               n_obs=10, source="periodic_eval", pad="x" * 2000)
"""


def test_two_processes_appending_never_interleave_lines(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(k)]) for k in range(2)]
    assert [p.wait(60) for p in procs] == [0, 0]
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert len(lines) == 600 and all(json.loads(x)["split"] == "val" for x in lines)


def test_periodic_evaluation_records_trials_psr_dsr_and_the_strongest_baseline(tmp_path, monkeypatch):
    from tests.rl.conftest import tiny_cfg
    from ztb_core.rl.trainer import run_training

    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    out = run_training(tiny_cfg("eval.every_steps=256", total=768), run_id="pe", progress=False)
    rows = [json.loads(x) for x in (out.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val] == [256, 512, 768]
    for key in ("ridge_sharpe", "ridge_total_return", "ridge_max_drawdown", "random_sharpe_mean", "p_value"):
        assert key in val[-1], key
    assert val[-1]["strongest_baseline"] in {"buy_and_hold", "sma_crossover", "ridge", "random"}
    assert [r["dsr_trials"] for r in val] == [1, 2, 3]  # every evaluation so far is a trial
    trials = collect_trials(out.run_dir, "val")
    assert trials.n_trials == 3 and [t["step"] for t in trials.records] == [256, 512, 768]
    latest = json.loads((out.run_dir / "reports" / "eval-latest.json").read_text())
    assert latest["ridge"]["fitted_on"] == "train" and latest["test_split_used"] is False


def test_evaluating_on_test_during_training_needs_consent_and_is_stamped(tmp_path, monkeypatch):
    from tests.rl.conftest import tiny_cfg
    from ztb_core.rl.trainer import run_training

    with pytest.raises(ConfigError, match="allow_test_split"):
        tiny_cfg("eval.split=test")
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    cfg = tiny_cfg("eval.split=test", "eval.allow_test_split=true", "eval.every_steps=256", total=256)
    out = run_training(cfg, run_id="peek", progress=False)
    rows = [json.loads(x) for x in (out.run_dir / "metrics.jsonl").read_text().splitlines()]
    test_rows = [r for r in rows if r["split"] == "test"]
    assert test_rows and all(r["test_split_used"] == 1.0 for r in test_rows)
