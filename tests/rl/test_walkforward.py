"""`ztb walkforward`: folds over a small synthetic market, each a real child train run scored only
on the window after its training data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ztb_core.config import load_config
from ztb_core.errors import ConfigError, DataError
from ztb_core.rl.walkforward import WalkForwardConfig, fold_windows

from .conftest import TINY, status

FOLD_SETS = [s for s in TINY if not s.startswith(("eval.every_steps", "checkpoint.every_steps", "data.synthetic"))] + [
    "data.synthetic.n_bars=16000",
    "eval.every_steps=128",
    "checkpoint.every_steps=128",
    "total_timesteps=256",
]


def wf(**kw) -> WalkForwardConfig:
    return WalkForwardConfig.model_validate(kw)


@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
def test_fold_windows_never_train_on_what_they_test(scheme):
    cfg = wf(folds=3, scheme=scheme, initial_train_fraction=0.4)
    windows = fold_windows(1000, cfg)
    assert [t.start for _, t in windows] == [400, 600, 800] and windows[-1][1].stop == 1000
    for k, (train, test) in enumerate(windows):
        assert train.stop == test.start  # train ends where its test window starts: nothing of it was seen
        assert train.start == (0 if scheme == "expanding" else 200 * k)
        assert train.stop - train.start == (400 + 200 * k if scheme == "expanding" else 400)
    with pytest.raises(DataError, match="use more data, fewer folds"):
        fold_windows(10, wf(folds=8))


def test_bundled_walkforward_config_is_the_model_defaults_and_best_needs_evaluation(art):
    from ztb_core.paths import configs_dir
    from ztb_core.rl.walkforward import load_base

    assert load_config(WalkForwardConfig, configs_dir() / "walkforward.yaml") == WalkForwardConfig()
    with pytest.raises(ConfigError, match="eval.every_steps"):
        load_base(wf(train_overrides=["eval.every_steps=0"]))
    load_base(wf(train_overrides=["eval.every_steps=0"], select="latest"))  # positive control


def test_too_little_data_fails_before_a_run_exists(art, capsys, monkeypatch):
    from ztb_core.cli import main

    monkeypatch.setenv("ZTB_ARTIFACTS", str(art))
    code = main(["walkforward", "--folds", "500", "--set", f"train_overrides={json.dumps(FOLD_SETS)}"])
    assert code == 2 and "fewer folds" in capsys.readouterr().err
    assert not (art / "runs").exists() or not any((art / "runs").iterdir())


@pytest.mark.slow
def test_walkforward_trains_each_fold_and_reports_out_of_sample_only(art, capsys, monkeypatch):
    from ztb_core.cli import main
    from ztb_core.evaluation.trials import collect_trials

    monkeypatch.setenv("ZTB_ARTIFACTS", str(art))
    code = main(
        [
            "walkforward",
            "--folds",
            "2",
            "--run-id",
            "wf",
            "--set",
            f"train_overrides={json.dumps(FOLD_SETS)}",
            "--set",
            "poll_s=0.2",
            "--set",
            "warm_start=true",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    runs = art / "runs"
    parent = runs / "wf"
    assert json.loads((parent / "run.json").read_text())["kind"] == "walkforward"
    assert status(parent)["state"] == "completed"
    doc = json.loads((parent / "reports" / "walkforward.json").read_text())
    assert doc["complete"] and [f["fold"] for f in doc["folds"]] == [0, 1]
    for f in doc["folds"]:
        child = runs / f["run_id"]
        assert status(child)["state"] == "completed"
        # the child's data ends strictly before its test window: it never saw a bar it is scored on
        data = yaml.safe_load((child / "config.yaml").read_text())["data"]
        assert pd.Timestamp(data["end"]) == pd.Timestamp(f["test_start"])
        assert f["train_end"] < f["test_start"]
        assert f["strongest_baseline"] in {"buy_and_hold", "sma_crossover", "ridge", "random"}
        assert f["ridge"]["fitted_on"] == "train"
    assert doc["folds"][0]["test_end"] < doc["folds"][1]["test_start"]
    # warm_start: fold 1 starts from fold 0's scored checkpoint, fold 0 from scratch
    f0, f1 = (runs / f["run_id"] for f in doc["folds"])
    assert doc["folds"][0]["warm_started_from"] is None
    assert yaml.safe_load((f1 / "config.yaml").read_text())["warm_start"] == doc["folds"][1]["warm_started_from"]
    assert str(f0) in doc["folds"][1]["warm_started_from"]
    assert [e for e in map(json.loads, (f1 / "events.jsonl").read_text().splitlines()) if e["event"] == "warm_started"]
    a = doc["aggregate"]
    assert a["dsr_trials"] == 2 and {"sharpe", "dsr", "psr", "ridge_sharpe", "strongest_baseline"} <= set(a)
    # the concatenated record is the folds glued together: its return compounds theirs
    fold_returns = [f["total_return"] for f in doc["folds"]]
    assert 1 + a["total_return"] == pytest.approx(np.prod([1 + r for r in fold_returns]), rel=1e-9)
    assert doc["curves"]["equity"][-1] == pytest.approx(1 + a["total_return"], rel=1e-9)
    for name in ("walkforward.md", "walkforward.png"):
        assert (parent / "reports" / name).stat().st_size > 0
    rows = [json.loads(x) for x in (parent / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "fold"] == [0, 1]
    assert collect_trials(parent, "walkforward_oos").n_trials == 2


def test_a_fold_the_agent_sits_out_scores_0_not_nan(art):
    """A fold whose agent never takes a position earned nothing: Sharpe 0 (and its excess is minus the
    strongest baseline's), in the fold row and in the aggregate, never NaN or n/a."""
    from ztb_core.evaluation.calendar import periods_per_year
    from ztb_core.rl.walkforward import aggregate, all_valid_rows, score_fold

    from .conftest import tiny_cfg

    base = tiny_cfg()
    rows = all_valid_rows(base)

    class FlatAgent:
        def positions(self, market):
            return np.zeros(len(market))

    scored = score_fold(base, wf(), rows, slice(0, 6000), slice(6000, 9000), FlatAgent())
    q = scored["q"]
    assert q["sharpe"] == 0.0 and q["sharpe_per_period"] == 0.0
    assert q["excess_sharpe"] == pytest.approx(-q["strongest_baseline_sharpe"])
    agg = aggregate([scored, scored], periods_per_year(rows.timeframe, rows.market))
    assert agg["sharpe"] == 0.0 and agg["excess_sharpe"] == pytest.approx(-agg["strongest_baseline_sharpe"])
    assert agg["positive_folds"] == 0 and agg["folds_beating_strongest"] == 0
