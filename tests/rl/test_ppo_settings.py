"""PPO settings reach stable-baselines3: learning-rate and clip schedules, target_kl, and the
VecNormalize epsilon (also carried into the frozen normaliser of the loaded agent)."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.rl.agent import load_agent
from ztb_core.rl.checkpoints import vecnormalize_state
from ztb_core.rl.market import MarketSlice
from ztb_core.rl.policy import ObsNormalizer, window_rows
from ztb_core.rl.trainer import LinearSchedule, build_model, build_vec_env, run_training

from .conftest import metrics, tiny_cfg


def _market(n: int = 300, f: int = 3) -> MarketSlice:
    import pandas as pd

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.standard_normal(n) * 2e-4))
    idx = pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC")
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 0.0}, index=idx)
    feats = (rng.standard_normal((n, f)) * 1e-4).astype(np.float32)  # raw-return-sized features
    return MarketSlice("train", bars, feats, [f"f{i}" for i in range(f)], close, close, idx, "M1", "fx")


@pytest.mark.parametrize("kind", ["constant", "linear"])
def test_schedules_and_target_kl_reach_ppo(kind):
    cfg = tiny_cfg(f"ppo.lr_schedule={kind}", f"ppo.clip_schedule={kind}", "ppo.target_kl=0.015")
    venv, _ = build_vec_env(cfg, _market())
    model = build_model(cfg, venv)
    assert model.target_kl == 0.015
    lr, clip = cfg.ppo.learning_rate, cfg.ppo.clip_range
    half = 0.5 if kind == "linear" else 1.0
    assert model.lr_schedule(1.0) == pytest.approx(lr) and model.lr_schedule(0.5) == pytest.approx(lr * half)
    assert model.clip_range(0.5) == pytest.approx(clip * half)
    venv.close()


@pytest.mark.parametrize(
    "sets, squashed",
    [
        # SB3's prior (variance 1, weight 1e-4) swamps 1e-8-variance features: the control
        (("ppo.normalize.stats_from_data=false", "ppo.normalize.epsilon=1e-8"), True),
        (("ppo.normalize.stats_from_data=false", "ppo.normalize.epsilon=1e-12"), True),  # epsilon alone: no fix
        (("ppo.normalize.stats_from_data=true", "ppo.normalize.epsilon=1e-8"), True),  # still shrunk (~0.7 sd)
        ((), False),  # the defaults: data statistics and epsilon 1e-12
    ],
)
def test_small_variance_features_keep_unit_scale_only_with_data_stats_and_small_epsilon(sets, squashed):
    m = _market()
    cfg = tiny_cfg(*sets)
    venv, vecnorm = build_vec_env(cfg, m)
    venv.reset()
    for _ in range(100):
        venv.step(np.zeros(cfg.ppo.n_envs, dtype=np.int64))
    norm = ObsNormalizer.from_state(vecnormalize_state(vecnorm))
    assert vecnorm.epsilon == cfg.ppo.normalize.epsilon == norm.epsilon
    lb = cfg.env.lookback
    spread = float(np.std(norm(window_rows(m.features, lb, lb - 1, len(m), 0.0))[:, :-1]))
    venv.close()
    assert (spread < 0.8) if squashed else (0.9 < spread < 1.1), (sets, spread)


def test_linear_schedule_is_clamped_to_zero_and_the_initial_value():
    s = LinearSchedule(3e-4)
    assert s(-0.0156) == 0.0 and s(-1.0) == 0.0  # past the total: no negative learning rate
    assert s(0.5) == pytest.approx(1.5e-4) and s(1.2) == pytest.approx(3e-4)


def test_a_total_off_the_rollout_grid_never_trains_with_a_negative_learning_rate(art):
    """1,000 steps with 128-step rollouts: PPO finishes whole rollouts, so the run ends at 1,024 (as
    documented). The linear schedules must reach 0 there, not at 1,000: before the fix the last
    update trained with learning rate 3e-4 * (1 - 1024/1000) < 0 (gradient ascent)."""
    cfg = tiny_cfg("ppo.lr_schedule=linear", "ppo.clip_schedule=linear", total=1000)
    assert cfg.rounded_total() == 1024
    outcome = run_training(cfg, run_id="lr", progress=False)
    assert outcome.state == "completed" and outcome.step == 1024
    assert outcome.checkpoint is not None and load_agent(outcome.checkpoint).step == 1024
    rows = [r for r in metrics(outcome.run_dir, "train") if "learning_rate" in r]
    lrs, clips = [r["learning_rate"] for r in rows], [r["clip_range"] for r in rows]
    assert len(rows) == 8 and min(lrs) >= 0.0 and min(clips) >= 0.0, (lrs, clips)
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == 0.0  # the line spans the 1,024 steps that ran
