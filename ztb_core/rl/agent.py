"""A trained agent loaded from a verified checkpoint, for evaluation and live trading.

`load_agent(path)` accepts a checkpoint file or a run directory (newest checkpoint that passes
its sha256). The VecNormalize statistics stored in the checkpoint are applied frozen
(training=False, norm_reward=False), exactly as the policy saw observations while training.

`positions(features)` replays the environment's decision loop over a whole feature matrix:
the position decided after bar t depends on the window ending at t *and* on the position held,
like in `TradingEnv`. For a deterministic discrete policy this is exact and fast: the policy is
evaluated in batch for every window and every possible held position, then the sequence is
threaded through in numpy. Other cases step sequentially.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, DataError
from .checkpoints import load_checkpoint_file, load_latest_valid
from .config import TrainConfig
from .policy import ObsNormalizer, policy_kwargs, spaces_for, window_rows

log = logging.getLogger("ztb.rl.agent")
_CHUNK = 4096


@dataclass
class LoadedAgent:
    policy: Any  # stable_baselines3 ActorCriticPolicy, eval mode, CPU
    normalizer: ObsNormalizer
    train_config: TrainConfig
    checkpoint_path: Path
    step: int
    n_features: int
    entry: dict

    @property
    def lookback(self) -> int:
        return self.train_config.env.lookback

    @property
    def discrete(self) -> bool:
        return self.train_config.env.actions == "discrete"

    def _to_positions(self, actions: np.ndarray) -> np.ndarray:
        env = self.train_config.env
        if self.discrete:
            return np.asarray(env.positions, dtype=np.float64)[actions.astype(np.int64).reshape(-1)]
        return np.clip(actions.reshape(-1).astype(np.float64), -1.0, 1.0) * env.max_position

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        import torch

        with torch.no_grad():
            t = torch.as_tensor(self.normalizer(obs), device=self.policy.device)
            actions = self.policy._predict(t, deterministic=deterministic)
        return actions.cpu().numpy()

    def _check(self, features: np.ndarray) -> np.ndarray:
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.n_features:
            raise DataError(f"agent {self.checkpoint_path.name}: expected features (T, {self.n_features}), got {feats.shape}")
        return feats

    def act(self, window: np.ndarray, position: float, deterministic: bool = True) -> float:
        """One decision: `window` is the last `lookback` feature rows (oldest first)."""
        w = self._check(window)
        if w.shape[0] != self.lookback:
            raise DataError(f"agent: window has {w.shape[0]} rows, the policy was trained on {self.lookback}")
        obs = np.empty((1, w.size + 1), dtype=np.float32)
        obs[0, :-1] = w.reshape(-1)
        obs[0, -1] = position
        return float(self._to_positions(self._actions(obs, deterministic))[0])

    def positions(self, features: np.ndarray, deterministic: bool = True, initial_position: float = 0.0) -> np.ndarray:
        """Target position decided after each bar (T,); flat before the first full window."""
        feats = self._check(features)
        n, lb = len(feats), self.lookback
        out = np.full(n, 0.0)
        if n < lb:
            return out
        if self.discrete and deterministic:
            return self._positions_discrete(feats, initial_position)
        pos = initial_position
        for t in range(lb - 1, n):
            obs = window_rows(feats, lb, t, t + 1, pos)
            pos = float(self._to_positions(self._actions(obs, deterministic))[0])
            out[t] = pos
        return out

    def _positions_discrete(self, feats: np.ndarray, initial_position: float) -> np.ndarray:
        table = np.asarray(self.train_config.env.positions, dtype=np.float64)
        held = sorted(set(table.tolist()) | {float(initial_position)})
        n, lb = len(feats), self.lookback
        first = lb - 1
        # greedy action for every (decision index, held position) pair
        choice = np.empty((n - first, len(held)), dtype=np.int64)
        for j, p in enumerate(held):
            for s in range(first, n, _CHUNK):
                e = min(n, s + _CHUNK)
                choice[s - first:e - first, j] = self._actions(window_rows(feats, lb, s, e, p), True).reshape(-1)
        state_of = {p: j for j, p in enumerate(held)}
        next_state = np.array([state_of[float(p)] for p in table], dtype=np.int64)
        out = np.zeros(n)
        j = state_of[float(initial_position)]
        ch = choice.tolist()
        for i in range(n - first):
            a = ch[i][j]
            out[first + i] = table[a]
            j = next_state[a]
        return out


def _build_policy(cfg: TrainConfig, n_features: int, state: dict) -> Any:
    import torch
    from stable_baselines3.common.policies import ActorCriticPolicy

    obs_space, act_space = spaces_for(cfg.env, n_features)
    policy = ActorCriticPolicy(obs_space, act_space, lambda _: 0.0, **policy_kwargs(cfg.ppo))
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint does not match the policy its config describes: {exc}") from None
    policy.set_training_mode(False)
    return policy.to(torch.device("cpu"))


def _n_features(cfg: TrainConfig, state: dict) -> int:
    weight = next(v for k, v in state["policy"].items() if k.endswith("weight") and v.ndim == 2)
    n_in = int(weight.shape[1])
    n_features, rem = divmod(n_in - 1, cfg.env.lookback)
    if rem:
        raise CheckpointError(f"checkpoint input width {n_in} does not fit lookback {cfg.env.lookback}")
    return n_features


def resolve_checkpoint(path: str | Path, on_invalid=None) -> tuple[Path, dict, dict]:
    """(file, manifest entry, state) for a checkpoint file, a checkpoints folder or a run folder."""
    p = Path(path)
    if p.is_file():
        entry, state = load_checkpoint_file(p)
        return p, entry, state
    if p.is_dir():
        ckpt_dir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        hook = on_invalid or (lambda e, why: log.warning("skipping checkpoint %s: %s", e.get("file"), why))
        found = load_latest_valid(ckpt_dir, on_invalid=hook)
        if found is None:
            raise CheckpointError(f"{p}: no valid checkpoint (see {ckpt_dir / 'manifest.json'})")
        entry, state = found
        return ckpt_dir / entry["file"], entry, state
    raise CheckpointError(f"{p}: no such checkpoint file or run directory")


def load_agent(path: str | Path) -> LoadedAgent:
    """Load the agent from a checkpoint file or the newest valid checkpoint of a run directory."""
    file, entry, state = resolve_checkpoint(path)
    cfg = TrainConfig.model_validate(state["config"])
    n_features = _n_features(cfg, state)
    return LoadedAgent(policy=_build_policy(cfg, n_features, state),
                       normalizer=ObsNormalizer.from_state(state.get("vecnormalize")), train_config=cfg,
                       checkpoint_path=file, step=int(state["num_timesteps"]), n_features=n_features, entry=entry)
