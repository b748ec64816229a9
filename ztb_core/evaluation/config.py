"""Typed evaluation config (`configs/eval.yaml`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..config import ZtbModel


class SharpeConfig(ZtbModel):
    n_trials: int = Field(
        1,
        ge=1,
        le=1_000_000,
        description="trials the DSR deflates for when the model has no trial registry (a loose checkpoint "
        "file); a run's registry is used otherwise, and --n-trials overrides both",
    )
    trial_sharpe_variance: float | None = Field(
        None,
        ge=0,
        description="variance of the trials' annualised Sharpe ratios; null = the sampling variance of this Sharpe (all trials skill-less)",
    )
    psr_benchmark_sharpe: float = Field(0.0, ge=-10, le=10, description="annualised Sharpe the PSR tests against")


class BootstrapConfig(ZtbModel):
    method: Literal["stationary", "circular", "non_overlapping"] = Field(
        "stationary",
        description="stationary (random block lengths), circular (overlapping fixed blocks) or non_overlapping (fixed blocks at multiples of the length)",
    )
    n_resamples: int = Field(1000, ge=10, le=100_000, description="bootstrap resamples")
    block_length: float | None = Field(
        None, ge=1, description="mean/fixed block length in bars; null = Politis-White optimal length"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="two-sided confidence level of every interval")


class MonteCarloConfig(ZtbModel):
    n_paths: int = Field(2000, ge=100, le=1_000_000, description="simulated paths")
    horizon_days: float = Field(
        5.0, gt=0, le=3650, description="risk horizon in trading days (bars = days x bars a day)"
    )
    levels: list[float] = Field([0.95, 0.99], min_length=1, description="VaR/CVaR confidence levels")
    drawdown_thresholds: list[float] = Field(
        [0.05, 0.10, 0.20], min_length=1, description="drawdown fractions whose exceedance probability is reported"
    )

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if any(not 0.5 < a < 1.0 for a in v):
            raise ValueError("levels must lie strictly between 0.5 and 1")
        return v

    @field_validator("drawdown_thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < t < 1.0 for t in v):
            raise ValueError("drawdown thresholds must be fractions strictly between 0 and 1")
        return v


class BaselineConfig(ZtbModel):
    sma_fast: int = Field(20, ge=1, description="fast SMA window (bars)")
    sma_slow: int = Field(100, ge=2, description="slow SMA window (bars)")
    sma_allow_short: bool = Field(True, description="short when fast < slow (else flat)")
    random_seeds: int = Field(100, ge=2, le=10_000, description="random-policy seeds (a distribution, not one draw)")
    random_levels: list[float] = Field(
        [-1.0, 0.0, 1.0], min_length=1, description="positions a random policy draws from"
    )
    random_switch_prob: float | None = Field(
        None, gt=0, le=1, description="chance a random policy changes position each bar; null = the agent's own rate"
    )
    ridge: bool = Field(True, description="score a ridge regression on the agent's features (needs the train split)")
    ridge_alphas: list[float] = Field(
        [0.01, 0.1, 1.0], min_length=1, description="ridge penalties tried (relative to the feature correlations)"
    )
    ridge_bands: list[float] = Field(
        [0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
        min_length=1,
        description="hysteresis bands tried, in standard deviations of the train forecasts",
    )

    @field_validator("ridge_alphas", "ridge_bands")
    @classmethod
    def _ridge_nonneg(cls, v: list[float]) -> list[float]:
        if any(not x >= 0 for x in v):
            raise ValueError("ridge alphas and bands must be >= 0")
        return v

    @model_validator(mode="after")
    def _windows(self) -> BaselineConfig:
        if self.sma_fast >= self.sma_slow:
            raise ValueError(f"sma_fast ({self.sma_fast}) must be smaller than sma_slow ({self.sma_slow})")
        return self


class CostSensitivityConfig(ZtbModel):
    fee_bps_grid: list[float] = Field(
        [0.0, 0.5, 1.0, 2.0, 5.0, 10.0],
        min_length=1,
        description="fees per side (bps) to re-price the agent's trades at",
    )
    slippage_bps_grid: list[float] = Field(
        [0.0, 0.5, 1.0, 2.0], min_length=1, description="slippage per side (bps) to re-price at"
    )
    curve_points: int = Field(25, ge=3, le=500, description="points on the cost-sensitivity curve")

    @field_validator("fee_bps_grid", "slippage_bps_grid")
    @classmethod
    def _nonneg(cls, v: list[float]) -> list[float]:
        if any(x < 0 for x in v):
            raise ValueError("costs must be >= 0 bps")
        return v


class RobustnessConfig(ZtbModel):
    episodes: int = Field(
        1, ge=1, le=100, description="evaluation episodes, each starting at a later bar (start-offset sensitivity)"
    )
    max_start_offset_fraction: float = Field(
        0.25, ge=0, lt=1, description="latest episode start, as a fraction of the split"
    )


class ReportConfig(ZtbModel):
    curve_points: int = Field(
        2000, ge=10, le=100_000, description="points kept of the equity/drawdown curve in the report"
    )
    histogram_bins: int = Field(60, ge=5, le=1000, description="bins of the return and bootstrap-Sharpe histograms")
    plots: bool = Field(True, description="write PNG pictures beside the JSON and Markdown")


class VolSizingConfig(ZtbModel):
    enabled: bool = Field(
        True, description="report each policy at constant size and volatility-targeted (Moreira & Muir 2017)"
    )
    horizon: int = Field(
        60, ge=1, le=1440, description="M1 bars ahead whose realised variance the HAR + seasonality forecaster predicts"
    )
    cap: float = Field(
        2.0, gt=1.0, le=10.0, description="largest scale (a quiet market must not lever up without bound); > 1"
    )
    band: float = Field(
        0.25,
        ge=0.0,
        le=5.0,
        description="rebalancing band: the applied scale is kept until the forecast's scale moves more than this "
        "fraction away from it (or the policy's position changes); 0 = resize every bar",
    )


class EvalVolSizingConfig(VolSizingConfig):
    """`ztb eval`'s volatility sizing: by default the forecaster the checkpoint carries (what `ztb
    live` sizes with), otherwise one fitted here with these settings."""

    source: Literal["checkpoint", "fit"] = Field(
        "checkpoint",
        description="checkpoint: size with the forecaster stored in the checkpoint (fitted on its train split when "
        "training started; horizon, cap and band are then the checkpoint's), fitting one here only for a "
        "checkpoint without one; fit: always fit one on the train split with the settings below",
    )


class EvalConfig(ZtbModel):
    """Everything `ztb eval` and `evaluate_positions` need besides the model and the data."""

    default_file: ClassVar[str | None] = "eval.yaml"

    split: Literal["train", "val", "test", "all"] = Field(
        "test", description="chronological split to evaluate on; all = every valid row (a holdout period, whole)"
    )
    seed: int = Field(0, ge=0, description="seed of every random draw (bootstrap, Monte Carlo, random policy)")
    sharpe: SharpeConfig = SharpeConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    monte_carlo: MonteCarloConfig = MonteCarloConfig()
    baselines: BaselineConfig = BaselineConfig()
    cost_sensitivity: CostSensitivityConfig = CostSensitivityConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    report: ReportConfig = ReportConfig()
    vol_sizing: EvalVolSizingConfig = EvalVolSizingConfig()
