"""The supervised forecast column (`forecast.kind: ridge`, ztb_core/rl/forecast.py): fitted on
the train split only, predictive where there is something to predict, stored in checkpoints so
that evaluation and live trading compute the column training saw, and runs recorded before it
existed (or before the policy saw it alone by default) still resume and load as they trained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from ztb_core.config import load_config
from ztb_core.data.synthetic import STRONG_SIGNAL, preset_overrides
from ztb_core.errors import CheckpointError, ConfigError, DataError
from ztb_core.evaluation.baselines import holding_returns
from ztb_core.manifest import Manifest, sha256_file
from ztb_core.rl.agent import load_agent, resolve_checkpoint
from ztb_core.rl.checkpoints import read_checkpoint, serialise
from ztb_core.rl.config import ForecastConfig, TrainConfig, load_recorded_config
from ztb_core.rl.forecast import COLUMN, Forecast, fit_forecast, forward_log_variance, forward_sum
from ztb_core.rl.market import prepare_splits
from ztb_core.rl.trainer import check_compatible, run_training

from .conftest import tiny_cfg

RIDGE = ForecastConfig(kind="ridge")


def _rewrite_state(ckpt, mutate) -> None:
    """Edit a checkpoint's state as an older version of ztb would have written it (manifest kept valid)."""
    state = read_checkpoint(ckpt)
    mutate(state)
    ckpt.write_bytes(serialise(state, 1)[0])
    Manifest(ckpt.parent).update(ckpt.name, size=ckpt.stat().st_size, sha256=sha256_file(ckpt))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def test_the_column_forecasts_the_validation_returns_only_where_there_is_a_signal():
    """Fitted on train, the column correlates with the *validation* split's returns on a market
    with a planted signal; on the same market without one (the positive control that the first
    figure is not an artefact of the fit) it does not."""
    strong = prepare_splits(tiny_cfg("data.synthetic.n_bars=30000", *preset_overrides(STRONG_SIGNAL)))
    none = prepare_splits(tiny_cfg("data.synthetic.n_bars=30000", "data.synthetic.signal_strength=0"))
    fitted = {}
    for name, s in (("strong", strong), ("none", none)):
        f = fit_forecast(RIDGE, s["train"])
        assert f is not None and f.train_rows == len(s["train"])
        z = f.column(s["val"].features)
        assert abs(float(f.raw(s["train"].features).std()) - 1.0) < 1e-3  # in units of its train spread (unclipped)
        fitted[name] = _corr(z, holding_returns(s["val"].open, s["val"].close))
    assert fitted["strong"] > 0.1, fitted
    assert abs(fitted["none"]) < 0.05, fitted


def test_the_fit_reads_the_train_split_and_nothing_after_it():
    s = prepare_splits(tiny_cfg())
    f = fit_forecast(RIDGE, s["train"])
    assert f is not None
    # the same train rows with different val/test bars: nothing changes
    again = fit_forecast(RIDGE, prepare_splits(tiny_cfg("splits.val=0.2", "splits.test=0.1"))["train"])
    np.testing.assert_array_equal(f.coef, again.coef)
    # positive control: rows after the train split do change the fit
    longer = dataclasses.replace(
        s["train"],
        features=np.concatenate([s["train"].features, s["val"].features]),
        open=np.concatenate([s["train"].open, s["val"].open]),
        close=np.concatenate([s["train"].close, s["val"].close]),
    )
    assert not np.allclose(fit_forecast(RIDGE, longer).coef, f.coef)
    # forecast.alpha is read: a smaller penalty fits other coefficients
    assert not np.allclose(fit_forecast(ForecastConfig(kind="ridge", alpha=0.01), s["train"]).coef, f.coef)
    assert fit_forecast(ForecastConfig(kind="none"), s["train"]) is None


def test_a_run_stores_its_forecast_and_the_agent_appends_it_to_plain_features(art):
    cfg = tiny_cfg("forecast.kind=ridge", "forecast.only=false", "forecast.alpha=0.1", total=256)
    out = run_training(cfg, run_id="fc", progress=False)
    _, _, state = resolve_checkpoint(out.run_dir)
    stored = Forecast.from_state(state["forecast"])
    train = prepare_splits(cfg, ("train",))["train"]
    expected = fit_forecast(cfg.forecast, train)
    assert stored is not None and stored.alpha == 0.1 and stored.train_rows == len(train)
    np.testing.assert_allclose(stored.coef, expected.coef)
    agent = load_agent(out.run_dir)
    n_plain = train.features.shape[1]
    assert agent.n_features == n_plain  # callers pass the plain features ...
    val = prepare_splits(cfg, ("val",))["val"].slice(0, 300)
    seen = agent.inputs(val.features)  # ... and the policy sees one more column
    assert seen.shape == (300, n_plain + 1)
    np.testing.assert_allclose(seen[:, -1], stored.column(val.features), rtol=1e-6)
    pos = agent.positions(val.features)
    # live trading's path (`act` on the last lookback rows of plain features) decides the same
    lb = cfg.env.lookback
    for t in (lb + 10, 150, 299):
        assert agent.act(val.features[t - lb + 1 : t + 1], pos[t - 1]) == pos[t], t
    # the column reaches the decisions: a forecast of the opposite sign changes them
    flipped = dataclasses.replace(stored, coef=-stored.coef)
    agent.forecast = flipped
    assert not np.array_equal(agent.positions(val.features), pos)
    with pytest.raises(DataError, match=rf"expected features \(T, {n_plain}\)"):
        agent.positions(seen)  # a matrix that already has the column is refused, not misread


def test_by_default_the_policy_sees_the_column_alone_and_callers_still_pass_plain_features(art):
    cfg = tiny_cfg("env.lookback=1", total=256)
    assert cfg.forecast.kind == "ridge" and cfg.forecast.only  # the defaults, not set here
    out = run_training(cfg, run_id="fconly", progress=False)
    _, _, state = resolve_checkpoint(out.run_dir)
    assert state["forecast"]["only"] is True
    assert state["policy"]["mlp_extractor.policy_net.0.weight"].shape[1] == 2  # the forecast and the position
    agent = load_agent(out.run_dir)
    train = prepare_splits(cfg, ("train",))["train"]
    assert agent.n_features == train.features.shape[1]  # eval and live pass the plain features
    val = prepare_splits(cfg, ("val",))["val"].slice(0, 300)
    seen = agent.inputs(val.features)
    assert seen.shape == (300, 1)
    np.testing.assert_allclose(seen[:, 0], agent.forecast.column(val.features), rtol=1e-6)
    pos = agent.positions(val.features)
    for t in (10, 150, 299):  # live trading's path decides the same
        assert agent.act(val.features[t : t + 1], pos[t - 1]) == pos[t], t
    # positive control: without `only` the same forecast gives the policy every feature as well
    both = dataclasses.replace(agent.forecast, only=False)
    assert both.append(val.features).shape == (300, train.features.shape[1] + 1)
    assert both.augment(val).feature_names[:-1] == val.feature_names
    assert agent.forecast.augment(val).feature_names == [COLUMN]
    # a checkpoint from before the option reads as features + forecast
    old = {k: v for k, v in agent.forecast.state().items() if k != "only"}
    assert Forecast.from_state(old).only is False


def test_the_features_policy_preset_changes_exactly_its_four_keys():
    from ztb_core.config import config_to_dict, flatten
    from ztb_core.paths import configs_dir

    preset = load_config(TrainConfig, configs_dir() / "presets" / "features-policy.yaml")
    default = load_config(TrainConfig)
    changed = {k: v for k, v in flatten(config_to_dict(preset)).items() if flatten(config_to_dict(default))[k] != v}
    assert changed == {
        "forecast.kind": "none",
        "forecast.only": False,
        "env.lookback": 8,
        "env.reward.turnover_penalty": 1.0,
    }


def test_kind_none_trains_on_the_features_alone_whatever_only_says(art):
    out = run_training(tiny_cfg("forecast.kind=none", total=128), run_id="plain", progress=False)
    _, _, state = resolve_checkpoint(out.run_dir)
    assert "forecast" not in state
    agent = load_agent(out.run_dir)
    assert agent.forecast is None
    assert agent.inputs(np.zeros((8, agent.n_features))).shape == (8, agent.n_features)


def test_a_run_recorded_before_forecasts_existed_resumes_as_it_trained(art):
    """Its config.yaml and checkpoints have no `forecast` key: it trained on the features alone,
    which is no longer the default, so the recorded config reads as it trained and it resumes, and
    its checkpoint loads as a features agent; asking it for a forecast it never had is refused."""
    out = run_training(tiny_cfg("forecast.kind=none", total=128), run_id="old", progress=False)
    path = out.run_dir / "config.yaml"
    recorded = yaml.safe_load(path.read_text())
    del recorded["forecast"]
    path.write_text(yaml.safe_dump(recorded, sort_keys=False))
    for ckpt in (out.run_dir / "checkpoints").glob("*.ckpt.zst"):
        _rewrite_state(ckpt, lambda st: st["config"].pop("forecast"))
    assert load_agent(out.run_dir).forecast is None
    # positive control: the same recorded config read as a user's file picks up today's default
    assert load_config(TrainConfig, path).forecast.kind == "ridge"
    cfg = load_recorded_config(path, ["total_timesteps=256"])  # what `ztb train --resume old` loads
    assert cfg.forecast.kind == "none"
    check_compatible(recorded, cfg, "run old")  # no complaint
    resumed = run_training(cfg, resume_dir=out.run_dir, progress=False)
    assert resumed.state == "completed" and resumed.step == 256
    # positive control: the same recorded config with a forecast asked for is refused, naming the key
    with pytest.raises(ConfigError, match="forecast.kind"):
        check_compatible(recorded, tiny_cfg("forecast.kind=ridge", total=256), "run old")


def test_a_run_recorded_before_only_existed_loads_and_resumes_with_the_features_too(art):
    """Sixth- and seventh-session runs had forecast.kind ridge and no `only` key: their policy saw
    the features and the forecast. `load_agent` and `ztb train --resume` read them so, although
    the policy sees the forecast alone by default now."""
    from ztb_core.cli import main

    out = run_training(tiny_cfg("forecast.only=false", total=128), run_id="fc6", progress=False)
    path = out.run_dir / "config.yaml"
    recorded = yaml.safe_load(path.read_text())
    del recorded["forecast"]["only"]
    path.write_text(yaml.safe_dump(recorded, sort_keys=False))

    def as_before(state: dict) -> None:
        del state["config"]["forecast"]["only"], state["forecast"]["only"]

    for ckpt in (out.run_dir / "checkpoints").glob("*.ckpt.zst"):
        _rewrite_state(ckpt, as_before)
    agent = load_agent(out.run_dir)
    assert agent.forecast is not None and not agent.forecast.only
    assert agent.inputs(np.zeros((8, agent.n_features))).shape == (8, agent.n_features + 1)
    assert load_config(TrainConfig, path).forecast.only  # positive control: today's default
    assert main(["train", "--headless", "--no-progress", "--resume", "fc6", "--total-timesteps", "256"]) == 0
    _, _, state = resolve_checkpoint(out.run_dir)
    assert state["num_timesteps"] == 256 and state["config"]["forecast"]["only"] is False


def test_resume_keeps_the_forecast_of_the_checkpoint(art):
    out = run_training(tiny_cfg("forecast.kind=ridge", total=128), run_id="keep", progress=False)
    _, _, first = resolve_checkpoint(out.run_dir)
    resumed = run_training(tiny_cfg("forecast.kind=ridge", total=256), resume_dir=out.run_dir, progress=False)
    _, _, state = resolve_checkpoint(resumed.run_dir)
    assert state["num_timesteps"] == 256 and state["forecast"] == first["forecast"]


def test_bad_forecast_inputs_are_named():
    s = prepare_splits(tiny_cfg())
    with pytest.raises(DataError, match="too few"):
        fit_forecast(RIDGE, s["train"].slice(0, 20))
    f = fit_forecast(RIDGE, s["train"])
    with pytest.raises(DataError, match=r"forecast: expected features \(T, "):
        f.append(s["train"].features[:, :5])
    assert f.augment(s["val"]).feature_names[-1] == COLUMN
    with pytest.raises(ConfigError, match="forecast.kind"):
        tiny_cfg("forecast.kind=lasso")


def test_ztb_eval_scores_a_forecast_agent_on_the_whole_period(art, capsys):
    """`--split all` prepares the whole period's plain features; the agent appends the forecast it
    was trained with (a refit there would see the bars it is scored on)."""
    import json

    from ztb_core.cli import main
    from ztb_core.paths import runs_dir

    out = run_training(tiny_cfg("forecast.kind=ridge", total=256), run_id="fce", progress=False)
    fast = ["bootstrap.n_resamples=100", "monte_carlo.n_paths=200", "baselines.random_seeds=5", "report.plots=false"]
    code = main(
        [
            "eval",
            "--model",
            out.run_dir.name,
            "--split",
            "all",
            "--run-id",
            "evfc",
            *sum((["--set", s] for s in fast), []),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    report = json.loads((runs_dir() / "evfc" / "reports" / "eval_evfc.json").read_text())
    assert report["meta"]["split"] == "all" and report["meta"]["checkpoint_step"] == 256


def test_the_column_is_clipped_at_a_bound_fitted_on_train_and_stored_with_it():
    """Sunday opens and news minutes put a few rows at 20-30 spreads. The column is clipped at the
    train split's `clip_quantile` quantile of |forecast|; the bound travels in the state, so eval
    and live clip alike; a state from before the clip loads unclipped, as its policy trained."""
    s = prepare_splits(tiny_cfg("data.synthetic.n_bars=30000", *preset_overrides(STRONG_SIGNAL)))
    train, val = s["train"], s["val"]
    f = fit_forecast(RIDGE, train)
    assert RIDGE.clip_quantile == 0.999 and f.clip_quantile == 0.999
    raw = np.abs(f.raw(train.features))
    assert f.clip == pytest.approx(np.quantile(raw, 0.999)) and f.train_clipped == pytest.approx(np.mean(raw > f.clip))
    # an outlier row (a weekend gap) far beyond anything in train: clipped to the bound, sign kept
    shock = val.features[:3].copy()
    k = 50 * f.spread / float(np.sum(f.coef**2))  # features that put the forecast at +50 spreads
    shock[0] = f.mean + f.scale * f.coef * k
    shock[1] = f.mean - f.scale * f.coef * k
    z = f.raw(shock)
    assert z[0] == pytest.approx(50) and z[1] == pytest.approx(-50) and 50 > 3 * f.clip
    col = f.column(shock)
    assert col[0] == pytest.approx(f.clip) and col[1] == pytest.approx(-f.clip) and col[2] == pytest.approx(z[2])
    assert f.clipped_fraction(shock) == pytest.approx(2 / 3)
    # the state carries the bound: the agent's copy computes the very same column
    back = Forecast.from_state(f.state())
    assert back.clip == f.clip and np.array_equal(back.column(shock), col)
    np.testing.assert_array_equal(back.column(val.features), f.column(val.features))
    # positive control: without the bound (an older checkpoint's state) the outlier passes through
    old = {k: v for k, v in f.state().items() if k not in ("clip", "clip_quantile", "train_clipped")}
    assert Forecast.from_state(old).clip is None and Forecast.from_state(old).column(shock)[0] == pytest.approx(z[0])
    # null switches the clip off
    assert fit_forecast(ForecastConfig(kind="ridge", clip_quantile=None), train).clip is None


def test_a_run_reports_how_often_the_clip_fires_and_its_agent_clips_alike(art):
    from rich.console import Console

    from ztb_core.cli.train import _print_forecast_clip
    from ztb_core.runs import RunReader

    from .conftest import metrics

    cfg = tiny_cfg("env.lookback=1", "eval.every_steps=128", total=256)
    out = run_training(cfg, run_id="fclip", progress=False)
    ready = next(e for e in RunReader(out.run_dir).events() if e["event"] == "data_ready")
    agent = load_agent(out.run_dir)
    clip = ready["forecast_clip"]
    assert clip["bound"] == pytest.approx(agent.forecast.clip) and clip["quantile"] == 0.999
    assert 0 < clip["train_clipped"] < 0.01
    val = prepare_splits(cfg, ("val",))["val"].slice(0, 1000)  # eval.max_bars of the tiny config
    rows = metrics(out.run_dir, "val")
    assert rows and all(
        r["forecast_clipped"] == pytest.approx(agent.forecast.clipped_fraction(val.features)) for r in rows
    )
    assert float(np.abs(agent.inputs(val.features)).max()) <= agent.forecast.clip + 1e-6
    console = Console(record=True, width=300)
    _print_forecast_clip(console, out.run_dir)
    text = console.export_text()
    assert f"forecast clipped at +-{agent.forecast.clip:.2f} spreads" in text and "of train bars" in text
    assert "of the evaluation bars" in text


def _fitted_on(kind: str, *sets: str):
    """(config, forecast fitted on train, train, val) of a 60,000-bar known-optimum market, the
    policy seeing the forecast columns alone."""
    cfg = tiny_cfg(f"data.synthetic.kind={kind}", "data.synthetic.n_bars=60000", *sets, "forecast.only=true")
    s = prepare_splits(cfg)
    return cfg, fit_forecast(cfg.forecast, s["train"]), s["train"], s["val"]


def test_a_horizon_column_forecasts_the_summed_return_the_one_bar_column_misses():
    """`forecast.horizons: [h]` adds the ridge forecast of the next h bars' summed return as one
    more column. On a known_two_speed market (a fast 5-bar reversal and a slow 200-bar trend) the
    one-bar column is mostly the reversal: on val it predicts the next 100 bars' return worse than
    the 100-bar column does (the positive control: on the next bar it is the other way round). The
    one-bar column is unchanged by the extra one, and the state carries both."""
    cfg, f, train, val = _fitted_on("known_two_speed", "forecast.horizons=[100]")
    alone = fit_forecast(RIDGE, train)
    assert f.names == [COLUMN, f"{COLUMN}_h100"] and f.n_outputs == 2
    cols = f.columns(val.features)
    assert cols.shape == (len(val), 2)
    np.testing.assert_array_equal(cols[:, 0], alone.column(val.features))
    one_bar = holding_returns(val.open, val.close)
    ahead = forward_sum(one_bar, 100)
    ahead[-100:] = np.nan  # whole windows only
    assert _corr(cols[:, 1], ahead) > _corr(cols[:, 0], ahead) + 0.05
    assert _corr(cols[:, 0], one_bar) > _corr(cols[:, 1], one_bar)
    # each column in units of its own train spread, clipped at its own bound
    assert abs(float(f._raw_all(train.features)[:, 1].std()) - 1.0) < 1e-3
    assert f.horizons[0].clip is not None and np.abs(cols[:, 1]).max() <= f.horizons[0].clip + 1e-5
    # the state round-trips; a checkpoint from before horizons reads as the one-bar column alone
    back = Forecast.from_state(f.state())
    np.testing.assert_array_equal(back.columns(val.features), cols)
    old = {k: v for k, v in f.state().items() if k != "horizons"}
    assert Forecast.from_state(old).n_outputs == 1
    broken = f.state()
    broken["horizons"][0]["coef"] = broken["horizons"][0]["coef"][:-1]
    with pytest.raises(CheckpointError, match="100-bar column is inconsistent"):
        Forecast.from_state(broken)


def test_forward_sum_sums_the_next_bars_and_keeps_nan_rows():
    r = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    np.testing.assert_array_equal(forward_sum(r, 2)[:4], [3.0, 5.0, 7.0, 4.0])
    assert np.isnan(forward_sum(r, 2)[4])


@pytest.mark.parametrize("key", ["horizons", "vol_horizons"])
@pytest.mark.parametrize("bad", ["[1]", "[50,20]", "[20,20]", "[20000]"])
def test_bad_horizons_are_named(bad, key):
    with pytest.raises(ConfigError, match=f"forecast.{key}"):
        tiny_cfg(f"forecast.{key}={bad}")


def test_forward_log_variance_is_the_log_mean_square_of_the_next_bars():
    r = np.array([1.0, -2.0, 3.0, 0.0, np.nan])
    got = forward_log_variance(r, 2)
    np.testing.assert_allclose(got[:4], np.log([2.5, 6.5, 4.5, 1e-20]))  # the last whole row: 0 floored
    assert np.isnan(got[4])


def test_a_volatility_column_tells_the_regime_the_return_columns_do_not():
    """`forecast.vol_horizons: [h]` adds the ridge forecast of the next h bars' log realised
    variance. On a known_regime market (calm and volatile regimes, seen in the bars' wicks) it
    tracks the realised variance ahead on val (correlation above 0.5), which the one-bar return
    column does not (the control: below 0.2); the return columns are unchanged by it, and the state
    round-trips with the column's kind."""
    cfg, f, train, val = _fitted_on("known_regime", "forecast.horizons=[20]", "forecast.vol_horizons=[50]")
    assert f.names == [COLUMN, f"{COLUMN}_h20", f"{COLUMN}_logvar_h50"] and f.n_outputs == 3
    cols = f.columns(val.features)
    returns_only = fit_forecast(cfg.forecast.model_copy(update={"vol_horizons": []}), train)
    np.testing.assert_array_equal(cols[:, :2], returns_only.columns(val.features))
    ahead = forward_log_variance(holding_returns(val.open, val.close), 50)
    ahead[-50:] = np.nan  # whole windows only
    assert _corr(cols[:, 2], ahead) > 0.5
    assert abs(_corr(cols[:, 0], ahead)) < 0.2
    back = Forecast.from_state(f.state())
    assert back.names == f.names
    np.testing.assert_array_equal(back.columns(val.features), cols)
    broken = f.state()
    broken["horizons"][1]["target"] = "sharpe"
    with pytest.raises(CheckpointError, match="unreadable"):
        Forecast.from_state(broken)


def test_a_run_with_a_horizon_column_trains_and_its_agent_computes_both_columns(art):
    cfg = tiny_cfg("env.lookback=1", "forecast.horizons=[30]", total=256)
    out = run_training(cfg, run_id="fch", progress=False)
    _, _, state = resolve_checkpoint(out.run_dir)
    assert state["policy"]["mlp_extractor.policy_net.0.weight"].shape[1] == 3  # two forecasts and the position
    agent = load_agent(out.run_dir)
    val = prepare_splits(cfg, ("val",))["val"].slice(0, 300)
    seen = agent.inputs(val.features)  # eval and live pass the plain features
    assert seen.shape == (300, 2)
    np.testing.assert_allclose(seen, agent.forecast.columns(val.features), rtol=1e-6)
    pos = agent.positions(val.features)
    for t in (10, 150, 299):  # live trading's path decides the same
        assert agent.act(val.features[t : t + 1], pos[t - 1]) == pos[t], t


def test_the_slow_signals_preset_changes_exactly_its_three_keys():
    from ztb_core.config import config_to_dict, flatten
    from ztb_core.paths import configs_dir

    preset = load_config(TrainConfig, configs_dir() / "presets" / "slow-signals.yaml")
    default = flatten(config_to_dict(load_config(TrainConfig)))
    changed = {k: v for k, v in flatten(config_to_dict(preset)).items() if default[k] != v}
    assert changed == {"forecast.horizons": [100], "ppo.gamma": 0.99, "ppo.gae_lambda": 0.95}
