"""Per-timeframe bar arrays: the `stage1-ohlc` channels pretraining windows are cut from.

For each timeframe (resampled from M1 without look-ahead) every bar carries 6 channels, so the
default 6 timeframes give 36 channels:

    log_open, log_high, log_low, log_close   price levels (normalised per window, RevIN-style)
    log_volume                               log1p(volume) (z-scored with train-only statistics)
    log_gap                                  log of (time since the previous bar's open / nominal
                                             bar length): weekends and missing quotes

Levels, not returns, are reconstructed: a return channel at the first visible bar after a masked
span would reveal the last masked close and leak it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.resample import resample
from ..data.schema import NS_PER_MINUTE, TIMEFRAME_MINUTES, index_ns
from ..errors import DataError

CHANNELS: tuple[str, ...] = ("log_open", "log_high", "log_low", "log_close", "log_volume", "log_gap")
PRICE_CHANNELS = 4  # the first four channels are reconstruction targets
AUX_CHANNELS = len(CHANNELS) - PRICE_CHANNELS


@dataclass
class TimeframeBars:
    """Bars of one timeframe as flat arrays (row i = i-th bar in time)."""

    tf: str
    open_ns: np.ndarray  # int64 (N,)
    close_ns: np.ndarray  # int64 (N,) exclusive end
    logp: np.ndarray  # float64 (N, 4) log open/high/low/close
    aux: np.ndarray  # float32 (N, 2) raw log_volume, log_gap (z-scored later)
    complete: np.ndarray  # bool (N,)

    def __len__(self) -> int:
        return len(self.open_ns)


def timeframe_bars(m1: pd.DataFrame, tf: str, market: str) -> tuple[TimeframeBars, pd.DataFrame]:
    """Resample M1 to `tf` and compute the channels. Returns the arrays and the resampled frame."""
    bars = resample(m1, tf, market)
    prices = bars[["open", "high", "low", "close"]].to_numpy(np.float64)
    if len(prices) and not (prices > 0).all():
        row = int(np.flatnonzero(~(prices > 0).all(axis=1))[0])
        raise DataError(f"pretrain: {tf} bar at {bars.index[row]} has a non-positive price; validate the data first")
    open_ns = index_ns(bars.index)
    gap = np.diff(open_ns, prepend=open_ns[:1] - TIMEFRAME_MINUTES[tf] * NS_PER_MINUTE) if len(open_ns) else open_ns
    log_gap = np.log(np.maximum(gap, 1) / (TIMEFRAME_MINUTES[tf] * NS_PER_MINUTE))
    aux = np.stack([np.log1p(np.maximum(bars["volume"].to_numpy(np.float64), 0.0)), log_gap], axis=1)
    return TimeframeBars(
        tf=tf,
        open_ns=open_ns,
        close_ns=index_ns(pd.DatetimeIndex(bars["close_time"])),
        logp=np.log(prices),
        aux=aux.astype(np.float32),
        complete=bars["complete"].to_numpy(bool),
    ), bars


def child_spans(fine: TimeframeBars, coarse: TimeframeBars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For adjacent timeframes: `parent` (fine row -> coarse row containing it, -1 if none) and, per
    coarse bar, the first and last fine row inside it (-1 when its OHLC is not exactly the aggregate
    of its fine bars, e.g. an H4 bar that straddles the FX 17:00 New York day boundary)."""
    pos = np.searchsorted(coarse.open_ns, fine.open_ns, side="right") - 1
    inside = (pos >= 0) & (fine.close_ns <= coarse.close_ns[np.maximum(pos, 0)])
    parent = np.where(inside, pos, -1)
    n_c = len(coarse)
    first = np.full(n_c, -1, np.int64)
    last = np.full(n_c, -1, np.int64)
    rows = np.flatnonzero(parent >= 0)
    if len(rows):
        p = parent[rows]
        starts = np.r_[True, p[1:] != p[:-1]]
        grp_first = rows[starts]
        grp_last = np.r_[rows[np.flatnonzero(starts)[1:] - 1], rows[-1]]
        grp_parent = p[starts]
        # aggregation check: first open, max high, min low, last close must equal the coarse bar
        lp = fine.logp
        seg = np.flatnonzero(starts)
        hi = np.maximum.reduceat(lp[rows, 1], seg)
        lo = np.minimum.reduceat(lp[rows, 2], seg)
        agg = np.stack([lp[grp_first, 0], hi, lo, lp[grp_last, 3]], axis=1)
        ok = np.abs(agg - coarse.logp[grp_parent]).max(axis=1) < 1e-9
        ok &= coarse.complete[grp_parent]
        first[grp_parent[ok]] = grp_first[ok]
        last[grp_parent[ok]] = grp_last[ok]
    return parent.astype(np.int64), first, last
