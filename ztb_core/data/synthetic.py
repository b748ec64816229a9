"""A deterministic synthetic market with the stylised facts tests, demos and RL smoke tests need.

Model (per 1-minute bar t, all vectorised; the only recursions are linear AR(1) filters run by
`scipy.signal.lfilter`):

* volatility clustering: log-volatility `h_t` is a stationary AR(1) (a stochastic-volatility
  model, the GARCH-like part): `h_t = vol_persistence * h_{t-1} + sqrt(1-p^2) * vol_of_vol * N(0,1)`;
* intraday seasonality: volatility times `1 + intraday_amplitude * cos(2 pi (minute_of_day_utc - peak) / 1440)`
  (normalised to unit mean square), peaking at `intraday_peak_utc` (the London/New York overlap);
* fat tails: Student-t innovations with `tail_df` degrees of freedom, scaled to unit variance;
* a learnable signal: a latent AR(1) `m_t` (persistence `signal_persistence`, unit variance) carries
  a fraction `signal_strength` of each bar's return variance, so returns are autocorrelated
  (lag-1 autocorrelation about `signal_strength * signal_persistence`) and momentum pays;
* FX: trading from Sunday 17:00 to Friday 17:00 New York time, a gap return
  (`weekend_gap_vol`) at the Sunday open, and optionally minutes without quotes (`missing_prob`);
  crypto trades 24/7 and reports `volume` and `trades`. FX volume is 0, like HistData.

The same seed gives the same bars, bit for bit.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.signal import lfilter

from ..config import ZtbModel
from ..errors import DataError
from .schema import NS_PER_MINUTE, MarketKind, utc_index

NS_PER_DAY = 86_400 * 1_000_000_000
NY_TZ = "America/New_York"


class SyntheticConfig(ZtbModel):
    """Parameters of the synthetic market (see the module docstring for the model)."""

    seed: int = Field(0, ge=0, description="random seed; the same seed gives identical bars")
    n_bars: int = Field(200_000, ge=1, le=50_000_000, description="number of 1-minute bars to generate")
    start: datetime = Field(
        datetime(2020, 1, 5, 22, 0, tzinfo=UTC),
        description="first candidate bar open time (UTC); FX skips to the next open minute",
    )
    market: MarketKind = Field("fx", description="fx: Sun 17:00-Fri 17:00 New York with weekend gaps; crypto: 24/7")
    base_price: float = Field(100.0, gt=0, description="price at the start")
    bar_vol: float = Field(1.5e-4, gt=0, le=0.1, description="average standard deviation of a 1-minute log return")
    vol_persistence: float = Field(0.998, ge=0, lt=1, description="AR(1) coefficient of log-volatility per minute")
    vol_of_vol: float = Field(0.5, ge=0, le=3, description="stationary standard deviation of log-volatility")
    tail_df: float = Field(
        4.0, gt=2, le=1000, description="Student-t degrees of freedom of return shocks (lower = fatter tails)"
    )
    intraday_amplitude: float = Field(0.4, ge=0, lt=1, description="strength of the intraday volatility cycle")
    intraday_peak_utc: float = Field(14.0, ge=0, lt=24, description="UTC hour of peak intraday volatility")
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
    if cfg.market == "crypto":
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


def generate_market(cfg: SyntheticConfig) -> pd.DataFrame:
    """M1 bars (canonical schema) for the configured synthetic market, deterministic per seed."""
    if not isinstance(cfg, SyntheticConfig):
        raise DataError(f"generate_market expects a SyntheticConfig, got {type(cfg).__name__}")
    rng = np.random.default_rng(cfg.seed)
    t = _timestamps(cfg, rng)
    n = len(t)

    # volatility: clustered log-vol x intraday cycle, normalised so E[sigma^2] ~ bar_vol^2
    h = _ar1(rng, n, cfg.vol_persistence, cfg.vol_of_vol)
    minute = (t % NS_PER_DAY) // NS_PER_MINUTE
    season = 1.0 + cfg.intraday_amplitude * np.cos(2 * np.pi * (minute - cfg.intraday_peak_utc * 60.0) / 1440.0)
    season /= np.sqrt(1.0 + cfg.intraday_amplitude**2 / 2.0)
    sigma = cfg.bar_vol * season * np.exp(h - cfg.vol_of_vol**2)

    # shocks: unit-variance Student-t plus the predictable component
    shocks = rng.standard_t(cfg.tail_df, n) * np.sqrt((cfg.tail_df - 2.0) / cfg.tail_df)
    signal = _ar1(rng, n, cfg.signal_persistence, 1.0)
    s = cfg.signal_strength
    ret = sigma * (np.sqrt(1.0 - s) * shocks + np.sqrt(s) * signal)

    # FX weekend (and any multi-hour closure): a gap between the last close and the next open
    gap = np.zeros(n)
    if cfg.market == "fx" and n > 1:
        reopen = np.flatnonzero(np.diff(t) > 6 * 60 * NS_PER_MINUTE) + 1
        gap[reopen] = rng.standard_normal(len(reopen)) * cfg.weekend_gap_vol

    log_close = np.log(cfg.base_price) + np.cumsum(gap + ret)
    close = np.exp(log_close)
    open_ = np.exp(log_close - ret)
    wick_hi = np.abs(rng.standard_normal(n)) * sigma * cfg.wick_scale
    wick_lo = np.abs(rng.standard_normal(n)) * sigma * cfg.wick_scale
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)

    data = {"open": open_, "high": high, "low": low, "close": close}
    if cfg.market == "crypto":
        activity = sigma / cfg.bar_vol
        volume = cfg.volume_scale * activity * rng.lognormal(-0.125, 0.5, n)
        data["volume"] = volume
        data["trades"] = np.floor(volume * 20.0 + 1.0)
    else:
        data["volume"] = np.zeros(n)
    cols = ["open", "high", "low", "close", "volume"] + (["trades"] if "trades" in data else [])
    return pd.DataFrame({c: data[c] for c in cols}, index=utc_index(t))
