"""Typed configuration of `ztb pretrain` (the Stage-1 masked-reconstruction encoder).

Everything the run needs is here and lands, resolved, in the run's `config.yaml`. Defaults are a
small CPU smoke setup; `configs/pretrain.yaml` documents the GPU settings beside each key.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..config import ZtbModel
from ..data.source import DataSourceConfig
from ..data.splits import SplitConfig
from ..data.synthetic import SyntheticConfig
from ..tensorboard import LoggingConfig

DEFAULT_TIMEFRAMES: tuple[str, ...] = ("M1", "M5", "M15", "H1", "H4", "D")
PRETRAIN_TIMEFRAMES: tuple[str, ...] = ("M1", "M5", "M15", "M30", "H1", "H4", "D")

#: the precision names Lightning's Trainer accepts (checked here, before a run folder exists)
Precision = Literal[
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "64",
    "32",
    "16",
    "bf16",
]


class WindowConfig(ZtbModel):
    timeframes: list[str] = Field(
        list(DEFAULT_TIMEFRAMES),
        min_length=1,
        description="timeframes, finest first; each gets one window right-aligned at the anchor",
    )
    seq_len: int = Field(48, ge=8, le=4096, description="bars per window (all timeframes unless overridden)")
    seq_len_per_tf: dict[str, int] = Field(
        default_factory=lambda: {"D": 16},
        description="per-timeframe override; D defaults to 16 so val/test splits of a few months still hold whole daily windows",
    )
    anchor_stride: int = Field(1, ge=1, description="use every n-th M1 bar as an anchor (1 = all)")

    @field_validator("timeframes")
    @classmethod
    def _known_ordered(cls, v: list[str]) -> list[str]:
        bad = [tf for tf in v if tf not in PRETRAIN_TIMEFRAMES]
        if bad:
            raise ValueError(f"unknown timeframe(s) {bad}; expected some of {list(PRETRAIN_TIMEFRAMES)}")
        order = [PRETRAIN_TIMEFRAMES.index(tf) for tf in v]
        if order != sorted(set(order)):
            raise ValueError(f"timeframes must be unique and finest first, got {v}")
        return v

    @model_validator(mode="after")
    def _overrides_known(self) -> WindowConfig:
        for tf, n in self.seq_len_per_tf.items():
            if tf not in PRETRAIN_TIMEFRAMES:
                raise ValueError(
                    f"seq_len_per_tf: unknown timeframe {tf!r}; expected some of {list(PRETRAIN_TIMEFRAMES)}"
                )
            if not 8 <= n <= 4096:
                raise ValueError(f"seq_len_per_tf.{tf}: expected 8..4096 bars, got {n}")
        return self

    def lengths(self) -> dict[str, int]:
        return {tf: int(self.seq_len_per_tf.get(tf, self.seq_len)) for tf in self.timeframes}


class MaskConfig(ZtbModel):
    ratio: float = Field(0.15, gt=0, lt=0.6, description="target share of masked positions per timeframe")
    min_block: int = Field(5, ge=1, description="shortest masked block (bars)")
    max_block: int = Field(60, ge=1, description="longest masked block (bars; capped by the ratio and the window)")
    val_seed: int = Field(
        20240601, ge=0, description="seed of the fixed validation/test mask set (comparable across runs)"
    )
    val_samples: int = Field(2048, ge=16, description="anchors in the fixed validation/test sets")

    @model_validator(mode="after")
    def _blocks(self) -> MaskConfig:
        if self.max_block < self.min_block:
            raise ValueError(f"max_block ({self.max_block}) must be >= min_block ({self.min_block})")
        return self


class T5Options(ZtbModel):
    init: Literal["random", "pretrained"] = Field(
        "random", description="random: fresh weights; pretrained: load language-model weights (local only)"
    )
    path: str | None = Field(
        None,
        description="local folder with config.json (+ weights for pretrained), or a model id already in the local HF cache",
    )
    patch_len: int = Field(8, ge=1, le=256, description="bars per patch token")
    d_model: int = Field(64, ge=8, description="T5 width when no path is given (random init)")
    d_kv: int = Field(16, ge=4, description="per-head width (random init without path)")
    d_ff: int = Field(128, ge=8, description="feed-forward width (random init without path)")
    num_layers: int = Field(2, ge=1, description="encoder layers (random init without path)")
    num_heads: int = Field(4, ge=1, description="attention heads (random init without path)")
    freeze_epochs: int = Field(
        1, ge=0, description="epochs the backbone stays frozen before unfreezing (staged unfreezing)"
    )
    lr_ratio: float = Field(10.0, ge=1, description="base LR : backbone LR (10 means the backbone learns 10x slower)")


class ModelConfig(ZtbModel):
    backbone: Literal["transformer", "t5"] = Field(
        "transformer", description="shared encoder: a plain Transformer or a T5 encoder"
    )
    d_model: int = Field(64, ge=8, description="token width (transformer backbone)")
    n_heads: int = Field(4, ge=1, description="attention heads (transformer backbone)")
    n_layers: int = Field(2, ge=1, description="encoder layers (transformer backbone)")
    d_ff: int = Field(128, ge=8, description="feed-forward width (transformer backbone)")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout in the encoder (CPU: 0, dropout triples attention cost; GPU: 0.1)"
    )
    stem_kernel: int = Field(5, ge=1, description="kernel of the first CNN stem convolution (odd)")
    bottleneck: int = Field(
        16, ge=2, description="bottleneck width per token; the exported embedding is timeframes x bottleneck"
    )
    residual: Literal["none", "bridge"] = Field(
        "none",
        description="none: decoders output price levels; bridge: they output a correction to the open-aware "
        "bridge fill computed from the visible inputs (the model starts from the strongest simple rule)",
    )
    t5: T5Options = Field(default_factory=T5Options, description="T5 backbone options (backbone: t5)")

    @model_validator(mode="after")
    def _heads(self) -> ModelConfig:
        if self.backbone == "transformer" and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.stem_kernel % 2 == 0:
            raise ValueError(f"stem_kernel must be odd, got {self.stem_kernel}")
        return self


class LossConfig(ZtbModel):
    huber: float = Field(1.0, ge=0, description="weight of the masked Huber loss")
    huber_delta: float = Field(1.0, gt=0, description="Huber delta (normalised units)")
    stft: float = Field(0.1, ge=0, description="weight of the multi-resolution STFT loss (float32)")
    stft_ffts: list[int] = Field([8, 16, 32], min_length=1, description="FFT sizes of the STFT resolutions (hop = n/4)")
    consistency: float = Field(0.1, ge=0, description="weight of the cross-timeframe consistency loss")
    correlation: float = Field(
        0.1, ge=0, description="weight of the amplitude/phase correlation loss on masked returns"
    )
    returns: float = Field(
        0.0, ge=0, description="weight of the MSE of one-step close returns touching masked bars (predict returns)"
    )
    rv_aux: float = Field(
        0.0,
        ge=0,
        description="weight of an auxiliary head forecasting the log realised variance of the next rv_horizons M1 "
        "returns relative to the M1 window's own, from the embedding (0 = no head; needs M1 in window.timeframes)",
    )
    rv_horizons: list[int] = Field([60, 240], min_length=1, description="M1 returns ahead the rv_aux head forecasts")
    consistency_tol: float = Field(
        0.25, gt=0, description="metric: coarse bar matches the fine aggregation within this (coarse-window std units)"
    )

    @field_validator("rv_horizons")
    @classmethod
    def _positive_horizons(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v) or len(set(v)) != len(v):
            raise ValueError(f"rv_horizons must be distinct positive bar counts, got {v}")
        return v


class OptimConfig(ZtbModel):
    lr: float = Field(1e-3, gt=0, description="peak learning rate of the one-cycle schedule")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    pct_start: float = Field(0.1, gt=0, lt=1, description="share of steps spent warming up")
    grad_clip: float = Field(1.0, ge=0, description="gradient-norm clip (0 = off)")
    accumulate: int = Field(1, ge=1, description="gradient accumulation (batches per optimizer step)")


class TrainerOptions(ZtbModel):
    max_steps: int = Field(300, ge=1, description="optimizer steps in total (the one-cycle schedule spans them)")
    batch_size: int = Field(32, ge=1, description="windows per batch (per device)")
    epoch_steps: int = Field(
        100, ge=1, description="optimizer steps per epoch: validation, checkpoint and T5 unfreezing happen per epoch"
    )
    val_batches: int = Field(8, ge=1, description="validation batches per check (fixed masks)")
    precision: Precision = Field("32-true", description="32-true | bf16-mixed (CPU and recent GPUs) | 16-mixed (CUDA)")
    accelerator: str = Field("auto", description="auto | cpu | gpu")
    devices: int | str = Field(1, description="devices per node; >1 uses DDP")
    num_nodes: int = Field(1, ge=1, description="nodes (DDP over torchrun/SLURM)")
    strategy: str = Field("auto", description="auto | ddp | ddp_find_unused_parameters_true ...")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0 = main process)")
    prefetch_factor: int = Field(4, ge=1, description="batches each worker prepares ahead (workers > 0)")
    persistent_workers: bool = Field(True, description="keep workers between epochs (workers > 0)")
    save_top_k: int = Field(2, ge=0, description="best checkpoints kept by val loss (plus last.ckpt)")
    log_every: int = Field(10, ge=1, description="write train metrics every n optimizer steps")


class PretrainConfig(ZtbModel):
    default_file: ClassVar[str] = "pretrain.yaml"

    seed: int = Field(0, ge=0, description="seed for initialisation, batch order and training masks")
    data: DataSourceConfig = Field(
        default_factory=lambda: DataSourceConfig(synthetic=SyntheticConfig(n_bars=400_000, signal_strength=0.3)),
        description="M1 bars to pretrain on",
    )
    splits: SplitConfig = Field(
        default_factory=SplitConfig,
        description="chronological split of anchors (embargo in M1 bars, on top of the automatic no-straddle rule)",
    )
    window: WindowConfig = Field(default_factory=WindowConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerOptions = Field(default_factory=TrainerOptions)
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="optional extra log writers")
    cache_dir: str | None = Field(
        None, description="window-index / statistics cache; none = <artifacts>/cache/pretrain"
    )

    @model_validator(mode="after")
    def _rv_head_needs_m1(self) -> PretrainConfig:
        if self.loss.rv_aux > 0 and "M1" not in self.window.timeframes:
            raise ValueError(
                f"loss.rv_aux > 0 forecasts M1 realised variance from the M1 window: add M1 to window.timeframes "
                f"(got {list(self.window.timeframes)}) or set loss.rv_aux=0"
            )
        return self
