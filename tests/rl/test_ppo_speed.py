"""The rollout speed-ups that must not change a number: the vectorised env without SB3's per-step
deepcopy of the info dicts, and PPO without torch.distributions' argument checks. Same seed, same
actions, same weights as stable-baselines3's own path; and the settings they touch are restored."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from ztb_core.config import load_config
from ztb_core.rl import trainer
from ztb_core.rl.config import TrainConfig
from ztb_core.rl.trainer import build_model, build_vec_env, unvalidated_distributions

from .conftest import tiny_cfg
from .test_ppo_settings import _market

ROOT = Path(__file__).resolve().parents[2]


def _train(cfg, fast: bool, monkeypatch) -> tuple[np.ndarray, list[torch.Tensor]]:
    """(the last rollout's actions, the policy's weights) after a short learn()."""
    if not fast:  # SB3's own DummyVecEnv (deepcopy of the infos) with argument checks on
        monkeypatch.setattr(trainer, "FreshInfoDummyVecEnv", DummyVecEnv)
    venv, _ = build_vec_env(cfg, _market(n=600))
    model = build_model(cfg, venv)
    if fast:
        with unvalidated_distributions():
            model.learn(1024)
    else:
        model.learn(1024)
    monkeypatch.undo()
    venv.close()
    return model.rollout_buffer.actions.copy(), [p.detach().clone() for p in model.policy.parameters()]


def _same(a, b) -> bool:
    return np.array_equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))


def test_the_fast_path_trains_bit_identically_to_sb3s(monkeypatch):
    # 64-step episodes on 600 bars: resets and terminal observations happen inside the rollouts
    cfg = tiny_cfg("env.episode_length=64", "ppo.n_envs=4")
    assert isinstance(build_vec_env(cfg, _market(n=600))[0].unwrapped, trainer.FreshInfoDummyVecEnv)
    reference = _train(cfg, False, monkeypatch)
    assert _same(_train(cfg, True, monkeypatch), reference)
    # positive control: the comparison sees a different run (another seed)
    assert not _same(_train(tiny_cfg("env.episode_length=64", "ppo.n_envs=4", "seed=1"), True, monkeypatch), reference)


def test_info_dicts_returned_by_one_step_are_not_changed_by_the_next():
    cfg = tiny_cfg("env.episode_length=3", "ppo.n_envs=2", "ppo.normalize.enabled=false")
    venv, _ = build_vec_env(cfg, _market())
    venv.reset()
    kept = [venv.step(np.array([1, 2]))[3] for _ in range(4)]
    snapshot = [[{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()} for d in s] for s in kept]
    for _ in range(3):
        venv.step(np.array([2, 1]))
    for before, after in zip(snapshot, kept, strict=True):
        for b, a in zip(before, after, strict=True):
            assert b.keys() == a.keys()
            assert all(np.array_equal(b[k], a[k]) for k in b)
    assert any("terminal_observation" in d for s in kept for d in s)  # the reset path was exercised
    venv.close()


def test_argument_checks_are_off_inside_and_restored_after():
    bad = torch.tensor([float("nan"), 0.0])  # logits outside their support (real numbers)
    with pytest.raises(ValueError):
        torch.distributions.Categorical(logits=bad)  # the default: checked
    with unvalidated_distributions():
        torch.distributions.Categorical(logits=bad)
    with pytest.raises(ValueError):
        torch.distributions.Categorical(logits=bad)
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        with unvalidated_distributions():
            pass
        assert torch.distributions.Distribution._validate_args is False  # a caller's own choice is kept
    finally:
        torch.distributions.Distribution.set_default_validate_args(True)


def test_the_speed_benchmark_compares_the_old_default_with_the_same_samples_per_update():
    """benchmarks/bench_train.py --only speed puts the default beside the old default's 4 x 8,192:
    the same 32,768 samples per update, minibatches and epochs; only the environments per forward
    pass differ (16 against 4)."""
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    default = load_config(TrainConfig)
    old = load_config(TrainConfig, None, list(bench.OLD_SHAPE))
    assert default.ppo.n_envs == 4 * old.ppo.n_envs == 16
    assert old.rollout_steps == default.rollout_steps == 32_768
    same = ("batch_size", "n_epochs", "gamma", "gae_lambda", "learning_rate", "target_kl", "net_arch")
    assert all(getattr(old.ppo, k) == getattr(default.ppo, k) for k in same)
    assert old.env == default.env and old.total_timesteps == default.total_timesteps
