"""The multi-timeframe masked-reconstruction network.

    per-timeframe stem (1-D CNN, or patch embedding for T5)
      -> + timeframe embedding (+ position embedding for the plain Transformer)
      -> shared encoder over the tokens of all timeframes (Transformer or T5 encoder)
      -> bottleneck (Linear d -> b per token)
      -> per-timeframe decoder back to 4 normalised price channels per bar

The exported embedding of a sample is the per-timeframe mean of its bottleneck tokens,
concatenated: `len(timeframes) * bottleneck` numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .bars import PRICE_CHANNELS
from .baselines import bridge
from .config import ModelConfig
from .dataset import IN_CHANNELS
from .t5 import build_t5_encoder

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


class MultiTimeframeAutoencoder(nn.Module):
    def __init__(
        self,
        timeframes: list[str],
        lengths: dict[str, int],
        cfg: ModelConfig,
        in_channels: int = IN_CHANNELS,
        out_channels: int = PRICE_CHANNELS,
        backbone_module: nn.Module | None = None,
    ):
        super().__init__()
        self.timeframes = list(timeframes)
        self.lengths = dict(lengths)
        self.cfg = cfg
        self.out_channels = out_channels
        self.is_t5 = cfg.backbone == "t5"
        if self.is_t5:
            self.backbone = backbone_module if backbone_module is not None else build_t5_encoder(cfg.t5)
            d = int(self.backbone_config.d_model)
            self.patch = cfg.t5.patch_len
            self.stems = nn.ModuleDict({tf: nn.Linear(self.patch * in_channels, d) for tf in timeframes})
            self.stem_norm = nn.LayerNorm(d)
            self.scale = math.sqrt(d)
            self.n_tokens = {tf: -(-lengths[tf] // self.patch) for tf in timeframes}
        else:
            d = cfg.d_model
            self.patch = 1
            k = cfg.stem_kernel
            self.stems = nn.ModuleDict(
                {
                    tf: nn.Sequential(
                        nn.Conv1d(in_channels, d, k, padding=k // 2), nn.GELU(), nn.Conv1d(d, d, 3, padding=1)
                    )
                    for tf in timeframes
                }
            )
            self.pos = nn.Parameter(torch.randn(max(lengths.values()), d) * 0.02)
            layer = nn.TransformerEncoderLayer(
                d, cfg.n_heads, cfg.d_ff, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
            )
            self.backbone = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
            self.final_norm = nn.LayerNorm(d)
            self.n_tokens = dict(lengths)
        self.d = d
        self.tf_embed = nn.Parameter(torch.randn(len(timeframes), d) * 0.02)
        self.bottleneck = nn.Linear(d, cfg.bottleneck)
        # bridge residual: start exactly at the bridge fill, so a correction has to earn its place
        self.decoders = nn.ModuleDict(
            {
                tf: _decoder(cfg.bottleneck, d, self.patch * out_channels, zero_last=cfg.residual == "bridge")
                for tf in timeframes
            }
        )

    @property
    def embedding_dim(self) -> int:
        return len(self.timeframes) * self.cfg.bottleneck

    @property
    def backbone_config(self) -> PreTrainedConfig:
        """The Hugging Face config of the T5 backbone (T5 models only)."""
        if not self.is_t5:
            raise ValueError("backbone_config: only a T5 backbone has a Hugging Face config")
        # nn.Module's stub types every attribute as Tensor | Module; a Hugging Face model's `config` is its config
        return cast("PreTrainedConfig", self.backbone.config)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters()) if self.is_t5 else []

    def _tokens(self, tf: str, k: int, x: torch.Tensor) -> torch.Tensor:
        if self.is_t5:
            B, L, C = x.shape
            pad = self.n_tokens[tf] * self.patch - L
            if pad:  # pad on the left (oldest side); padded bars look masked (visibility flag 0)
                x = torch.cat([x.new_zeros(B, pad, C), x], dim=1)
            tok = self.stems[tf](x.reshape(B, self.n_tokens[tf], self.patch * C))
            return self.stem_norm(tok) * self.scale + self.tf_embed[k]
        h = self.stems[tf](x.transpose(1, 2)).transpose(1, 2)
        return h + self.pos[: x.shape[1]] + self.tf_embed[k]

    @staticmethod
    def bridge_fill(x: torch.Tensor) -> torch.Tensor:
        """The open-aware bridge fill (B, L, 4) from the model's own inputs: visible prices are
        x[..., :4], the visibility flag is the last channel (so it reads nothing the model cannot)."""
        prices = x[..., :PRICE_CHANNELS].detach()
        return bridge(prices, x[..., -1] < 0.5).to(x.dtype)

    def encode(self, xs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Bottleneck tokens (B, N, b) of all timeframes, concatenated in `timeframes` order."""
        tokens = torch.cat([self._tokens(tf, k, xs[tf]) for k, tf in enumerate(self.timeframes)], dim=1)
        if self.is_t5:
            mask = torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)
            h = self.backbone(inputs_embeds=tokens, attention_mask=mask).last_hidden_state
        else:
            h = self.final_norm(self.backbone(tokens))
        return self.bottleneck(h)

    def split_tokens(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for tf in self.timeframes:
            n = self.n_tokens[tf]
            out[tf] = z[:, i : i + n]
            i += n
        return out

    def forward(self, xs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Returns ({tf: reconstruction (B, L, 4)}, embedding (B, K * bottleneck))."""
        z = self.encode(xs)
        parts = self.split_tokens(z)
        recon = {}
        for tf in self.timeframes:
            out = self.decoders[tf](parts[tf])
            B, P, _ = out.shape
            out = out.reshape(B, P * self.patch, self.out_channels)
            out = out[:, out.shape[1] - self.lengths[tf] :]
            if self.cfg.residual == "bridge":
                recon[tf] = self.bridge_fill(xs[tf]) + out
            else:
                recon[tf] = out
        embedding = torch.cat([parts[tf].mean(dim=1) for tf in self.timeframes], dim=1)
        return recon, embedding


def _decoder(bottleneck: int, d: int, out: int, zero_last: bool) -> nn.Sequential:
    """bottleneck -> d -> out per token; `zero_last` starts the output at exactly 0."""
    first, last = nn.Linear(bottleneck, d), nn.Linear(d, out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(first, nn.GELU(), last)
