"""History download (`ztb data fetch`): bars from an exchange into the data store, with
pagination, rate limits and resume; and the trades -> bars builder the adapter also uses.

Exchanges without fetchOHLCV (coincheck, zaif, bitflyer) get bars built from public trades.
Coincheck pages its trades newest-first by id, so a download walks back from the newest trade
to `--since`; the walk is checkpointed (cursor + trades so far) in `<data>/.fetch/` and a rerun
continues where it stopped. When the walk is done the completed bars are merged into the store
and the checkpoint is replaced by the newest trade id, so the next run only fetches what is new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_write_json
from ..errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from .exchange import ExchangeAdapter, PublicTrade

#: ccxt timeframe -> the store's timeframe name
TIMEFRAMES = {"1m": "M1", "5m": "M5", "15m": "M15", "30m": "M30", "1h": "H1", "4h": "H4", "1d": "D"}


def ccxt_timeframe(timeframe: str) -> str:
    """Accept ccxt ("1m") or store ("M1") names; return the ccxt one."""
    if timeframe in TIMEFRAMES:
        return timeframe
    for ccxt_tf, store_tf in TIMEFRAMES.items():
        if timeframe == store_tf:
            return ccxt_tf
    raise DataError(
        f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)} "
        f"(or {', '.join(TIMEFRAMES.values())})"
    )


def store_timeframe(timeframe: str) -> str:
    return TIMEFRAMES[ccxt_timeframe(timeframe)]


def timeframe_ms(timeframe: str) -> int:
    tf = ccxt_timeframe(timeframe)
    unit = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}[tf[-1]]
    return int(tf[:-1]) * unit


def _bars_frame(times_ms: np.ndarray, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    import pandas as pd

    from ..data.schema import utc_index

    index = utc_index(pd.to_datetime(times_ms, unit="ms", utc=True))
    return pd.DataFrame({k: np.asarray(v, np.float64) for k, v in cols.items()}, index=index)


def trades_to_bars(trades: Sequence[PublicTrade] | pd.DataFrame, timeframe: str = "1m") -> pd.DataFrame:
    """OHLCV (+ trades count) per bar from trades; bars without trades are absent (not zero-filled)."""
    span = timeframe_ms(timeframe)
    if hasattr(trades, "columns"):
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
    return _bars_frame(arr[:, 0].astype(np.int64), dict(zip(("open", "high", "low", "close", "volume"), arr[:, 1:].T)))


# ---- history download ------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchResult:
    path: Path | None  # the store file written (None when nothing new was complete)
    bars_written: int
    trades_fetched: int
    pages: int
    resumed: bool  # continued an interrupted download
    first_bar: str | None
    last_bar: str | None


def _state_paths(data_root: Path, exchange: str, symbol: str, timeframe: str) -> tuple[Path, Path]:
    from ..data.store import check_symbol

    stem = f"{exchange}_{check_symbol(symbol)}_{store_timeframe(timeframe)}"
    folder = data_root / ".fetch"
    return folder / f"{stem}.json", folder / f"{stem}.trades.npz"


def _save_trades(path: Path, cols: dict[str, np.ndarray]) -> None:
    from ..atomic import atomic_file

    with atomic_file(path) as fh:
        np.savez(fh, **cols)


def _load_trades(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in ("id", "ts", "price", "amount")}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: the saved partial download is unreadable ({exc}); delete it to start over") from None


def _store_from(data_root: Path, symbol: str, tf: str, since_ms: int) -> int:
    """Where to start: after the last stored bar when the store already covers `since_ms`."""
    from ..data import store

    if not store.has_dataset(symbol, tf, data_root):
        return since_ms
    bars = store.read_bars(symbol, tf, data_dir=data_root)
    if len(bars) == 0:
        return since_ms
    first, last = bars.index.asi8[[0, -1]] // 1_000_000
    span = timeframe_ms(tf)
    return max(since_ms, int(last) + span) if first <= since_ms else since_ms


def fetch_history(
    adapter: ExchangeAdapter,
    timeframe: str,
    since_ms: int,
    until_ms: int | None = None,
    data_dir: str | Path | None = None,
    on_page: Callable[[int, int, int], None] | None = None,
    checkpoint_every: int = 10,
    now_ms: int | None = None,
) -> FetchResult:
    """Download bars for [since, until) into the store, resuming an interrupted download.
    `on_page(pages, trades_or_bars, oldest_or_newest_ms)` reports progress."""
    from .. import paths
    from ..data import store

    tf = ccxt_timeframe(timeframe)
    span = timeframe_ms(tf)
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    symbol = adapter.symbol
    since_ms = since_ms // span * span
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    until_ms = min(until_ms or now_ms, now_ms) // span * span  # only whole, completed bars
    meta = {"sources": [f"ccxt:{adapter.cfg.exchange}"], "exchange": adapter.cfg.exchange, "symbol": symbol}
    if adapter.exchange.has.get("fetchOHLCV"):
        return _fetch_ohlcv(adapter, tf, span, since_ms, until_ms, root, meta, on_page)
    state_path, trades_path = _state_paths(root, adapter.cfg.exchange, symbol, tf)
    state: dict[str, Any] = {}
    cols = {"id": np.empty(0, np.int64), "ts": np.empty(0, np.int64), "price": np.empty(0), "amount": np.empty(0)}
    resumed = False
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("since_ms") == since_ms and trades_path.exists():
            cols, resumed = _load_trades(trades_path), True
            until_ms = int(state["until_ms"])
        else:
            state = {}
    start_ms = since_ms if resumed else _store_from(root, symbol, store_timeframe(tf), since_ms)
    if not state:
        state = {"since_ms": since_ms, "until_ms": until_ms, "cursor": None, "pages": 0}
    if start_ms >= until_ms:
        return FetchResult(None, 0, 0, 0, False, None, None)
    pages, fetched = int(state["pages"]), len(cols["ts"])
    chunks: list[dict[str, np.ndarray]] = [cols]

    def checkpoint() -> None:
        merged = {k: np.concatenate([c[k] for c in chunks]) for k in cols}
        chunks[:] = [merged]
        _save_trades(trades_path, merged)
        atomic_write_json(state_path, {**state, "pages": pages})

    try:
        cursor = state.get("cursor")
        for page in adapter.iter_trade_pages(start_ms, until_ms=until_ms, older_than=cursor):
            ids = np.array([int(t.id) if t.id.isdigit() else -1 for t in page], np.int64)
            chunks.append(
                {
                    "id": ids,
                    "ts": np.array([t.timestamp_ms for t in page], np.int64),
                    "price": np.array([float(t.price) for t in page]),
                    "amount": np.array([float(t.amount) for t in page]),
                }
            )
            pages += 1
            fetched += len(page)
            if adapter.cfg.exchange == "coincheck":
                state["cursor"] = page[0].id
            if on_page:
                on_page(pages, fetched, page[0].timestamp_ms)
            if pages % checkpoint_every == 0:
                checkpoint()
    except BaseException:
        checkpoint()  # keep what was fetched: the next run resumes from the cursor
        raise
    import pandas as pd

    merged = {k: np.concatenate([c[k] for c in chunks]) for k in cols}
    # a page re-read after a resume may repeat trades: keep each id once (ids are numeric on coincheck)
    ids = merged["id"]
    keep = np.unique(ids, return_index=True)[1] if len(ids) and (ids >= 0).all() else np.arange(len(ids))
    trades = pd.DataFrame(
        {"timestamp_ms": merged["ts"][keep], "price": merged["price"][keep], "amount": merged["amount"][keep]}
    )
    trades = trades[(trades["timestamp_ms"] >= start_ms) & (trades["timestamp_ms"] < until_ms)]
    bars = trades_to_bars(trades, tf)
    result = FetchResult(None, 0, fetched, pages, resumed, None, None)
    if len(bars):
        merged_result = store.merge_into_store(bars, symbol, store_timeframe(tf), root, meta=meta)
        result = FetchResult(
            merged_result.path, len(bars), fetched, pages, resumed, str(bars.index[0]), str(bars.index[-1])
        )
    state_path.unlink(missing_ok=True)
    trades_path.unlink(missing_ok=True)
    return result


def _fetch_ohlcv(
    adapter: ExchangeAdapter,
    tf: str,
    span: int,
    since_ms: int,
    until_ms: int,
    root: Path,
    meta: dict,
    on_page: Callable[[int, int, int], None] | None,
    page: int = 500,
) -> FetchResult:
    """Forward paging of the exchange's own OHLCV; each page is merged into the store at once,
    so the store itself is the resume point."""
    from ..data import store

    cursor = _store_from(root, adapter.symbol, store_timeframe(tf), since_ms)
    resumed = cursor > since_ms
    pages = written = 0
    first = last = None
    path = None
    while cursor < until_ms:
        rows = adapter._call(
            "fetch_ohlcv",
            lambda: adapter.exchange.fetch_ohlcv(adapter.symbol, tf, cursor, page),
            check=lambda r: isinstance(r, list),
        )
        bars = ohlcv_to_bars(rows)
        bars = bars[(bars.index.asi8 // 1_000_000 >= cursor) & (bars.index.asi8 // 1_000_000 < until_ms)]
        pages += 1
        if len(bars) == 0:
            break
        path = store.merge_into_store(bars, adapter.symbol, store_timeframe(tf), root, meta=meta).path
        written += len(bars)
        first = first or str(bars.index[0])
        last = str(bars.index[-1])
        cursor = int(bars.index.asi8[-1] // 1_000_000) + span
        if on_page:
            on_page(pages, written, cursor)
    return FetchResult(path, written, 0, pages, resumed, first, last)


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
