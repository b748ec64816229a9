"""`TrainConfig`: everything `ztb train` needs, loaded from `configs/train.yaml`.

Keys split into two groups for resuming: those that change what the agent learns or sees
(`INCOMPATIBLE_PREFIXES`: data, features, forecast, splits, env, ppo, seed, encoder) refuse a resume when
they differ from the run's recorded config; the rest (total steps, checkpoint cadence,
evaluation, supervision, watch thresholds) may change between sessions of one run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..config import Flags, Resolved, ZtbModel, apply_overrides, resolve_config, set_dotted, validate_config
from ..data.source import DataSourceConfig
from ..data.splits import SplitConfig
from ..data.stream import StreamConfig
from ..errors import ConfigError
from ..evaluation.config import VolSizingConfig
from ..tensorboard import LoggingConfig
from ..trading_costs import CostConfig

#: dotted prefixes whose change makes an existing checkpoint meaningless for this config
INCOMPATIBLE_PREFIXES: tuple[str, ...] = (
    "data.",
    "features",
    "forecast.",
    "splits.",
    "env.",
    "ppo.",
    "seed",
    "encoder.",
)


class RewardConfig(ZtbModel):
    kind: Literal["log_return", "log_return_drawdown"] = Field(
        "log_return",
        description="log_return: change in log equity net of costs; "
        "log_return_drawdown: the same minus drawdown_penalty * increase in drawdown",
    )
    drawdown_penalty: float = Field(
        0.0, ge=0, le=100, description="weight of the drawdown increase (log_return_drawdown only)"
    )
    scale: float = Field(
        1.0, gt=0, le=1e6, description="multiplies every reward (VecNormalize rescales anyway when norm_reward is on)"
    )
    turnover_penalty: float = Field(
        -0.75,
        ge=-1,
        le=100,
        description="training-only shaping: the reward also loses this many times the step's trading cost, so it "
        "sees 1 + this times the cost; negative down to -1 lets it see less than the whole cost, which the discount "
        "needs when it counts only the first few bars of a position's payoff but all of its cost (equity, "
        "evaluation and the reported P&L are unaffected; `ep_penalty_mean` in the train metrics). The default -0.75 (a "
        "quarter of the cost) is what makes PPO learn a band on the forecast (docs/rl-experiments.md, 'PPO that learns a band')",
    )


class EnvConfig(ZtbModel):
    lookback: int = Field(
        1, ge=1, le=4096, description="bars of features in each observation window (1: the forecast summarises them)"
    )
    actions: Literal["discrete", "target", "change"] = Field(
        "discrete",
        description="discrete: pick one of `positions`; change: hold, one rung up or one rung down the sorted "
        "`positions`; target: a continuous target in [-max_position, max_position] (ztb_core.rl.actions)",
    )
    positions: list[float] = Field(
        [0.0, 1.0, -1.0],
        min_length=2,
        description="discrete actions: the target position of each (flat, long, short); change actions: the rungs",
    )
    max_position: float = Field(
        1.0, gt=0, le=10, description="target actions: largest absolute position (fraction of equity)"
    )
    no_trade_band: float = Field(
        0.0,
        ge=0,
        le=20,
        description="target actions: a target within this distance of the position held keeps it (no trade), "
        "so exploring around the current position costs nothing; 0 = every change trades",
    )
    costs: CostConfig = Field(
        default_factory=CostConfig, description="fee, spread and slippage per unit of position changed"
    )
    reward: RewardConfig = Field(default_factory=RewardConfig, description="reward definition")
    episode_length: int = Field(2048, ge=1, le=10_000_000, description="steps before an episode is truncated")
    equity_floor: float = Field(
        0.5, gt=0, lt=1, description="an episode terminates when equity falls below this fraction of its start"
    )

    @model_validator(mode="after")
    def _positions_bounded(self) -> EnvConfig:
        if any(abs(p) > 10 for p in self.positions):
            raise ValueError("env.positions must lie within [-10, 10] (fractions of equity)")
        if self.actions == "change" and len(set(self.positions)) < 2:
            raise ValueError("env.positions: change actions need at least two different rungs")
        return self


class NormalizeConfig(ZtbModel):
    enabled: bool = Field(
        True, description="wrap the environments in VecNormalize (statistics are saved in every checkpoint)"
    )
    norm_obs: bool = Field(True, description="normalise observations with running mean/variance")
    norm_reward: bool = Field(True, description="scale rewards by the running std of discounted returns")
    clip_obs: float = Field(10.0, gt=0, description="clip normalised observations to +/- this")
    clip_reward: float = Field(10.0, gt=0, description="clip normalised rewards to +/- this")
    stats_from_data: bool = Field(
        True,
        description="start the observation statistics at the train split's feature mean/variance instead of "
        "SB3's prior (variance 1), which swamps features of variance ~1e-8 for the first ~1e5 samples",
    )
    epsilon: float = Field(
        1e-12,
        gt=0,
        le=1e-2,
        description="added to the running variance before dividing (SB3 default 1e-8 shrinks raw-return "
        "features, whose variance is ~1e-8, towards 0)",
    )


class PPOConfig(ZtbModel):
    policy: Literal["MlpPolicy"] = Field("MlpPolicy", description="stable-baselines3 policy class")
    n_envs: int = Field(16, ge=1, le=256, description="parallel environment copies")
    vec_env: Literal["dummy", "subproc"] = Field(
        "dummy", description="dummy: all envs in this process (fastest for a cheap env); subproc: one process each"
    )
    learning_rate: float = Field(3e-4, gt=0, le=1, description="Adam learning rate (initial, see lr_schedule)")
    lr_schedule: Literal["constant", "linear"] = Field(
        "linear",
        description="constant, or linear decay to 0 over the steps the run really trains (total_timesteps rounded up to "
        "whole rollouts; never below 0), like RL Zoo's lin_ schedules",
    )
    n_steps: int = Field(
        2048, ge=2, description="steps per env per rollout (rollout = n_steps * n_envs; docs/rl-experiments.md)"
    )
    batch_size: int = Field(
        256,
        ge=2,
        description="minibatch size (256: with a 2,113-wide observation, 64-sample minibatches spend most time in per-batch overhead)",
    )
    n_epochs: int = Field(10, ge=1, le=100, description="optimisation epochs per rollout")
    gamma: float = Field(
        0.9, gt=0, le=1, description="discount factor (0.9: a ~10-bar horizon, the signal's; docs/rl-experiments.md)"
    )
    gae_lambda: float = Field(0.9, ge=0, le=1, description="GAE lambda")
    clip_range: float = Field(0.2, gt=0, le=1, description="PPO clip range (initial, see clip_schedule)")
    clip_schedule: Literal["constant", "linear"] = Field(
        "constant", description="constant, or linear decay to 0 over the run's steps (as lr_schedule)"
    )
    target_kl: float | None = Field(
        0.02, gt=0, le=1, description="stop an update's epochs early when the approximate KL exceeds 1.5x this"
    )
    ent_coef: float = Field(0.0, ge=0, le=1, description="entropy bonus")
    vf_coef: float = Field(0.5, ge=0, le=10, description="value-loss weight")
    max_grad_norm: float = Field(0.5, gt=0, description="gradient clipping norm")
    net_arch: list[int] = Field([64, 64], min_length=1, description="hidden layer sizes of the policy and value MLPs")
    activation: Literal["tanh", "relu"] = Field("tanh", description="hidden activation")
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig, description="VecNormalize settings")
    torch_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="torch intra-op threads (0 = torch default); 1 is fastest for small MLPs on few cores",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="where the policy runs; small MLPs are faster on CPU"
    )


class CheckpointConfig(ZtbModel):
    every_steps: int = Field(
        10_000, ge=1, description="save a checkpoint at the first rollout boundary after each multiple of this"
    )
    keep_last: int = Field(5, ge=1, le=1000, description="newest checkpoints kept (plus the best by evaluation)")
    keep_best: bool = Field(True, description="also keep the checkpoint with the best validation Sharpe")
    compression_level: int = Field(
        3, ge=1, le=22, description="zstd level (1-3 are fast; higher gains little on float weights)"
    )
    max_pending: int = Field(1, ge=1, le=4, description="saves allowed in flight on the background thread")
    when_busy: Literal["wait", "skip"] = Field(
        "wait", description="when max_pending saves are in flight: wait for one, or skip this checkpoint"
    )


class PeriodicEvalConfig(ZtbModel):
    every_steps: int = Field(
        50_000, ge=0, description="evaluate on the validation split every this many steps (0 = never)"
    )
    split: Literal["val", "test"] = Field(
        "val", description="split used for periodic evaluation (keep test for the end)"
    )
    max_bars: int | None = Field(
        None,
        ge=100,
        description="evaluate on at most the first this many bars of the split (null = all of it: the best "
        "checkpoint is then chosen on the same bars whose standard error the reports quote)",
    )
    deterministic: bool = Field(True, description="greedy actions during evaluation")
    compare_resamples: int = Field(
        500,
        ge=50,
        le=100_000,
        description="bootstrap resamples of the paired Sharpe difference between the agent and the strongest "
        "baseline at each evaluation: summaries say beats / matches / behind from its 95% interval",
    )
    allow_test_split: bool = Field(
        False,
        description="permit split: test (checkpoints are then chosen on the test split, which stops being out of "
        "sample; every evaluation row and report says so)",
    )

    @model_validator(mode="after")
    def _test_split_needs_consent(self) -> PeriodicEvalConfig:
        if self.split == "test" and not self.allow_test_split:
            raise ValueError(
                "split: test makes training choose checkpoints on the test split, so no later number on it is "
                "out of sample; use val, or set eval.allow_test_split: true to do it anyway (stamped on every report)"
            )
        return self


class SupervisorConfig(ZtbModel):
    backoff_s: float = Field(2.0, ge=0, le=3600, description="wait before the first restart; doubles after each crash")
    backoff_max_s: float = Field(120.0, ge=0, le=86_400, description="cap on the wait between restarts")
    max_crashes: int = Field(
        5, ge=1, le=1000, description="give up (state fatal) after this many crashes within crash_window_s"
    )
    crash_window_s: float = Field(1800.0, gt=0, description="window in which crashes are counted")


class WatchConfig(ZtbModel):
    """Defaults for `ztb watch`; the environment variables ZTB_WATCH_* override them."""

    stall_min: float = Field(
        10.0, gt=0, description="alert when the step has not moved for this many minutes (ZTB_WATCH_STALL_MIN)"
    )
    rss_mb: float = Field(
        16_384.0, ge=0, description="alert above this process-tree RSS in MiB, 0 = off (ZTB_WATCH_RSS_MB)"
    )
    vram_mb: float = Field(0.0, ge=0, description="alert above this process VRAM in MiB, 0 = off (ZTB_WATCH_VRAM_MB)")
    cpu_pct: float = Field(
        0.0, ge=0, description="alert above this CPU percent (100 = one core), 0 = off (ZTB_WATCH_CPU_PCT)"
    )
    mem_pct: float = Field(
        92.0, ge=0, le=100, description="alert above this system memory percent, 0 = off (ZTB_WATCH_MEM_PCT)"
    )


class EncoderConfig(ZtbModel):
    """The Stage-1 encoder hand-off (an export of `ztb pretrain`: its `encoder/encoder.pt`, that
    folder, or the pretrain run folder)."""

    path: str | None = Field(None, description="exported Stage-1 encoder (none = off)")
    mode: Literal["frozen", "finetune"] = Field(
        "frozen",
        description="frozen: embeddings precomputed once per bar and appended to the features (PPO keeps its "
        "speed); finetune: the encoder runs inside the policy on per-timeframe raw windows and PPO "
        "trains its weights (a transformer in PPO's loop: tens of steps/s on CPU with the default "
        "pretrain architecture; see benchmarks/bench_train.py --encoder)",
    )
    lr_scale: float = Field(
        0.1,
        gt=0,
        le=10,
        description="finetune: the encoder's learning rate = ppo.learning_rate * this "
        "(small, so PPO's noisy gradients do not wipe the pretraining)",
    )


class ForecastConfig(ZtbModel):
    """A supervised forecast the policy sees, alone or beside the features (`ztb_core.rl.forecast`)."""

    kind: Literal["none", "ridge"] = Field(
        "ridge",
        description="none: the features alone; ridge: ridge regression of the next bar's return on the features, "
        "fitted on the train split only and given to the policy as one more column (stored in every checkpoint)",
    )
    alpha: float = Field(
        1.0, ge=0, le=1e6, description="ridge penalty, relative to the features' correlation matrix (0 = least squares)"
    )
    only: bool = Field(
        True,
        description="true: the policy sees the forecast column alone (and the position held), not the features "
        "it is computed from; false: the features and the forecast. Eval and live still pass the plain features. "
        "With kind none there is no forecast and the policy sees the features (docs/rl-experiments.md, "
        "'PPO that learns a band' and 'The forecast band becomes the default')",
    )
    clip_quantile: float | None = Field(
        0.999,
        gt=0.5,
        lt=1,
        description="clip the forecast column at this quantile of its absolute value on the train split (the "
        "bound is stored in every checkpoint, so eval and live clip alike; weekend gaps and news minutes otherwise "
        "reach 20-30 spreads); null = no clip. How often it fires: `forecast_clipped` in the evaluation rows",
    )
    horizons: list[int] = Field(
        default_factory=list,
        description="longer horizons, in bars: one more column each, the ridge forecast of the summed return of the "
        "next h bars (same features, own spread and clip). [] = the one-bar forecast alone. A one-bar forecast cannot "
        "tell a fast reversal from a slow trend; a horizon column carries the slow one (docs/known-optimum.md)",
    )

    vol_horizons: list[int] = Field(
        default_factory=list,
        description="horizons, in bars: one more column each, the ridge forecast of the log realised variance (mean "
        "squared bar return) of the next h bars, centred on its train mean, in units of its own spread. A market "
        "whose best band width changes with its volatility regime needs it (docs/known-optimum.md, known_regime)",
    )

    @field_validator("horizons", "vol_horizons")
    @classmethod
    def _horizons_increase(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if any(h < 2 or h > 10_000 for h in v) or v != sorted(set(v)):
            raise ValueError(f"forecast.{info.field_name} must be increasing bar counts from 2 to 10000, got {v}")
        return v


class TrainVolSizingConfig(VolSizingConfig):
    """`ztb eval`'s volatility-sizing settings, applied when training starts: the forecaster they
    describe is fitted on the train split and stored in every checkpoint for `ztb live`."""

    enabled: bool = Field(
        True,
        description="fit the volatility forecaster on the train split and store it in every checkpoint "
        "(false: checkpoints carry none and live sizes on realised volatility)",
    )


class TrainConfig(ZtbModel):
    default_file: ClassVar[str] = "train.yaml"

    total_timesteps: int = Field(1_000_000, ge=1, description="steps to train in total (rounded up to whole rollouts)")
    seed: int = Field(0, ge=0, description="seed for torch, numpy and the environments")
    warm_start: str | None = Field(
        None,
        description="start a new run from another run's policy weights: a train run (id or folder: its best "
        "checkpoint by validation) or a checkpoint file; steps, optimizer and observation statistics are the "
        "new run's own. Ignored when resuming (the run's own checkpoint is loaded)",
    )
    data: DataSourceConfig = Field(default_factory=lambda: _demo_market(), description="where the M1 bars come from")
    features: str = Field("technical-66", description="feature set (ztb_core.data.features)")
    forecast: ForecastConfig = Field(
        default_factory=ForecastConfig, description="supervised forecast appended to the features"
    )
    vol_sizing: TrainVolSizingConfig = Field(
        default_factory=TrainVolSizingConfig,
        description="volatility-targeted sizing fitted on the train split and stored in every checkpoint "
        "(what `ztb live` sizes with); it does not change what the agent learns",
    )
    streaming: StreamConfig = Field(
        default_factory=StreamConfig, description="train on bars streamed through a bounded ring buffer"
    )
    encoder: EncoderConfig = Field(
        default_factory=EncoderConfig, description="optional Stage-1 encoder, frozen or fine-tuned"
    )
    splits: SplitConfig = Field(
        default_factory=lambda: SplitConfig(embargo=240),
        description="chronological train/val/test split of the valid rows",
    )
    env: EnvConfig = Field(default_factory=EnvConfig, description="trading environment")
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="PPO hyper-parameters")
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="checkpoint cadence, retention, compression"
    )
    eval: PeriodicEvalConfig = Field(default_factory=PeriodicEvalConfig, description="periodic evaluation")
    supervisor: SupervisorConfig = Field(
        default_factory=SupervisorConfig, description="restart policy of `ztb supervise`"
    )
    watch: WatchConfig = Field(default_factory=WatchConfig, description="alert thresholds for `ztb watch`")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="optional extra log writers")
    telemetry_interval_s: float = Field(
        5.0, gt=0, le=3600, description="seconds between resource samples (metrics split `sys`)"
    )
    log_interval_s: float = Field(
        30.0, gt=0, le=3600, description="seconds between `step N/total  fps` lines in the run's log"
    )

    @model_validator(mode="after")
    def _batch_fits_rollout(self) -> TrainConfig:
        rollout = self.ppo.n_steps * self.ppo.n_envs
        if self.ppo.batch_size > rollout:
            raise ValueError(f"ppo.batch_size ({self.ppo.batch_size}) must be <= ppo.n_steps * ppo.n_envs ({rollout})")
        return self

    @property
    def rollout_steps(self) -> int:
        return self.ppo.n_steps * self.ppo.n_envs

    def rounded_total(self) -> int:
        """The step count a run really ends at: the total rounded up to whole rollouts."""
        r = self.rollout_steps
        return -(-self.total_timesteps // r) * r


#: the demo market's planted signal: weak (3 % of the return variance, 14-bar half-life). At the
#: default costs (seed 0, all DEMO_MARKET_BARS bars: `ztb_core.data.synthetic.signal_ceiling`,
#: checked by tests/data/test_synthetic.py) a trader who knows it reaches a net Sharpe of about
#: DEMO_SIGNAL_CEILING, and the best filter of past prices alone, knowing the market's true
#: parameters, about DEMO_PRICE_CEILING: the realistic ceiling for an agent, since the signal is
#: buried in 97 % noise. The signal adds ~+0.03 to the lag-1 autocorrelation; a stronger quote
#: bounce than the signal-free default (0.045 vs 0.015) keeps the total at USD/JPY's -0.024.
DEMO_SIGNAL = {"signal_strength": 0.03, "signal_persistence": 0.95, "bounce": 0.045}
DEMO_SIGNAL_CEILING = 32.0
DEMO_PRICE_CEILING = 9.5
#: about 80 weeks of FX minutes. Long enough that each 15 % split (~89,000 bars) measures an
#: annualised Sharpe to +-2.0 (one SE), not the +-3.6 of the 200,000 bars it used to have: on those
#: even the best filter of past prices could not be told from an SMA crossover on the test split
#: (docs/rl-experiments.md, "The forecast band becomes the default")
DEMO_MARKET_BARS = 600_000


def _demo_market() -> DataSourceConfig:
    """The default market: synthetic bars calibrated to USD/JPY M1 with a weak learnable signal,
    so a run with no data of its own has something to learn, but not an easy edge."""
    src = DataSourceConfig()
    return src.model_copy(
        update={"synthetic": src.synthetic.model_copy(update={**DEMO_SIGNAL, "n_bars": DEMO_MARKET_BARS})}
    )


#: keys added after runs were first recorded, with the value every run recorded without them trained
#: with. Their defaults have since changed (the policy now sees the ridge forecast alone),
#: so a run's config.yaml or a checkpoint's state that lacks one must not pick up today's default.
RECORDED_BEFORE_KEY_EXISTED: dict[str, Any] = {
    "forecast.kind": "none",
    "forecast.only": False,
    "forecast.clip_quantile": None,
}


def complete_recorded(recorded: dict) -> dict:
    """A recorded train config (a run's config.yaml, a checkpoint's state) with the keys it predates
    set to what the run trained with; the input is not modified."""
    out = copy.deepcopy(recorded)
    for dotted, value in RECORDED_BEFORE_KEY_EXISTED.items():
        try:
            set_dotted(out, dotted, value, source="recorded config", keep_existing=True)
        except ConfigError:
            pass  # a malformed section: validation names it
    return out


def recorded_train_config(recorded: dict, source: str, overrides: Iterable[str] = ()) -> TrainConfig:
    """Validate a recorded train config (see `complete_recorded`), with `--set` overrides on top."""
    data, touched = apply_overrides(complete_recorded(recorded), list(overrides))
    return validate_config(TrainConfig, data, source=source, overridden=touched)


def resolve_recorded_config(
    path: str | Path, overrides: Iterable[str] = (), flags: Flags | None = None
) -> Resolved[TrainConfig]:
    """A run's config.yaml as the run trained (no bundled defaults under it: the keys it predates
    get what it trained with), with `--set` overrides and flags on top."""
    return resolve_config(TrainConfig, path, overrides, flags, defaults=False, fill=complete_recorded)


def load_recorded_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """A run's config.yaml as the run trained, with `--set` overrides on top."""
    return resolve_recorded_config(path, overrides).config
