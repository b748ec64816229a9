"""A picture of a stored dataset: close price with its gaps marked, and daily realised volatility.

Two panels sharing the time axis (matplotlib, Agg backend):
  * close price, down-sampled to at most `max_points` points for drawing; gaps longer than the
    market's normal quiet pause shaded grey (market closed: FX weekends, maintenance windows) or
    red (unexpected), as `validate.classify_gaps` classifies them;
  * daily realised volatility, sqrt(sum of squared M1 log returns) per trading day (FX days close
    at 17:00 New York, crypto at 00:00 UTC), in percent. Returns across a gap longer than the quiet
    pause are left out, so a weekend's reopening jump is not counted as Monday's volatility.

Written atomically (temp file + rename): a reader never sees half a PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..atomic import atomic_write_bytes
from .resample import bucket_bounds
from .schema import NS_PER_MINUTE, index_ns
from .validate import ValidationConfig, ValidationReport, classify_gaps


@dataclass(frozen=True)
class GapSpan:
    start_ns: int  # close of the last bar before the gap
    end_ns: int  # open of the first bar after it
    expected: bool


def gap_spans(index: pd.DatetimeIndex, market: str, cfg: ValidationConfig | None = None) -> list[GapSpan]:
    """Every gap longer than the market's quiet pause, flagged expected (market closed) or not."""
    cfg = cfg or ValidationConfig()
    t = index_ns(index)
    if len(t) < 2:
        return []
    quiet = cfg.fx_max_quiet_minutes if market == "fx" else cfg.crypto_max_quiet_minutes
    d = np.diff(t)
    long = np.flatnonzero(d // NS_PER_MINUTE - 1 > quiet)
    unexpected = classify_gaps(index, market, cfg, ValidationReport(source="plot", market=market))
    bad = {pd.Timestamp(g.start).value for g in unexpected}
    return [GapSpan(int(t[i]) + NS_PER_MINUTE, int(t[i + 1]), int(t[i]) + NS_PER_MINUTE not in bad) for i in long]


def daily_realised_vol(
    bars: pd.DataFrame,
    market: str,
    cfg: ValidationConfig | None = None,
    day_close: str | None = None,
    day_tz: str | None = None,
) -> pd.Series:
    """Realised volatility per trading day (fraction, not annualised), indexed by the day's open (UTC)."""
    cfg = cfg or ValidationConfig()
    t = index_ns(bars.index)
    if len(t) < 2:
        return pd.Series(dtype=np.float64)
    r = np.diff(np.log(bars["close"].to_numpy(np.float64)))
    quiet = cfg.fx_max_quiet_minutes if market == "fx" else cfg.crypto_max_quiet_minutes
    keep = (np.diff(t) // NS_PER_MINUTE - 1) <= quiet
    day_open, _ = bucket_bounds(t[1:], "D", market, day_close, day_tz)
    codes, days = pd.factorize(day_open[keep], sort=True)
    var = np.bincount(codes, weights=r[keep] ** 2, minlength=len(days))
    return pd.Series(np.sqrt(var), index=pd.to_datetime(days, utc=True), name="realised_vol")


def _break_at_gaps(close: pd.Series, step: int, quiet: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(times, values) of the drawn points with a NaN after each gap, so the line stops at a gap
    instead of drawing a straight segment across it."""
    t = index_ns(close.index)
    v = close.to_numpy(np.float64)
    cut = np.flatnonzero(np.diff(t) > (step + quiet) * NS_PER_MINUTE) + 1
    times = pd.to_datetime(np.insert(t, cut, t[cut - 1] + NS_PER_MINUTE), utc=True) if len(cut) else close.index
    return times, np.insert(v, cut, np.nan)


def plot_dataset(
    bars: pd.DataFrame,
    path: str | Path,
    *,
    symbol: str,
    market: str,
    cfg: ValidationConfig | None = None,
    day_close: str | None = None,
    day_tz: str | None = None,
    max_points: int = 20_000,
) -> Path:
    """Draw `bars` (M1, canonical schema) to `path` as PNG; returns the path."""
    path = Path(path)
    cfg = cfg or ValidationConfig()
    step = max(1, -(-len(bars) // max_points))  # ceil: at most max_points drawn, shape kept
    close = bars["close"].iloc[::step]
    spans = gap_spans(bars.index, market, cfg)
    vol = daily_realised_vol(bars, market, cfg, day_close, day_tz)

    # matplotlib's object API on the Agg canvas: no pyplot global state or backend switch
    fig = Figure(figsize=(11, 6))
    FigureCanvasAgg(fig)
    ax, axv = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    x, y = _break_at_gaps(close, step, cfg.fx_max_quiet_minutes if market == "fx" else cfg.crypto_max_quiet_minutes)
    ax.plot(x, y, lw=0.7, color="#1f4e79")
    for s in spans:
        ax.axvspan(
            pd.Timestamp(s.start_ns, tz="UTC"),
            pd.Timestamp(s.end_ns, tz="UTC"),
            lw=0,
            color="0.85" if s.expected else "#d62728",
            alpha=0.6 if s.expected else 0.35,
        )
    bad = [pd.Timestamp(s.start_ns, tz="UTC") for s in spans if not s.expected]
    if bad:  # a marker as well: a short outage is thinner than a pixel on a years-long axis
        ax.plot(bad, [0.97] * len(bad), "v", color="#d62728", ms=6, transform=ax.get_xaxis_transform())
    ax.legend(
        handles=[
            Patch(color="0.85", label=f"market closed ({len(spans) - len(bad)})"),
            Patch(color="#d62728", alpha=0.35, label=f"unexpected gap ({len(bad)})"),
        ],
        loc="best",
        fontsize=8,
        framealpha=0.8,
    )
    first, last = bars.index[0], bars.index[-1]
    ax.set_title(f"{symbol} M1 close ({market}), {first:%Y-%m-%d} to {last:%Y-%m-%d}, {len(bars):,} bars")
    ax.set_ylabel("close")
    ax.grid(alpha=0.3)
    if len(vol):
        axv.bar(vol.index, vol.to_numpy() * 100.0, width=0.9, color="#ff7f0e", align="edge")
    axv.set_ylabel("daily realised\nvol (%)")
    axv.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
    return path
