"""History download (`ztb data fetch`): bars from an exchange into the data store, with
pagination, rate limits and resume (the trades -> bars builders are in `data/bars_from_trades.py`).

Exchanges without fetchOHLCV (coincheck, zaif, bitflyer) get bars built from public trades.
Coincheck pages its trades newest-first by id, so a download walks back from the newest trade
to `--since`; the walk is checkpointed (cursor + trades so far) in `<data>/.fetch/` and a rerun
continues where it stopped. When the walk is done the completed bars are merged into the store
and the checkpoint is replaced by the newest trade id, so the next run only fetches what is new.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ... import paths
from ...atomic import atomic_file, atomic_write_json
from ...data import store
from ...data.bars_from_trades import ccxt_timeframe, ohlcv_to_bars, store_timeframe, timeframe_ms, trades_to_bars
from ...data.store import check_symbol
from ...errors import DataError

if TYPE_CHECKING:
    from ..venue.exchange import ExchangeAdapter


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
    stem = f"{exchange}_{check_symbol(symbol)}_{store_timeframe(timeframe)}"
    folder = data_root / ".fetch"
    return folder / f"{stem}.json", folder / f"{stem}.trades.npz"


def _save_trades(path: Path, cols: dict[str, np.ndarray]) -> None:
    with atomic_file(path) as fh:
        # numpy's stub types **kwds as if they could be its bool `allow_pickle`; these are all arrays
        np.savez(fh, **cols)  # type: ignore[arg-type]


def _load_trades(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in ("id", "ts", "price", "amount")}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: the saved partial download is unreadable ({exc}); delete it to start over") from None


def _store_from(data_root: Path, symbol: str, tf: str, since_ms: int) -> int:
    """Where to start: after the last stored bar when the store already covers `since_ms`."""
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
            if adapter.trade_cursor_paging:
                state["cursor"] = page[0].id
            if on_page:
                on_page(pages, fetched, page[0].timestamp_ms)
            if pages % checkpoint_every == 0:
                checkpoint()
    except BaseException:
        checkpoint()  # keep what was fetched: the next run resumes from the cursor
        raise
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
    cursor = _store_from(root, adapter.symbol, store_timeframe(tf), since_ms)
    resumed = cursor > since_ms
    pages = written = 0
    first = last = None
    path = None
    while cursor < until_ms:
        rows = adapter._call(
            "fetch_ohlcv",
            functools.partial(adapter.exchange.fetch_ohlcv, adapter.symbol, tf, cursor, page),
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
