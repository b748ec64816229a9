"""`stage1-ohlc`: the pretraining encoder's input, 36 channels per M1 bar.

For each of the six pretraining timeframes (M1, M5, M15, H1, H4, D) the last *completed* bar at
the M1 bar's close: open, high, low, close (price units), delta_close (close minus the previous
completed bar's close, price units) and body_pct (100 * (close - open) / open). The M1 block is the
bar itself. Normalisation is the pretraining pipeline's job (per window, masked values excluded).
"""

from __future__ import annotations

import pandas as pd

from .htf import align
from .matrix import ColumnWriter, FeatureMatrix

STAGE1_TIMEFRAMES: tuple[str, ...] = ("M1", "M5", "M15", "H1", "H4", "D")
STAGE1_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "delta_close", "body_pct")
NAMES: list[str] = [f"{tf}_{f}" for tf in STAGE1_TIMEFRAMES for f in STAGE1_FIELDS]


def compute_stage1(m1: pd.DataFrame, market: str = "fx") -> FeatureMatrix:
    w = ColumnWriter(NAMES, m1.index)
    for tf in STAGE1_TIMEFRAMES:
        a = align(m1, tf, market)
        o, h, lo, c = (a.take(k) for k in ("open", "high", "low", "close"))
        w.put(f"{tf}_open", o)
        w.put(f"{tf}_high", h)
        w.put(f"{tf}_low", lo)
        w.put(f"{tf}_close", c)
        w.put(f"{tf}_delta_close", c - a.take("close", lag=1))
        w.put(f"{tf}_body_pct", 100.0 * (c - o) / o)
    return w.result()
