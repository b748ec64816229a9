"""Multi-timeframe resampling without look-ahead.

`resample(m1, tf, market)` aggregates M1 bars into buckets labelled by their **open** time:
M5..H4 on UTC boundaries; the daily bar of an FX market is the New York session closing at 17:00
New York time (configurable; 23 or 25 hours long around DST changes), a crypto day closes at 00:00
UTC. Each bar carries `close_time` (exclusive end) and `complete`: False for a bucket the data
only partly covers at either edge (data starts after the bucket opened, or ends before it closed).
Missing minutes inside the data (no quote) do not make a bar incomplete.

`last_completed(m1_index, htf, tf)` answers, for each M1 bar evaluated at its close (open + 1
minute), which higher-timeframe bar was the last one already closed and complete: the only one a
decision at that moment may see.

Aggregation uses sorted-bucket boundaries and `np.ufunc.reduceat`: one pass, no groupby.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from .schema import NS_PER_MINUTE, TIMEFRAME_MINUTES, TIMEFRAMES, check_market, check_timeframe, index_ns, utc_index

NS_PER_DAY = 86_400 * 1_000_000_000
FX_DAY_CLOSE = "17:00"
FX_DAY_TZ = "America/New_York"


def _parse_hhmm(text: str) -> int:
    try:
        hh, mm = text.split(":")
        minutes = int(hh) * 60 + int(mm)
    except ValueError:
        raise DataError(f"day close {text!r}: expected HH:MM, e.g. 17:00") from None
    if not 0 <= minutes < 1440:
        raise DataError(f"day close {text!r}: outside 00:00..23:59")
    return minutes


def _daily_labels(t_ns: np.ndarray, close_hhmm: str, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(bucket open, bucket close) in UTC ns for each timestamp: sessions that end at `close_hhmm` in `tz`."""
    close_min = _parse_hhmm(close_hhmm)
    if len(t_ns) == 0:
        return t_ns.copy(), t_ns.copy()
    # sessions are few: compute local session starts per unique UTC day (+/-1) then map by searchsorted
    day0 = t_ns.min() // NS_PER_DAY - 2
    day1 = t_ns.max() // NS_PER_DAY + 3
    local_days = pd.date_range(pd.Timestamp(day0 * NS_PER_DAY), pd.Timestamp(day1 * NS_PER_DAY), freq="D")
    starts_local = local_days + pd.Timedelta(minutes=close_min)
    # a wall-clock time that falls in a DST gap/overlap is shifted forward / taken as the first instant
    starts = starts_local.tz_localize(tz, nonexistent="shift_forward", ambiguous=np.ones(len(starts_local), bool))
    starts_ns = starts.tz_convert("UTC").as_unit("ns").asi8
    pos = np.searchsorted(starts_ns, t_ns, side="right") - 1
    return starts_ns[pos], starts_ns[pos + 1]


def bucket_bounds(
    t_ns: np.ndarray, timeframe: str, market: str, day_close: str | None = None, day_tz: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each timestamp (UTC ns) the open and close (exclusive) of its `timeframe` bucket."""
    check_timeframe(timeframe)
    check_market(market)
    if timeframe == "D":
        if market == "fx":
            return _daily_labels(t_ns, day_close or FX_DAY_CLOSE, day_tz or FX_DAY_TZ)
        return _daily_labels(t_ns, day_close or "00:00", day_tz or "UTC")
    width = TIMEFRAME_MINUTES[timeframe] * NS_PER_MINUTE
    start = t_ns // width * width
    return start, start + width


def resample(
    m1: pd.DataFrame, timeframe: str, market: str = "fx", *, day_close: str | None = None, day_tz: str | None = None
) -> pd.DataFrame:
    """Aggregate M1 bars (sorted, unique times) to `timeframe`.

    Columns: open (first), high (max), low (min), close (last), volume (sum), trades (sum, when
    present), n_bars (M1 bars inside), close_time (UTC, exclusive end), complete (bool).
    """
    check_timeframe(timeframe)
    t = index_ns(m1.index)
    if len(t) > 1 and not (np.diff(t) > 0).all():
        raise DataError("resample: M1 times must be strictly increasing (validate the data first)")
    if timeframe == "M1":
        out = m1.copy()
        out.index = utc_index(m1.index)
        out["n_bars"] = np.ones(len(out), np.int64)
        out["close_time"] = utc_index(t + NS_PER_MINUTE)
        out["complete"] = np.ones(len(out), bool)
        return out
    start, end = bucket_bounds(t, timeframe, market, day_close, day_tz)
    if len(t) == 0:
        first = np.empty(0, np.int64)
    else:
        first = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])
    last = np.r_[first[1:] - 1, len(t) - 1] if len(first) else first
    cols = {
        "open": m1["open"].to_numpy(np.float64)[first],
        "high": np.maximum.reduceat(m1["high"].to_numpy(np.float64), first) if len(first) else np.empty(0),
        "low": np.minimum.reduceat(m1["low"].to_numpy(np.float64), first) if len(first) else np.empty(0),
        "close": m1["close"].to_numpy(np.float64)[last],
        "volume": np.add.reduceat(m1["volume"].to_numpy(np.float64), first) if len(first) else np.empty(0),
    }
    if "trades" in m1.columns:
        cols["trades"] = np.add.reduceat(m1["trades"].to_numpy(np.float64), first) if len(first) else np.empty(0)
    cols["n_bars"] = (last - first + 1).astype(np.int64)
    cols["close_time"] = utc_index(end[first]) if len(first) else utc_index(np.empty(0, "datetime64[ns]"))
    complete = np.ones(len(first), bool)
    if len(first):
        # edges: a bucket the data only partly covers is marked, never silently kept as whole
        complete[0] = t[0] == start[0]
        if t[-1] + NS_PER_MINUTE < end[-1]:
            complete[-1] = False
    cols["complete"] = complete
    out = pd.DataFrame(cols, index=utc_index(start[first]))
    return out


def resample_all(
    m1: pd.DataFrame, market: str = "fx", timeframes: tuple[str, ...] | None = None, **kwargs: str | None
) -> dict[str, pd.DataFrame]:
    return {tf: resample(m1, tf, market, **kwargs) for tf in (timeframes or TIMEFRAMES)}


def last_completed(m1_index: pd.DatetimeIndex | np.ndarray, htf_bars: pd.DataFrame, timeframe: str) -> np.ndarray:
    """int64 array: for each M1 bar, evaluated at its close (open + 1 minute), the position in
    `htf_bars` of the last bar that had closed by then and is `complete`; -1 if none.

    `htf_bars` is `resample(...)` output (its `close_time` column is used; without it the end is
    open + the nominal timeframe length, exact for M1..H4 and for a UTC-midnight day).
    """
    check_timeframe(timeframe)
    t_close = (m1_index.astype(np.int64) if isinstance(m1_index, np.ndarray) else index_ns(m1_index)) + NS_PER_MINUTE
    if "close_time" in htf_bars.columns:
        ends = index_ns(pd.DatetimeIndex(htf_bars["close_time"]))
    else:
        ends = index_ns(htf_bars.index) + TIMEFRAME_MINUTES[timeframe] * NS_PER_MINUTE
    if len(ends) > 1 and not (np.diff(ends) > 0).all():
        raise DataError(f"last_completed: {timeframe} bars must be sorted by time")
    pos = np.searchsorted(ends, t_close, side="right") - 1
    if "complete" in htf_bars.columns:
        complete = htf_bars["complete"].to_numpy(bool)
        if not complete.all():
            # map each bar to the latest complete bar at or before it (-1 when none yet)
            idx = np.where(complete, np.arange(len(complete)), -1)
            best = np.maximum.accumulate(idx) if len(idx) else idx
            pos = np.where(pos >= 0, best[np.maximum(pos, 0)], -1)
    return pos.astype(np.int64)
