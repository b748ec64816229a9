"""`eval.max_bars`: periodic evaluation reads the whole validation split by default (null), so
the best checkpoint is chosen on the bars whose standard error the reports quote."""

from __future__ import annotations

from ztb_core.config import load_config
from ztb_core.rl.config import TrainConfig
from ztb_core.rl.evaluate import PeriodicEvaluator
from ztb_core.rl.market import prepare_splits

from .conftest import tiny_cfg


def test_periodic_evaluation_reads_the_whole_split_unless_max_bars_caps_it(tmp_path):
    assert load_config(TrainConfig).eval.max_bars is None  # the default (configs/train.yaml)
    cfg = tiny_cfg("eval.max_bars=null")
    assert cfg.eval.max_bars is None
    splits = prepare_splits(cfg)
    val = splits["val"]
    reports = tmp_path / "run" / "reports"
    whole = PeriodicEvaluator(cfg, val, reports, train=splits["train"], val=val)
    assert len(whole.market) == len(val) and len(whole.features) == len(val)
    # positive control: a cap takes the first bars only
    capped = PeriodicEvaluator(tiny_cfg("eval.max_bars=500"), val, reports, train=splits["train"], val=val)
    assert len(capped.market) == 500 and capped.market.index[0] == val.index[0]
    assert tiny_cfg().eval.max_bars == 1000  # the tiny config's own cap (conftest), read as given


def test_each_evaluation_row_says_beats_matches_or_behind_from_the_paired_interval(tmp_path):
    """The row (and eval-latest.json, which the end-of-training table reads) carries the paired
    bootstrap interval of agent minus the strongest baseline and the word it supports."""
    import json

    from ztb_core.evaluation.comparison import comparison_word
    from ztb_core.rl.forecast import fit_forecast
    from ztb_core.rl.trainer import build_model, build_vec_env

    cfg = tiny_cfg()
    splits = prepare_splits(cfg, ("train", "val"))
    forecast = fit_forecast(cfg.forecast, splits["train"])  # as the trainer does: the policy sees its column
    venv, vecnorm = build_vec_env(cfg, forecast.augment(splits["train"]))
    reports = tmp_path / "run" / "reports"
    reports.mkdir(parents=True)
    evaluator = PeriodicEvaluator(cfg, splits["val"], reports, train=splits["train"], forecast=forecast)
    flat, _ = evaluator(build_model(cfg, venv), vecnorm, 1)
    venv.close()
    low, high = flat["vs_strongest_low"], flat["vs_strongest_high"]
    assert low <= flat["vs_strongest_estimate"] <= high
    assert flat["vs_strongest"] == comparison_word(low, high)
    res = json.loads((reports / "eval-latest.json").read_text())["result"]
    assert res["vs_strongest"]["baseline"] == res["strongest_baseline"]
    assert f"[{low:+.2f}, {high:+.2f}]" in res["vs_strongest"]["sentence"]
