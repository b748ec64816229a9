"""A deterministic synthetic market with the stylised facts tests, demos and RL smoke tests need.

Model (per 1-minute bar t, all vectorised; the only recursions are linear AR(1) filters run by
`scipy.signal.lfilter`):

* volatility clustering: log-volatility `h_t` is the sum of two stationary AR(1)s (a
  stochastic-volatility model, the GARCH-like part), a slow one
  `h_t = vol_persistence * h_{t-1} + sqrt(1-p^2) * vol_of_vol * N(0,1)` and a fast one
  (`fast_vol_persistence`, `fast_vol_of_vol`) for the short bursts of real quotes;
* seasonality: volatility times an hour-of-day profile (`hourly_vol`, UTC hours, scaled by
  `intraday_amplitude`) and a day-of-week profile (`weekday_vol`), normalised to unit mean square;
* fat tails: Student-t innovations with `tail_df` degrees of freedom, scaled to unit variance;
* quote bounce: the noise is MA(1), `z_t - bounce * z_{t-1}`, which gives the small negative lag-1
  autocorrelation of real M1 quotes (about `-bounce / (1 + bounce^2)` without a signal);
* a learnable signal: a latent AR(1) `m_t` (persistence `signal_persistence`, unit variance) carries
  a fraction `signal_strength` of each bar's return variance, so returns are autocorrelated
  (about `signal_strength * signal_persistence^k` at lag k) and momentum pays. `signal_ceiling`
  measures how much: the net Sharpe of a trader who knows `m_t` (the best any model can do);
* FX: trading from Sunday 17:00 to Friday 17:00 New York time, a gap return
  (`weekend_gap_vol`) at the Sunday open, and optionally minutes without quotes (`missing_prob`);
  crypto trades 24/7 and reports `volume` and `trades`. FX volume is 0, like HistData.

The defaults are fitted to USD/JPY M1 bid bars of 2016 Jan-Aug (HistData) on per-minute
volatility, robust tail frequencies, |return| autocorrelation at 1, 60 and 1440 minutes, the hourly
and weekday volatility profiles and the lag-1 autocorrelation; not on longer-horizon
autocorrelation (real USD/JPY mean-reverts a little: variance ratio 0.83 at 60 minutes, 0.99 here)
(benchmarks/calibrate_synthetic.py prints both side by side; docs/rl-experiments.md records the
figures). A planted signal adds momentum real USD/JPY does not have. The defaults contain no signal;
`STRONG_SIGNAL` is the preset for fast learning tests. The same seed gives the same bars, bit for bit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.signal import lfilter

from ..config import ZtbModel
from ..errors import DataError
from ..evaluation.baselines import hysteresis
from ..evaluation.calendar import periods_per_year
from ..pnl import bar_returns, position_returns
from .known_optimum import known_market_bars
from .schema import NS_PER_MINUTE, MarketKind, utc_index

NS_PER_DAY = 86_400 * 1_000_000_000
NY_TZ = "America/New_York"

#: USD/JPY M1 2016 Jan-Aug: volatility of each UTC hour relative to the mean (Tokyo fix 00-01 UTC,
#: Tokyo morning 03-04, US data 13:30): measured by benchmarks/calibrate_synthetic.py
USDJPY_HOURLY_VOL = (
    1.11, 1.11, 1.16, 1.79, 1.58, 0.91, 0.91, 0.97, 1.05, 0.90, 0.75, 0.73,
    0.78, 1.23, 1.03, 1.15, 0.90, 0.71, 0.68, 0.81, 0.63, 0.59, 0.70, 0.82,
)  # fmt: skip
#: ... and of each UTC weekday, Monday first (median daily volatility, so one Brexit Friday does not set it)
USDJPY_WEEKDAY_VOL = (0.85, 0.95, 1.0, 1.05, 1.1, 1.0, 0.9)

#: a signal PPO learns within a few thousand steps (tests/rl/test_learning.py); see `preset_overrides`
STRONG_SIGNAL: dict[str, float] = {"signal_strength": 0.5, "signal_persistence": 0.9, "bounce": 0.0}


class SyntheticConfig(ZtbModel):
    """Parameters of the synthetic market (see the module docstring for the model)."""

    kind: Literal["default", "known_ar1", "known_two_speed", "known_regime"] = Field(
        "default",
        description="default: the model below; known_ar1 / known_two_speed / known_regime: a market whose "
        "optimal policy is computed exactly (ztb_core/data/known_optimum.py; uses seed, n_bars, start, "
        "market and base_price only)",
    )
    seed: int = Field(0, ge=0, description="random seed; the same seed gives identical bars")
    n_bars: int = Field(200_000, ge=1, le=50_000_000, description="number of 1-minute bars to generate")
    start: datetime = Field(
        datetime(2020, 1, 5, 22, 0, tzinfo=UTC),
        description="first candidate bar open time (UTC); FX skips to the next open minute",
    )
    market: MarketKind | None = Field(
        None,
        description="fx: Sun 17:00-Fri 17:00 New York with weekend gaps; crypto: 24/7; "
        "null: fx, or the job's data.market when generated for a job (a different value is refused)",
    )

    @property
    def calendar(self) -> MarketKind:
        """The market whose calendar the bars follow."""
        return self.market or "fx"

    base_price: float = Field(100.0, gt=0, description="price at the start")
    bar_vol: float = Field(2.2e-4, gt=0, le=0.1, description="average standard deviation of a 1-minute log return")
    vol_persistence: float = Field(0.999, ge=0, lt=1, description="AR(1) coefficient of log-volatility per minute")
    vol_of_vol: float = Field(0.55, ge=0, le=3, description="stationary standard deviation of log-volatility")
    fast_vol_persistence: float = Field(
        0.9, ge=0, lt=1, description="AR(1) coefficient of a second, fast log-volatility component (bursts)"
    )
    fast_vol_of_vol: float = Field(
        0.5, ge=0, le=3, description="stationary standard deviation of the fast component (0 = none)"
    )
    tail_df: float = Field(
        10.0, gt=2, le=1000, description="Student-t degrees of freedom of return shocks (lower = fatter tails)"
    )
    intraday_amplitude: float = Field(
        1.0, ge=0, le=1, description="strength of the hour-of-day volatility profile (0 = none, 1 = hourly_vol)"
    )
    hourly_vol: list[float] = Field(
        list(USDJPY_HOURLY_VOL),
        min_length=24,
        max_length=24,
        description="relative volatility of each UTC hour 0..23 (default: USD/JPY 2016)",
    )
    weekday_vol: list[float] = Field(
        list(USDJPY_WEEKDAY_VOL),
        min_length=7,
        max_length=7,
        description="relative volatility of each UTC weekday, Monday first (default: USD/JPY 2016)",
    )
    bounce: float = Field(
        0.015,
        ge=0,
        lt=1,
        description="MA(1) coefficient of the return noise: quote bounce, negative lag-1 autocorrelation",
    )
    weekend_gap_vol: float = Field(
        0.002, ge=0, le=0.5, description="FX: standard deviation of the Sunday-open gap log return"
    )
    missing_prob: float = Field(
        0.0, ge=0, lt=1, description="FX: probability that a trading minute has no bar (no quote)"
    )
    signal_strength: float = Field(
        0.0, ge=0, le=1, description="fraction of return variance from a predictable AR(1) component (0 = none)"
    )
    signal_persistence: float = Field(
        0.95, ge=0, lt=1, description="AR(1) coefficient of the predictable component per minute"
    )
    wick_scale: float = Field(
        0.5, ge=0, le=5, description="size of high/low excursions beyond open/close, in bar volatilities"
    )
    volume_scale: float = Field(1.0, gt=0, description="crypto: mean volume per bar at average volatility")


def _fx_open_mask(utc_ns: np.ndarray) -> np.ndarray:
    """True for minutes inside the FX week (Sunday 17:00 .. Friday 17:00 New York)."""
    local = pd.DatetimeIndex(utc_ns).tz_localize("UTC").tz_convert(NY_TZ).tz_localize(None).asi8
    days = local // NS_PER_DAY
    dow = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    minute = (local - days * NS_PER_DAY) // NS_PER_MINUTE
    closed = ((dow == 4) & (minute >= 17 * 60)) | (dow == 5) | ((dow == 6) & (minute < 17 * 60))
    return ~closed


def _timestamps(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    start = pd.Timestamp(cfg.start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    start_ns = start.as_unit("ns").value // NS_PER_MINUTE * NS_PER_MINUTE
    if cfg.calendar == "crypto":
        return start_ns + np.arange(cfg.n_bars, dtype=np.int64) * NS_PER_MINUTE
    keep_rate = 5.0 / 7.0 * (1.0 - cfg.missing_prob)
    out: list[np.ndarray] = []
    have, cursor = 0, start_ns
    while have < cfg.n_bars:  # usually one pass; the margin covers a short request starting on a weekend
        n_cand = int((cfg.n_bars - have) / keep_rate * 1.05) + 3 * 1440
        cand = cursor + np.arange(n_cand, dtype=np.int64) * NS_PER_MINUTE
        keep = _fx_open_mask(cand)
        if cfg.missing_prob > 0:
            keep &= rng.random(n_cand) >= cfg.missing_prob
        chosen = cand[keep][: cfg.n_bars - have]
        out.append(chosen)
        have += len(chosen)
        cursor = int(cand[-1]) + NS_PER_MINUTE
    return np.concatenate(out)


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> np.ndarray:
    """Stationary AR(1) with the given stationary standard deviation."""
    if std == 0:
        return np.zeros(n)
    shocks = rng.standard_normal(n) * (std * np.sqrt(1.0 - phi * phi))
    x0 = rng.standard_normal() * std
    out, _ = lfilter([1.0], [1.0, -phi], shocks, zi=[phi * x0])
    return out


def preset_overrides(preset: dict[str, float], prefix: str = "data.synthetic.") -> list[str]:
    """`--set` strings for a preset such as `STRONG_SIGNAL`."""
    return [f"{prefix}{k}={v}" for k, v in preset.items()]


def _seasonality(cfg: SyntheticConfig, t: np.ndarray) -> np.ndarray:
    """Hour-of-day x weekday volatility multiplier, unit mean square over the bars' calendar."""
    days = t // NS_PER_DAY
    hour = (t - days * NS_PER_DAY) // (60 * NS_PER_MINUTE)
    hourly = 1.0 + cfg.intraday_amplitude * (np.asarray(cfg.hourly_vol) - 1.0)
    weekday = np.asarray(cfg.weekday_vol)[(days + 3) % 7]  # 1970-01-01 was a Thursday; Monday = 0
    season = np.maximum(hourly[hour], 0.05) * weekday
    return season / np.sqrt(np.mean(season**2))


@dataclass(frozen=True)
class _Path:
    t: np.ndarray  # int64 ns open times
    ret: np.ndarray  # within-bar log return (close / open)
    gap: np.ndarray  # log gap into each bar (weekend reopen)
    sigma: np.ndarray  # volatility of each bar
    expected: np.ndarray  # E[ret_{t+1} | signal known at t]: what a trader who knows the signal forecasts


def _simulate(cfg: SyntheticConfig) -> _Path:
    rng = np.random.default_rng(cfg.seed)
    t = _timestamps(cfg, rng)
    n = len(t)

    # volatility: clustered log-vol x seasonality, normalised so E[sigma^2] ~ bar_vol^2
    h = _ar1(rng, n, cfg.vol_persistence, cfg.vol_of_vol) + _ar1(rng, n, cfg.fast_vol_persistence, cfg.fast_vol_of_vol)
    sigma = cfg.bar_vol * _seasonality(cfg, t) * np.exp(h - cfg.vol_of_vol**2 - cfg.fast_vol_of_vol**2)

    # shocks: unit-variance Student-t with quote bounce (MA(1)), plus the predictable component
    z = rng.standard_t(cfg.tail_df, n) * np.sqrt((cfg.tail_df - 2.0) / cfg.tail_df)
    shocks = z.copy()
    if cfg.bounce:
        shocks[1:] -= cfg.bounce * z[:-1]
        shocks /= np.sqrt(1.0 + cfg.bounce**2)
    signal = _ar1(rng, n, cfg.signal_persistence, 1.0)
    s = cfg.signal_strength
    ret = sigma * (np.sqrt(1.0 - s) * shocks + np.sqrt(s) * signal)
    expected = np.zeros(n)
    expected[:-1] = sigma[1:] * np.sqrt(s) * cfg.signal_persistence * signal[:-1]

    # FX weekend (and any multi-hour closure): a gap between the last close and the next open
    gap = np.zeros(n)
    if cfg.calendar == "fx" and n > 1:
        reopen = np.flatnonzero(np.diff(t) > 6 * 60 * NS_PER_MINUTE) + 1
        gap[reopen] = rng.standard_normal(len(reopen)) * cfg.weekend_gap_vol
    return _Path(t, ret, gap, sigma, expected)


def generate_market(cfg: SyntheticConfig) -> pd.DataFrame:
    """M1 bars (canonical schema) for the configured synthetic market, deterministic per seed."""
    if not isinstance(cfg, SyntheticConfig):
        raise DataError(f"generate_market expects a SyntheticConfig, got {type(cfg).__name__}")
    if cfg.kind != "default":
        times = _timestamps(cfg, np.random.default_rng(cfg.seed))
        return known_market_bars(cfg.kind, cfg.seed, times, cfg.base_price, cfg.calendar == "crypto")
    path = _simulate(cfg)
    rng = np.random.default_rng([cfg.seed, 1])  # wicks and volume: a stream apart from the path's
    t, ret, gap, sigma, n = path.t, path.ret, path.gap, path.sigma, len(path.t)
    log_close = np.log(cfg.base_price) + np.cumsum(gap + ret)
    close = np.exp(log_close)
    open_ = np.exp(log_close - ret)
    wick_hi = np.abs(rng.standard_normal(n)) * sigma * cfg.wick_scale
    wick_lo = np.abs(rng.standard_normal(n)) * sigma * cfg.wick_scale
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)

    data = {"open": open_, "high": high, "low": low, "close": close}
    if cfg.calendar == "crypto":
        activity = sigma / cfg.bar_vol
        volume = cfg.volume_scale * activity * rng.lognormal(-0.125, 0.5, n)
        data["volume"] = volume
        data["trades"] = np.floor(volume * 20.0 + 1.0)
    else:
        data["volume"] = np.zeros(n)
    cols = ["open", "high", "low", "close", "volume"] + (["trades"] if "trades" in data else [])
    return pd.DataFrame({c: data[c] for c in cols}, index=utc_index(t))


@dataclass(frozen=True)
class SignalCeiling:
    """The best a model can do on this market: a trader who forecasts with the planted signal,
    trading the forecast through the hysteresis band (and the forecast's form: expected return,
    or signal per unit of risk) chosen in hindsight to maximise the net Sharpe."""

    net_sharpe: float  # annualised, after costs
    gross_sharpe: float  # annualised, the same positions before costs
    band_sd: float  # the band, in standard deviations of the forecast
    flips_per_1000: float  # position changes per 1,000 bars


#: what the ceiling's trader is allowed to see: `signal` = the latent signal itself (no model can
#: see it); `prices` = only past bars, filtered optimally with the market's true parameters
CeilingObserves = Literal["signal", "prices"]


def _default_model_only(cfg: SyntheticConfig, what: str) -> None:
    if cfg.kind != "default":
        raise DataError(
            f"{what} describes the default synthetic model; kind {cfg.kind!r} has its own exact optimum "
            f"(ztb_core.rl.dp_optimum)"
        )


def price_filter_gain(cfg: SyntheticConfig) -> float:
    """Steady-state Kalman gain for the latent signal seen through volatility-scaled returns
    `y_t = sqrt(s) m_t + sqrt(1 - s) e_t`, `m_t = phi m_{t-1} + sqrt(1 - phi^2) w_t`."""
    s, phi = cfg.signal_strength, cfg.signal_persistence
    q, r = 1.0 - phi * phi, (1.0 - s) / s  # in units of y / sqrt(s)
    # a scalar state's Riccati equation has a closed-form fixed point: the prior variance p solves
    # p^2 + (r (1 - phi^2) - q) p - q r = 0
    b = r * (1.0 - phi * phi) - q
    prior = (-b + math.sqrt(b * b + 4.0 * q * r)) / 2.0
    return prior / (prior + r)


def _forecasts(cfg: SyntheticConfig, path: _Path, observes: CeilingObserves) -> dict[str, np.ndarray]:
    """Forecasts a ceiling's trader may band: the expected next return and, since a band on it
    trades more when volatility is high, also the signal estimate itself (per unit of risk)."""
    if observes == "signal":
        m = np.zeros(len(path.t))
        m[:-1] = path.expected[:-1] / path.sigma[1:]
        return {"expected_return": path.expected, "signal": m}
    # the optimal linear estimate from past prices alone (given the true volatility): an
    # exponentially weighted momentum of scaled returns, E[m_t | y_1..t] = (1-K) phi E[m_{t-1}] + K y_t
    gain, phi = price_filter_gain(cfg), cfg.signal_persistence
    scaled = path.ret / path.sigma / math.sqrt(cfg.signal_strength)
    m = lfilter([gain], [1.0, -(1.0 - gain) * phi], scaled)
    return {"expected_return": m * path.sigma, "signal": m}


def price_filter_forecasts(cfg: SyntheticConfig) -> pd.DataFrame:
    """The best forecasts from past prices alone (`expected_return`, and `signal`: the estimate
    per unit of risk), for every bar of `generate_market(cfg)` (same index): the reference a model
    of the bars is measured against (`benchmarks/bench_agent_vs_baselines.py`). The filter knows
    the true parameters and volatility, which no model of real data does: an upper reference,
    not a baseline."""
    _default_model_only(cfg, "price_filter_forecasts")
    path = _simulate(cfg)
    if cfg.signal_strength == 0:
        zero = np.zeros(len(path.t))
        return pd.DataFrame({"expected_return": zero, "signal": zero}, index=utc_index(path.t))
    return pd.DataFrame(_forecasts(cfg, path, "prices"), index=utc_index(path.t))


def signal_ceiling(
    cfg: SyntheticConfig,
    cost_rate: float,
    bands: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0),
    observes: CeilingObserves = "signal",
) -> SignalCeiling:
    """Net Sharpe, at `cost_rate` (per unit of position changed, as `CostConfig.rate`) on this
    config's bars, of the trader who knows the signal (`observes="signal"`: no model can beat it)
    or who sees only past prices but knows the market's true parameters (`observes="prices"`: the
    best a model of the bars can hope for; much lower when the signal is a small part of the
    variance of what it sees). Zero signal gives a ceiling of 0 (stays flat)."""
    _default_model_only(cfg, "signal_ceiling")
    path = _simulate(cfg)
    if cfg.signal_strength == 0:
        return SignalCeiling(0.0, 0.0, math.inf, 0.0)
    bars = generate_market(cfg)
    rets = bar_returns(bars["open"].to_numpy(), bars["close"].to_numpy())
    ann = math.sqrt(periods_per_year("M1", cfg.calendar))
    best: SignalCeiling | None = None
    for band, raw in itertools.product(bands, _forecasts(cfg, path, observes).values()):
        pos = hysteresis(raw / raw.std(), band)
        net, _ = position_returns(pos, rets, cost_rate)
        gross, _ = position_returns(pos, rets, 0.0)
        if not net.std() > 0:
            continue  # a band so wide the position never moves off flat: no Sharpe to compare
        sharpe = float(net.mean() / net.std()) * ann
        if best is None or sharpe > best.net_sharpe:
            flips = float(np.count_nonzero(np.diff(pos))) * 1000.0 / len(pos)
            best = SignalCeiling(sharpe, float(gross.mean() / gross.std()) * ann, band, flips)
    assert best is not None
    return best
