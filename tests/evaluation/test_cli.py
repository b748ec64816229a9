"""`ztb eval` end to end on a real (tiny) trained agent: run directory, schema-valid report,
pictures, metrics row; a bad checkpoint gives a clear error and no run directory."""

from __future__ import annotations

import json

import pytest

from ztb_core.config import load_config
from ztb_core.evaluation import load_schema

from ..conftest import FAST_EVAL as SHARED_FAST_EVAL
from ..conftest import TINY_AGENT, SharedRuns, copy_run

TINY_TRAIN = list(TINY_AGENT)
FAST_EVAL = list(SHARED_FAST_EVAL)


@pytest.fixture(scope="module")
def trained_run(tiny_agent, tmp_path_factory):
    """The shared tiny agent (trained once per test run), copied: the eval runs go beside it."""
    return copy_run(tiny_agent, tmp_path_factory.mktemp("evalcli") / "artifacts")


def _set(pairs):
    return [a for p in pairs for a in ("--set", p)]


def test_ztb_eval_writes_a_complete_report_into_an_eval_run(trained_run, monkeypatch, capsys):
    from ztb_core.cli import main
    from ztb_core.paths import runs_dir

    monkeypatch.setenv("ZTB_ARTIFACTS", str(trained_run.parent.parent))
    # by run id, as `ztb train` suggests at the end of a run (paths are covered in tests/rl)
    code = main(
        [
            "eval",
            "--model",
            trained_run.name,
            "--split",
            "test",
            "--episodes",
            "2",
            "--n-trials",
            "4",
            "--seed",
            "3",
            "--run-id",
            "ev1",
            *_set(FAST_EVAL),
        ]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    run = runs_dir() / "ev1"
    info = json.loads((run / "run.json").read_text())
    assert info["kind"] == "eval"
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    report = json.loads((run / "reports" / "eval_ev1.json").read_text())
    import jsonschema

    jsonschema.Draft202012Validator(load_schema()).validate(report)
    assert report["meta"]["split"] == "test" and report["meta"]["run_id"] == "ev1"
    assert report["sharpe_inference"]["n_trials"] == 4
    assert report["robustness"]["start_offset_source"] == "rerun"
    assert len(report["robustness"]["start_offsets"]["episodes"]) == 2
    # the costs are the ones the agent trained with
    assert report["meta"]["costs"]["fee_bps"] == 1.0 and report["meta"]["costs"]["slippage_bps"] == 0.5
    # the equity chart's ridge curve (ridge is on by default): one point per agent point, ending at
    # the ridge baseline's own total return, so on the same bars and costs as its metrics
    curves = report["curves"]
    assert len(curves["ridge_equity"]) == len(curves["equity"]) == len(curves["bar"])
    ridge_total = report["baselines"]["ridge"]["metrics"]["total_return"]
    assert curves["ridge_equity"][-1] == pytest.approx(1.0 + ridge_total)
    for suffix in (".md", "_equity.png", "_returns.png", "_bootstrap_sharpe.png", "_cost_sensitivity.png"):
        assert (run / "reports" / f"eval_ev1{suffix}").exists(), suffix
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["split"] == "test" and "dsr" in rows[-1]
    assert "ztb eval" in out and "buy and hold" in out  # the summary table
    # every policy at constant and volatility-targeted size, with the paired interval
    vs = report["vol_sizing"]
    assert "skipped" not in vs, vs
    assert set(vs["policies"]) == {"agent", "buy_and_hold", "ridge"}
    bh = vs["policies"]["buy_and_hold"]
    d = bh["difference"]["sharpe"]
    assert d["low"] <= d["estimate"] <= d["high"]
    assert bh["vol_target"]["turnover"] > bh["constant"]["turnover"]  # the scale trades, and pays
    assert vs["history_bars"] > 0 and vs["n_bars_scored"] == report["meta"]["n_bars"]  # no warm-up on test
    assert "constant vs volatility-targeted size" in out
    md = (run / "reports" / "eval_ev1.md").read_text()
    assert "## Constant vs volatility-targeted size" in md
    # the forecaster `ztb live` sizes with: the checkpoint's, named in the report
    assert vs["source"].startswith("the checkpoint's forecaster") and "Forecaster: the checkpoint's" in md


def test_ztb_eval_sizes_with_the_checkpoints_forecaster_unless_told_to_fit(trained_run, monkeypatch, capsys):
    """The report's volatility sizing is the one `ztb live` would apply: the checkpoint's forecaster,
    whatever eval.yaml's horizon/cap/band say; `vol_sizing.source=fit` fits one with eval's settings."""
    from ztb_core.cli import main
    from ztb_core.paths import runs_dir
    from ztb_core.rl.agent import load_agent

    monkeypatch.setenv("ZTB_ARTIFACTS", str(trained_run.parent.parent))
    stored = load_agent(trained_run).vol_sizing
    assert stored is not None
    reports = {}
    for run_id, source in (("vs-ckpt", "checkpoint"), ("vs-fit", "fit")):
        args = ["eval", "--model", trained_run.name, "--split", "test", "--episodes", "1", "--run-id", run_id]
        sets = [*FAST_EVAL, "vol_sizing.cap=3.5", "vol_sizing.band=0.5", f"vol_sizing.source={source}"]
        assert main([*args, *_set(sets)]) == 0, capsys.readouterr().err
        reports[source] = json.loads((runs_dir() / run_id / "reports" / f"eval_{run_id}.json").read_text())[
            "vol_sizing"
        ]
    ckpt, fit = reports["checkpoint"], reports["fit"]
    assert (ckpt["cap"], ckpt["band"]) == (stored.sizing.cap, stored.band) != (3.5, 0.5)
    assert ckpt["forecaster"]["target_rv"] == pytest.approx(stored.sizing.target_rv)
    assert (fit["cap"], fit["band"]) == (3.5, 0.5) and "vol_sizing.source: fit" in fit["source"]


def test_ztb_eval_with_a_bad_checkpoint_fails_clearly_without_a_run(tmp_path, capsys):
    from ztb_core.cli import main
    from ztb_core.paths import runs_dir

    code = main(["eval", "--model", str(tmp_path / "missing.ckpt")])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing.ckpt" in err and "no such checkpoint" in err
    assert not runs_dir().exists() or not any(runs_dir().iterdir())


def test_ztb_eval_rejects_a_bad_override(tmp_path, capsys):
    from ztb_core.cli import main

    code = main(["eval", "--model", str(tmp_path), "--set", "bootstrap.method=jackknife"])
    assert code == 2
    assert "bootstrap.method" in capsys.readouterr().err


# 12,000 bars: a train split shorter than a week, so the report shows why volatility sizing is skipped
SELECTION_RUN = (*TINY_TRAIN, "data.synthetic.n_bars=12000", "eval.every_steps=256", "total_timesteps=768")


def _train_selection_run(artifacts):
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.trainer import run_training

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZTB_ARTIFACTS", str(artifacts))
        mp.setenv("ZTB_KILL", str(artifacts.parent / "global.stop"))
        cfg = load_config(TrainConfig, None, list(SELECTION_RUN))
        return run_training(cfg, run_id="sel", progress=False).run_dir


@pytest.fixture(scope="module")
def evaluated_run(shared_runs: SharedRuns, tmp_path_factory):
    """A tiny run with periodic evaluation at 256, 512 and 768 steps (three val trials), trained
    once per test run and copied here: the evaluations below add trials to its registry."""
    run = shared_runs.get("selection-run", SELECTION_RUN, _train_selection_run)
    return copy_run(run, tmp_path_factory.mktemp("evalsel") / "artifacts")


def _eval(run_dir, monkeypatch, capsys, run_id: str, *args: str) -> tuple[dict, str]:
    from ztb_core.cli import main
    from ztb_core.paths import runs_dir

    monkeypatch.setenv("ZTB_ARTIFACTS", str(run_dir.parent.parent))
    code = main(["eval", "--model", run_dir.name, "--run-id", run_id, *args, *_set([*FAST_EVAL, "report.plots=false"])])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    return json.loads((runs_dir() / run_id / "reports" / f"eval_{run_id}.json").read_text()), out.out


def test_default_eval_uses_the_best_checkpoint_by_validation_and_says_so(evaluated_run, monkeypatch, capsys):
    from ztb_core.manifest import Manifest

    best = [e for e in Manifest(evaluated_run / "checkpoints").entries() if e.get("best")]
    assert len(best) == 1
    report, out = _eval(evaluated_run, monkeypatch, capsys, "best1", "--split", "val")
    meta = report["meta"]
    assert meta["checkpoint_step"] == best[0]["step"] and "best by periodic evaluation" in meta["checkpoint_choice"]
    assert f"checkpoint: step {best[0]['step']}" in out
    # the three periodic evaluations on val selected it: the DSR deflates for them (this one is one of them)
    inf = report["sharpe_inference"]
    assert inf["n_trials"] == 3 and inf["n_trials_source"].startswith("registry: 3 evaluation(s) on val")
    assert inf["trial_sharpe_variance_source"] == "trial_sharpes"
    assert "ridge" in report["baselines"] and report["baselines"]["ridge"]["params"]["fitted_on"] == "train"
    assert report["verdict"]["strongest_baseline"] in {"buy_and_hold", "sma_crossover", "ridge", "random"}
    # a train split shorter than a week: the sizing section says why it is missing, the report is written
    assert "more than a week" in report["vol_sizing"]["skipped"]
    assert "volatility-targeted sizing not computed" in out


def test_every_look_at_the_test_split_is_a_trial_and_n_trials_overrides_stamped(evaluated_run, monkeypatch, capsys):
    first, _ = _eval(evaluated_run, monkeypatch, capsys, "t1", "--split", "test", "--checkpoint", "256")
    assert first["sharpe_inference"]["n_trials"] == 1
    again, _ = _eval(evaluated_run, monkeypatch, capsys, "t2", "--split", "test", "--checkpoint", "512")
    assert again["sharpe_inference"]["n_trials"] == 2  # a second checkpoint tried on test
    same, _ = _eval(
        evaluated_run,
        monkeypatch,
        capsys,
        "t3",
        "--split",
        "test",
        "--checkpoint",
        "512",
        "--n-trials",
        "7",
        "--set",
        "baselines.ridge=false",
    )
    assert "ridge" not in same["baselines"]  # baselines.ridge: false skips it
    inf = same["sharpe_inference"]
    assert (
        inf["n_trials"] == 7
        and inf["n_trials_source"] == "--n-trials 7 (overrides the trial registry; the registry has 2)"
    )


def test_a_holdout_period_is_evaluated_whole(evaluated_run, monkeypatch, capsys):
    report, _ = _eval(
        evaluated_run,
        monkeypatch,
        capsys,
        "hold",
        "--start",
        "2020-01-08",
        "--end",
        "2020-01-16",
        "--checkpoint",
        "latest",
    )
    meta = report["meta"]
    assert meta["split"] == "all" and meta["trial_split"].startswith("all@SYNTH[2020-01-08")
    assert meta["start"] >= "2020-01-08" and meta["end"] < "2020-01-16"
    assert "newest valid checkpoint" in meta["checkpoint_choice"]
