"""Pieces shared by training and the loaded agent so both see identical observations:
the observation/action spaces, the policy's constructor arguments, observation normalisation
(VecNormalize's formula) and batched window building."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from numpy.lib.stride_tricks import sliding_window_view

from .actions import ActionMap
from .config import EnvConfig, PPOConfig, TrainConfig
from .env import dict_space, obs_dim
from .sb3_extractor import EncoderActorCriticPolicy, PretrainedEncoderExtractor


def spaces_for(env_cfg: EnvConfig, n_features: int, raw_shapes: dict[str, tuple[int, int]] | None = None):
    """(observation space, action space); `raw_shapes` (fine-tune mode) makes it the Dict space."""
    big = float(np.finfo(np.float32).max)
    obs: spaces.Space
    if raw_shapes is not None:
        obs = dict_space(env_cfg.lookback, n_features, raw_shapes)
    else:
        obs = spaces.Box(-big, big, shape=(obs_dim(env_cfg.lookback, n_features),), dtype=np.float32)
    return obs, ActionMap(env_cfg).space


def policy_kwargs(ppo: PPOConfig) -> dict[str, Any]:
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[ppo.activation]
    return {"net_arch": {"pi": list(ppo.net_arch), "vf": list(ppo.net_arch)}, "activation_fn": act}


def finetune(cfg: TrainConfig) -> bool:
    """True when the policy runs (and trains) the Stage-1 encoder itself."""
    return bool(cfg.encoder.path) and cfg.encoder.mode == "finetune"


def model_policy(cfg: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """(policy class or name, policy_kwargs) for this config; shared by training and `load_agent`."""
    kwargs = policy_kwargs(cfg.ppo)
    if not finetune(cfg):
        return cfg.ppo.policy, kwargs
    kwargs.update(
        features_extractor_class=PretrainedEncoderExtractor,
        features_extractor_kwargs={"encoder_path": str(cfg.encoder.path)},
        encoder_lr_scale=cfg.encoder.lr_scale,
    )
    return EncoderActorCriticPolicy, kwargs


@dataclass(frozen=True)
class ObsNormalizer:
    """VecNormalize's observation transform with frozen statistics (training=False).

    For a Dict observation (fine-tune mode) `mean`/`var` are dicts over the normalised keys;
    the other keys (the encoder's raw windows) pass through unchanged, as in VecNormalize with
    `norm_obs_keys`."""

    mean: np.ndarray | dict | None
    var: np.ndarray | dict | None
    clip: float = 10.0
    epsilon: float = 1e-8

    @classmethod
    def from_state(cls, st: dict | None) -> ObsNormalizer:
        if not st or not st.get("norm_obs"):
            return cls(None, None)
        return cls(st["obs_mean"], st["obs_var"], st["clip_obs"], st["epsilon"])

    def _one(self, obs: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        out = np.clip((obs - mean) / np.sqrt(var + self.epsilon), -self.clip, self.clip)
        return out.astype(np.float32)

    def __call__(self, obs):
        if isinstance(obs, dict):
            out = {k: np.asarray(v, dtype=np.float32) for k, v in obs.items()}
            if isinstance(self.mean, dict):
                for k in self.mean:
                    out[k] = self._one(obs[k], self.mean[k], self.var[k])
            return out
        if self.mean is None:
            return np.asarray(obs, dtype=np.float32)
        return self._one(obs, self.mean, self.var)


def window_rows(features: np.ndarray, lookback: int, start: int, stop: int, position: float) -> np.ndarray:
    """Flat observations for decision indices start..stop-1 (each needs index >= lookback-1),
    all with the same current `position`: (stop-start, lookback*F + 1) float32."""
    f = features.shape[1]
    win = sliding_window_view(features, (lookback, f))[:, 0]  # (T-L+1, L, F) view
    rows = win[start - (lookback - 1) : stop - (lookback - 1)].reshape(stop - start, lookback * f)
    out = np.empty((stop - start, lookback * f + 1), dtype=np.float32)
    out[:, :-1] = rows
    out[:, -1] = position
    return out
