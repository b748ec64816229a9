"""The full report: schema-valid, complete files, clear errors, and the cheap training variant."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest

from ztb_core.config import ConfigError, load_config
from ztb_core.evaluation import (
    EvalConfig,
    EvaluationError,
    evaluate_positions,
    load_schema,
    quick_evaluation,
    sma_crossover,
    validate_report,
    write_report,
)
from ztb_core.paths import configs_dir
from ztb_core.trading_costs import CostConfig

from .conftest import make_bars


@pytest.fixture(scope="module")
def report():
    open_, close, index = make_bars(4000, seed=0)
    cfg = EvalConfig.model_validate(
        {
            "bootstrap": {"n_resamples": 200},
            "monte_carlo": {"n_paths": 300, "horizon_days": 1},
            "baselines": {"random_seeds": 10, "sma_fast": 10, "sma_slow": 40},
            "robustness": {"episodes": 3},
            "report": {"curve_points": 200, "histogram_bins": 20},
        }
    )
    pos = sma_crossover(close, 8, 50)
    stages = []
    rep = evaluate_positions(
        pos,
        open_,
        close,
        index,
        CostConfig(),
        "M5",
        "fx",
        cfg,
        n_trials=5,
        meta={"model": "sma-8-50", "symbol": "SYN", "split": "test"},
        progress=lambda s, d, t: stages.append((s, d, t)),
    )
    rep["_stages"] = stages
    return rep


def test_report_validates_against_the_schema_and_has_every_section(report):
    rep = {k: v for k, v in report.items() if k != "_stages"}
    data = validate_report(rep)
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    assert data["meta"]["periods_per_year"] == 260 * 288
    assert data["sharpe_inference"]["n_trials"] == 5
    assert data["bootstrap"]["n_resamples"] == 200
    assert set(data["baselines"]) == {"buy_and_hold", "sma_crossover", "flat", "random"}
    assert data["baselines"]["random"]["n_seeds"] == 10
    assert len(data["robustness"]["start_offsets"]["episodes"]) == 3
    assert data["robustness"]["monthly"]["periods"]
    assert len(data["curves"]["equity"]) <= 200
    # the downsampled curve keeps the true worst drawdown
    assert -min(data["curves"]["drawdown"]) == pytest.approx(data["metrics"]["max_drawdown"])
    # the flat baseline: agent minus flat is the agent itself
    flat_diff = data["baselines"]["flat"]["difference"]["total_return"]["estimate"]
    assert flat_diff == pytest.approx(data["metrics"]["total_return"])
    assert report["_stages"][-1][1] == report["_stages"][-1][2]  # progress reached the end


def test_write_report_writes_json_markdown_and_four_pictures(report, tmp_path):
    rep = {k: v for k, v in report.items() if k != "_stages"}
    paths = write_report(rep, tmp_path / "reports", "abc123")
    assert set(paths) == {"json", "markdown", "equity", "returns", "bootstrap_sharpe", "cost_sensitivity"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["eval_id"] == "abc123"
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    md = paths["markdown"].read_text()
    for heading in (
        "## Performance",
        "## Is the Sharpe real?",
        "## Monte Carlo risk",
        "## Baselines",
        "## Cost sensitivity",
        "## Robustness",
        "eval_abc123_equity.png",
    ):
        assert heading in md
    assert not list((tmp_path / "reports").glob(".*"))  # no temp files left behind


def test_an_invalid_report_is_refused_and_nothing_is_written(report, tmp_path):
    rep = copy.deepcopy({k: v for k, v in report.items() if k != "_stages"})
    rep["metrics"]["sharpe"] = float("nan")
    with pytest.raises(EvaluationError, match="report.metrics.sharpe is nan"):
        write_report(rep, tmp_path / "r1", "x")
    rep = copy.deepcopy({k: v for k, v in report.items() if k != "_stages"})
    del rep["bootstrap"]["intervals"]["max_drawdown"]
    with pytest.raises(EvaluationError, match="bootstrap.intervals: 'max_drawdown' is a required property"):
        write_report(rep, tmp_path / "r2", "x")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    with pytest.raises(EvaluationError, match="eval_id"):
        write_report({k: v for k, v in report.items() if k != "_stages"}, tmp_path / "r3", "../escape")


def test_reports_from_other_settings_validate_too(tmp_path):
    open_, close, index = make_bars(1500, seed=5, freq="1h")
    cfg = EvalConfig.model_validate(
        {
            "bootstrap": {"n_resamples": 50, "method": "non_overlapping", "block_length": 5},
            "monte_carlo": {"n_paths": 200, "horizon_days": 2},
            "baselines": {"random_seeds": 3, "sma_fast": 5, "sma_slow": 20},
            "sharpe": {"trial_sharpe_variance": 0.5, "n_trials": 50},
            "report": {"plots": False},
        }
    )
    pos = -sma_crossover(close, 3, 12)
    episodes = [(0, pos), (100, pos[100:]), (300, np.zeros(len(pos) - 300) + 1.0)]
    rep = evaluate_positions(
        pos, open_, close, None, CostConfig(fee_bps=3), "H1", "crypto", cfg, episode_positions=episodes
    )
    validate_report(rep)
    assert rep["meta"]["start"] is None and rep["robustness"]["monthly"] is None
    assert rep["robustness"]["start_offset_source"] == "rerun"
    assert rep["sharpe_inference"]["trial_sharpe_variance_source"] == "config"
    assert rep["sharpe_inference"]["trial_sharpe_variance_per_period"] == pytest.approx(0.5 / (365 * 24))
    paths = write_report(rep, tmp_path, "noplots")
    assert set(paths) == {"json", "markdown"}


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda p, o, c: (np.zeros_like(p), o, c), "agent returns: all .* returns equal 0.0"),
        (lambda p, o, c: (p, o, np.where(np.arange(c.size) == 7, np.nan, c)), "close: 1 value.*row 7"),
        (lambda p, o, c: (p[:0], o[:0], c[:0]), "is empty"),
        (lambda p, o, c: (p[:-1], o, c), "positions has"),
    ],
)
def test_bad_inputs_give_clear_errors_not_nan_reports(mutate, match):
    open_, close, index = make_bars(500, seed=1)
    pos = sma_crossover(close, 5, 20)
    p, o, c = mutate(pos, open_, close)
    with pytest.raises(EvaluationError, match=match):
        evaluate_positions(p, o, c, index[: len(c)], CostConfig(), "M5", "fx", EvalConfig())


def test_quick_evaluation_is_cheap_and_tolerates_a_flat_policy():
    open_, close, _ = make_bars(2000, seed=2)
    out = quick_evaluation(sma_crossover(close, 5, 20), open_, close, CostConfig(), "M5", "fx")
    for key in (
        "sharpe",
        "max_drawdown",
        "total_return",
        "buy_and_hold_sharpe",
        "sma_crossover_sharpe",
        "sma_crossover_total_return",
        "turnover",
        "exposure",
    ):
        assert isinstance(out[key], float), key
    flat_out = quick_evaluation(np.zeros(2000), open_, close, CostConfig(), "M5", "fx")
    assert flat_out["sharpe"] is None and flat_out["total_return"] == 0.0
    short = quick_evaluation(np.ones(60), open_[:60], close[:60], CostConfig(), "M5", "fx")  # shorter than the SMA
    assert short["buy_and_hold_total_return"] == pytest.approx(short["total_return"])


def test_bundled_config_matches_the_model_defaults():
    cfg = load_config(EvalConfig, configs_dir() / "eval.yaml")
    assert cfg == EvalConfig()
    with pytest.raises(ConfigError, match="bootstrap.n_resampels"):
        load_config(EvalConfig, None, ["bootstrap.n_resampels=5"])
    with pytest.raises(ConfigError, match="sma_fast"):
        load_config(EvalConfig, None, ["baselines.sma_fast=200"])


def test_too_few_bars_for_a_full_evaluation_is_a_clear_error():
    open_, close, index = make_bars(20, seed=1)
    with pytest.raises(EvaluationError, match="at least 30 bars, got 20"):
        evaluate_positions(np.where(np.arange(20) % 2, 1.0, -1.0), open_, close, index, CostConfig(), "M5", "fx")


def test_random_baseline_changes_position_as_often_as_the_agent(report):
    from ztb_core.evaluation import random_policy

    rnd = report["baselines"]["random"]
    agent_rate = report["metrics"]["position_changes"] / report["metrics"]["n_bars"]
    paths = random_policy(200_000, seeds=[0], switch_prob=rnd["switch_prob"], levels=rnd["levels"])
    rate = np.count_nonzero(np.diff(paths[0])) / (paths.shape[1] - 1)
    assert rate == pytest.approx(agent_rate, rel=0.15)
