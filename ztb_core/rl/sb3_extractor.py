"""Fine-tuning the Stage-1 encoder inside PPO (`encoder.mode: finetune` in `configs/train.yaml`).

`PretrainedEncoderExtractor` is an SB3 `BaseFeaturesExtractor` over the `spaces.Dict`
observation of `ztb_core.rl.env.EncoderTradingEnv`: it runs the exported encoder on the raw
windows `x:{tf}` (the same inputs and the same pooling as `EncoderBundle.embed_bars`, so before
any update its embedding equals the frozen one) and returns `[features, position, embedding]`
for the policy and value MLPs. Only the encoder part of the autoencoder is kept (the decoders
are dropped), and it stays in eval mode (no dropout): PPO compares log-probabilities from the
rollout with those of the update, and dropout would make them differ for identical weights.

`EncoderActorCriticPolicy` builds the optimizer with two parameter groups, the encoder's at
`lr_scale` times the learning rate; `EncoderPPO` keeps that ratio when SB3 resets every group's
learning rate at each update (it would otherwise erase the multiplier).
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from ..errors import ConfigError
from ..pretrain.export import embed_tokens
from .encoder import FEATURES_KEY, POSITION_KEY, load_encoder_checked, raw_key


class PretrainedEncoderExtractor(BaseFeaturesExtractor):
    """[features window, position, encoder embedding] from a Dict observation."""

    def __init__(self, observation_space: spaces.Dict, encoder_path: str, trainable: bool = True):
        bundle = load_encoder_checked(encoder_path)
        keys = [raw_key(tf) for tf in bundle.timeframes]
        missing = [k for k in (FEATURES_KEY, POSITION_KEY, *keys) if k not in observation_space.spaces]
        if missing:
            raise ConfigError(
                f"encoder {encoder_path}: the observation lacks {missing} (timeframes {bundle.timeframes})"
            )
        for tf, k in zip(bundle.timeframes, keys, strict=True):
            shape = _shape(observation_space, k)
            if shape[:1] != (bundle.lengths[tf],):
                raise ConfigError(
                    f"encoder {encoder_path}: {k} has shape {shape}, the encoder takes {bundle.lengths[tf]} bars"
                )
        n_flat = int(_shape(observation_space, FEATURES_KEY)[0]) + int(_shape(observation_space, POSITION_KEY)[0])
        super().__init__(observation_space, n_flat + bundle.embedding_dim)
        model = bundle.model
        model.decoders = nn.ModuleDict()  # reconstruction heads play no part in the policy
        self.encoder = model
        self.timeframes = list(bundle.timeframes)
        self._keys = keys
        self._fkey, self._pkey = FEATURES_KEY, POSITION_KEY
        self.embedding_dim = bundle.embedding_dim
        self.encoder.requires_grad_(trainable)
        self.encoder.eval()

    def train(self, mode: bool = True) -> PretrainedEncoderExtractor:
        super().train(mode)
        self.encoder.eval()  # no dropout, see the module docstring
        return self

    def embed(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) embedding: per-timeframe mean of the bottleneck tokens, concatenated (as `embed_bars`)."""
        return embed_tokens(self.encoder, {tf: obs[k] for tf, k in zip(self.timeframes, self._keys, strict=True)})

    def combine(self, features: torch.Tensor, position: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return torch.cat([features, position, embedding], dim=1)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.combine(observations[self._fkey], observations[self._pkey], self.embed(observations))


def _shape(observation_space: spaces.Dict, key: str) -> tuple[int, ...]:
    shape = observation_space[key].shape
    if shape is None:  # only shapeless spaces (Graph, Sequence, ...) have none; the encoder env builds Boxes
        raise ConfigError(f"observation {key!r} is a {type(observation_space[key]).__name__} without a shape")
    return shape


class EncoderActorCriticPolicy(MultiInputActorCriticPolicy):
    """`MultiInputPolicy` whose optimizer trains the encoder at `encoder_lr_scale` x the learning rate."""

    def __init__(self, *args: Any, encoder_lr_scale: float = 0.1, **kwargs: Any):
        self.encoder_lr_scale = float(encoder_lr_scale)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        extractor = self.features_extractor
        assert isinstance(extractor, PretrainedEncoderExtractor)  # the trainer pairs this policy with it
        enc = [p for p in extractor.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in enc}
        rest = [p for p in self.parameters() if id(p) not in ids]
        lr = lr_schedule(1)
        groups = [{"params": rest, "lr_scale": 1.0}]
        if enc:
            groups.append({"params": enc, "lr": lr * self.encoder_lr_scale, "lr_scale": self.encoder_lr_scale})
        # type[Optimizer] has no `lr`, but every concrete optimizer class has (SB3 ignores this the same way)
        self.optimizer = self.optimizer_class(groups, lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]


class EncoderPPO(PPO):
    """PPO that applies each parameter group's `lr_scale` after SB3 sets the learning rate."""

    def _update_learning_rate(self, optimizers) -> None:
        super()._update_learning_rate(optimizers)
        for opt in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in opt.param_groups:
                group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
