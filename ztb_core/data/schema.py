"""The one bar schema every part of ztb reads and writes.

Bars are a pandas DataFrame indexed by a UTC `DatetimeIndex` named `time` holding the bar's
**open** time, with float64 columns `open, high, low, close, volume` and, where the source knows
it, `trades`. Resampled bars add `close_time` (UTC, exclusive end of the bar) and `complete`.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
import pandas as pd

from ..errors import DataError

# data/ reads the timeframe table through here (explicit re-exports of ztb_core.timeframes)
from ..timeframes import TIMEFRAME_MINUTES as TIMEFRAME_MINUTES
from ..timeframes import TIMEFRAMES as TIMEFRAMES
from ..timeframes import Timeframe as Timeframe
from ..timeframes import check_timeframe as check_timeframe

MarketKind = Literal["fx", "crypto"]
MARKETS: tuple[str, ...] = ("fx", "crypto")

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
OPTIONAL_COLUMNS: tuple[str, ...] = ("trades",)

NS_PER_MINUTE = 60_000_000_000


def check_market(market: str) -> MarketKind:
    if market not in MARKETS:
        raise DataError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}")
    return cast(MarketKind, market)  # checked against MARKETS just above


def utc_index(values: pd.DatetimeIndex | np.ndarray | pd.Series) -> pd.DatetimeIndex:
    """A tz-aware UTC, nanosecond-resolution DatetimeIndex named `time` (naive input is taken as UTC)."""
    idx = pd.DatetimeIndex(values)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    if str(idx.dtype) != "datetime64[ns, UTC]":
        idx = idx.as_unit("ns")
    idx.name = "time"
    return idx


def index_ns(index: pd.DatetimeIndex) -> np.ndarray:
    """int64 nanoseconds since the epoch, whatever the index's unit."""
    return utc_index(index).asi8


def normalize_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce to the canonical schema: UTC ns index named `time`, float64 bar columns in order.
    Raises DataError naming the missing column; does not sort or validate values."""
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"bars are missing column(s) {', '.join(missing)}; expected {', '.join(BAR_COLUMNS)}")
    cols = list(BAR_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in df.columns]
    out = pd.DataFrame({c: np.asarray(df[c], dtype=np.float64) for c in cols}, index=utc_index(df.index))
    return out


def empty_bars(with_trades: bool = False) -> pd.DataFrame:
    cols = list(BAR_COLUMNS) + (["trades"] if with_trades else [])
    return pd.DataFrame({c: np.empty(0, np.float64) for c in cols}, index=utc_index(pd.DatetimeIndex([], tz="UTC")))
