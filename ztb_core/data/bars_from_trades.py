"""Bars from trades, from exchange OHLCV rows and from polled tickers: the one bar builder, used by
`ztb data import` (bitFlyer trades), `ztb data fetch` and the live loop. Bars without trades are
absent (not zero-filled). Timeframe names come from `ztb_core.timeframes`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

# live/ reads the timeframe helpers through here (explicit re-exports)
from ..timeframes import ccxt_timeframe as ccxt_timeframe
from ..timeframes import store_timeframe as store_timeframe
from ..timeframes import timeframe_ms
from .schema import utc_index


class TradeLike(Protocol):
    """What a bar needs of a trade (`live.exchange.PublicTrade` is one)."""

    timestamp_ms: int
    price: Any
    amount: Any


def _bars_frame(times_ms: np.ndarray, cols: Mapping[str, npt.ArrayLike]) -> pd.DataFrame:
    index = utc_index(pd.to_datetime(times_ms, unit="ms", utc=True))
    return pd.DataFrame({k: np.asarray(v, np.float64) for k, v in cols.items()}, index=index)


def trades_to_bars(trades: Sequence[TradeLike] | pd.DataFrame, timeframe: str = "1m") -> pd.DataFrame:
    """OHLCV (+ trades count) per bar from trades; bars without trades are absent (not zero-filled)."""
    span = timeframe_ms(timeframe)
    if isinstance(trades, pd.DataFrame):
        ts = trades["timestamp_ms"].to_numpy(np.int64)
        price = trades["price"].to_numpy(np.float64)
        amount = trades["amount"].to_numpy(np.float64)
    else:
        ts = np.fromiter((t.timestamp_ms for t in trades), np.int64, len(trades))
        price = np.fromiter((float(t.price) for t in trades), np.float64, len(trades))
        amount = np.fromiter((float(t.amount) for t in trades), np.float64, len(trades))
    cols = ("open", "high", "low", "close", "volume", "trades")
    if len(ts) == 0:
        return _bars_frame(np.empty(0, np.int64), {c: np.empty(0) for c in cols})
    order = np.argsort(ts, kind="stable")
    ts, price, amount = ts[order], price[order], amount[order]
    bucket = ts // span * span
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    return _bars_frame(
        bucket[starts],
        {
            "open": price[starts],
            "high": np.maximum.reduceat(price, starts),
            "low": np.minimum.reduceat(price, starts),
            "close": price[ends - 1],
            "volume": np.add.reduceat(amount, starts),
            "trades": (ends - starts).astype(np.float64),
        },
    )


def ohlcv_to_bars(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    """ccxt OHLCV rows [ms, o, h, l, c, v] -> bars (duplicates: the last row wins)."""
    arr = np.array([r[:6] for r in rows], dtype=np.float64).reshape(-1, 6)
    if len(arr):
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        keep = np.r_[arr[1:, 0] != arr[:-1, 0], True]
        arr = arr[keep]
    return _bars_frame(
        arr[:, 0].astype(np.int64), dict(zip(("open", "high", "low", "close", "volume"), arr[:, 1:].T, strict=True))
    )


class TickerBarBuilder:
    """Bars from polled tickers, for exchanges whose trades endpoint is unusable: each poll's last
    price is a tick (volume: the change of the ticker's rolling volume is not a per-bar volume, so
    bars carry volume 0 and `trades` = polls). `update` returns the bars a poll completed."""

    def __init__(self, timeframe: str = "1m") -> None:
        self.span = timeframe_ms(timeframe)
        self._start: int | None = None
        self._ohlc: list[float] = []
        self._polls = 0

    def update(self, timestamp_ms: int, price: float) -> pd.DataFrame:
        start = timestamp_ms // self.span * self.span
        done = _bars_frame(
            np.empty(0, np.int64), {c: np.empty(0) for c in ("open", "high", "low", "close", "volume", "trades")}
        )
        if self._start is not None and start < self._start:
            return done  # a late, out-of-order poll: its bar is already closed
        if self._start is not None and start > self._start:
            o, h, lo, c = self._ohlc
            done = _bars_frame(
                np.array([self._start]),
                {"open": [o], "high": [h], "low": [lo], "close": [c], "volume": [0.0], "trades": [float(self._polls)]},
            )
            self._start = None
        if self._start is None:
            self._start, self._ohlc, self._polls = start, [price, price, price, price], 0
        o, h, lo, _ = self._ohlc
        self._ohlc = [o, max(h, price), min(lo, price), price]
        self._polls += 1
        return done
