"""Higher-timeframe bars aligned causally to M1 bars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..resample import last_completed, resample


@dataclass(frozen=True)
class AlignedHTF:
    """`bars` = resampled timeframe; `pos[t]` = last completed bar at M1 bar t's close (-1: none)."""

    timeframe: str
    bars: pd.DataFrame
    pos: np.ndarray

    def take(self, column: str, lag: int = 0) -> np.ndarray:
        """bars[column] at pos - lag for each M1 bar; NaN where that bar does not exist or is a
        partial edge bar."""
        src = self.bars[column].to_numpy(np.float64)
        complete = self.bars["complete"].to_numpy(bool)
        p = self.pos - lag
        ok = (self.pos >= 0) & (p >= 0)
        pc = np.clip(p, 0, max(len(src) - 1, 0))
        if len(src):
            ok &= complete[pc]
            return np.where(ok, src[pc], np.nan)
        return np.full(len(p), np.nan)


def align(m1: pd.DataFrame, timeframe: str, market: str) -> AlignedHTF:
    if timeframe == "M1":
        bars = resample(m1, "M1", market)
        return AlignedHTF("M1", bars, np.arange(len(m1), dtype=np.int64))
    bars = resample(m1, timeframe, market)
    return AlignedHTF(timeframe, bars, last_completed(m1.index, bars, timeframe))
