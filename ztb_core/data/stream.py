"""Streaming bars: a bounded ring buffer fed by a producer thread, so memory stays flat however long
the history is.

The producer reads the bar source in chunks (the store through `pyarrow.ParquetFile.iter_batches`;
the synthetic market is generated whole and then cut, so only the store path is flat), computes the
features of each chunk and pushes them into the `RingBuffer` in batches of `batch_size` bars.

Features are causal and chunk-consistent: each chunk is computed with `compute_feature_set` over the
previous `CONTEXT_BARS` bars plus the chunk, and only the chunk's rows are kept. Every recursive
average of technical-66 has forgotten its seed after 4 days of M1 bars (EMA-240: (1 - 2/241)^5760 ~
e^-48) and the daily context needs the last two finished days, so the rows equal the offline ones
(tests/data/test_stream.py checks it). The vectorised function is used rather than
`features.online.OnlineTechnical` because the row-at-a-time path is ~1,000 bars/s here.

Buffer policy when the consumer is slower than the producer:
* `drop_oldest`: a push never waits; the oldest unread rows are overwritten and counted in `dropped`;
* `block`: a push waits until its whole batch fits; each push that had to wait counts in `blocked`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from ..config import ZtbModel
from ..errors import DataError
from .features import compute_feature_set
from .schema import BAR_COLUMNS, utc_index
from .source import DataSourceConfig, _utc
from .splits import SplitConfig
from .store import dataset_path
from .synthetic import generate_market

#: bars of history before each chunk when its features are computed (4 days of M1 bars; see above)
CONTEXT_BARS = 5760
#: bars read from the source per feature chunk (the context is recomputed once per chunk)
CHUNK_BARS = 16384

Policy = Literal["drop_oldest", "block"]


class StreamConfig(ZtbModel):
    """`ztb train --enable-streaming`: train on a bounded window of bars fed by a producer thread."""

    enabled: bool = Field(False, description="read the train bars through the ring buffer instead of loading them")
    batch_size: int = Field(64, ge=1, description="bars per producer push into the ring buffer")
    buffer_policy: Policy = Field(
        "drop_oldest", description="when the buffer is full: drop_oldest (overwrite unread bars) or block (wait)"
    )
    capacity_bars: int = Field(
        50_000, ge=64, description="ring buffer size in bars; the env trains on the newest this many bars"
    )

    @model_validator(mode="after")
    def _batch_fits(self) -> StreamConfig:
        if self.batch_size > self.capacity_bars:
            raise ValueError(
                f"streaming.batch_size ({self.batch_size}) must be <= streaming.capacity_bars ({self.capacity_bars})"
            )
        return self


@dataclass(frozen=True)
class Rows:
    """A block of streamed bars: open time (UTC ns), open, close and the feature rows."""

    time: np.ndarray  # int64 (n,)
    open: np.ndarray  # float64 (n,)
    close: np.ndarray  # float64 (n,)
    features: np.ndarray  # float32 (n, F)

    def __len__(self) -> int:
        return len(self.time)

    def __getitem__(self, s: slice) -> Rows:
        return Rows(self.time[s], self.open[s], self.close[s], self.features[s])

    @staticmethod
    def concat(parts: list[Rows], n_features: int) -> Rows:
        if not parts:
            return Rows(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty((0, n_features), np.float32))
        return Rows(
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.open for p in parts]),
            np.concatenate([p.close for p in parts]),
            np.concatenate([p.features for p in parts]),
        )


class RingBuffer:
    """Bounded FIFO of bar rows shared by one producer and one consumer thread (see module doc)."""

    def __init__(self, capacity: int, n_features: int, policy: Policy = "drop_oldest") -> None:
        if capacity < 1:
            raise DataError(f"ring buffer capacity must be >= 1, got {capacity}")
        self.capacity, self.policy = int(capacity), policy
        self._t = np.zeros(capacity, np.int64)
        self._o = np.zeros(capacity)
        self._c = np.zeros(capacity)
        self._f = np.zeros((capacity, n_features), np.float32)
        self._head = 0  # next row to read
        self._size = 0
        self._cond = threading.Condition()
        self._closed = False
        self.pushed = self.consumed = self.dropped = self.blocked = 0
        self.blocked_s = 0.0
        self.waiting = False  # a push is waiting for room (block policy)

    @property
    def size(self) -> int:
        return self._size

    def fill(self) -> float:
        return self._size / self.capacity

    def close(self) -> None:
        """Wake and refuse a waiting producer (training ended)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def put(self, rows: Rows) -> bool:
        """Append rows; False when the buffer was closed (the rows are discarded)."""
        n = len(rows)
        if n == 0:
            return not self._closed
        with self._cond:
            if self.policy == "block":
                if n > self.capacity:
                    raise DataError(f"a {n}-bar push cannot fit a {self.capacity}-bar buffer under the block policy")
                if self._size + n > self.capacity and not self._closed:
                    self.blocked += 1
                    self.waiting = True
                    t0 = time.perf_counter()
                    while self._size + n > self.capacity and not self._closed:
                        self._cond.wait(0.5)
                    self.waiting = False
                    self.blocked_s += time.perf_counter() - t0
            if self._closed:
                return False
            if n > self.capacity:  # drop_oldest: only the newest `capacity` rows of the batch survive
                self.dropped += n - self.capacity
                self.pushed += n - self.capacity
                rows, n = rows[n - self.capacity :], self.capacity
            over = self._size + n - self.capacity
            if over > 0:
                self._head = (self._head + over) % self.capacity
                self._size -= over
                self.dropped += over
            tail = (self._head + self._size) % self.capacity
            idx = (tail + np.arange(n)) % self.capacity
            self._t[idx], self._o[idx], self._c[idx], self._f[idx] = rows.time, rows.open, rows.close, rows.features
            self._size += n
            self.pushed += n
            self._cond.notify_all()
            return True

    def get(self, max_rows: int | None = None) -> Rows:
        """Remove and return up to `max_rows` (default all) of the oldest rows."""
        with self._cond:
            n = self._size if max_rows is None else min(max_rows, self._size)
            idx = (self._head + np.arange(n)) % self.capacity
            out = Rows(self._t[idx], self._o[idx], self._c[idx], self._f[idx])
            self._head = (self._head + n) % self.capacity
            self._size -= n
            self.consumed += n
            self._cond.notify_all()
            return out

    def wait_for(self, rows: int, timeout: float) -> bool:
        """Wait until the buffer holds `rows` rows (or `timeout` seconds pass)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._size < rows:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True


# ---- sources: M1 bars in chunks -----------------------------------------------------------------
def _store_path(src: DataSourceConfig) -> Path:
    path = dataset_path(src.symbol, "M1", src.data_dir)
    if not path.exists():
        raise DataError(f"streaming: no M1 data for symbol {src.symbol!r} at {path} (import with `ztb data import`)")
    return path


def _parquet(path: Path) -> pq.ParquetFile:
    """A reader whose memory does not grow with the file: with the defaults (pre-buffering, threads)
    `iter_batches` kept ~all row groups read so far allocated (peak RSS +100 MB per 3M bars here)."""
    return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)


def _in_range(df: pd.DataFrame, src: DataSourceConfig) -> pd.DataFrame:
    start, end = _utc(src.start), _utc(src.end)
    if start is not None:
        df = df[df.index >= start]
    if end is not None:
        df = df[df.index < end]
    return df


def iter_store_chunks(src: DataSourceConfig, chunk_rows: int = CHUNK_BARS) -> Iterator[pd.DataFrame]:
    """The stored M1 bars of `src`, in [start, end), `chunk_rows` file rows at a time."""
    path = _store_path(src)
    columns = [*BAR_COLUMNS, "time"]
    for batch in _parquet(path).iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False):
        df = batch.to_pandas()  # the pandas metadata usually restores `time` as the index already
        if "time" in df.columns:
            df = df.set_index("time")
        df.index = utc_index(df.index)
        df = _in_range(df, src).astype(np.float64)
        if len(df):
            yield df


def count_source_rows(src: DataSourceConfig) -> int:
    """Bars in [start, end) without holding them: the store's time column read in chunks."""
    if src.kind == "synthetic":
        return len(_in_range(generate_market(src.synthetic.model_copy(update={"market": src.market})), src))
    if src.start is None and src.end is None:
        return pq.ParquetFile(_store_path(src)).metadata.num_rows
    n = 0
    start, end = _utc(src.start), _utc(src.end)
    for batch in _parquet(_store_path(src)).iter_batches(batch_size=1 << 20, columns=["time"], use_threads=False):
        t = utc_index(pd.DatetimeIndex(batch.column(0).to_pandas()))
        keep = np.ones(len(t), bool)
        if start is not None:
            keep &= t >= start
        if end is not None:
            keep &= t < end
        n += int(keep.sum())
    return n


def iter_source_chunks(src: DataSourceConfig, chunk_rows: int = CHUNK_BARS) -> Iterator[pd.DataFrame]:
    if src.kind == "store":
        yield from iter_store_chunks(src, chunk_rows)
        return
    bars = _in_range(generate_market(src.synthetic.model_copy(update={"market": src.market})), src)
    for a in range(0, len(bars), chunk_rows):
        yield bars.iloc[a : a + chunk_rows]


def stream_feature_rows(
    chunks: Iterator[pd.DataFrame], feature_set: str, market: str, limit_rows: int | None = None
) -> Iterator[Rows]:
    """Valid feature rows of each chunk (warm-up rows skipped), computed over the previous
    CONTEXT_BARS bars plus the chunk; at most the first `limit_rows` source bars are read."""
    context: pd.DataFrame | None = None
    seen = 0
    for chunk in chunks:
        if limit_rows is not None:
            if seen >= limit_rows:
                return
            chunk = chunk.iloc[: limit_rows - seen]
        seen += len(chunk)
        block = chunk if context is None else pd.concat([context, chunk])
        fm = compute_feature_set(feature_set, block, market)
        k = len(block) - len(chunk)
        valid = fm.valid[k:]
        if valid.any():
            sel = np.flatnonzero(valid)
            yield Rows(
                chunk.index.asi8[sel].astype(np.int64),
                chunk["open"].to_numpy(np.float64)[sel],
                chunk["close"].to_numpy(np.float64)[sel],
                np.ascontiguousarray(fm.values[k:][sel], dtype=np.float32),
            )
        context = block.iloc[-CONTEXT_BARS:]


class StreamProducer:
    """Thread: the train part of the source, through the features, into the ring buffer in batches,
    over and over (each pass starts the features afresh) until `stop()`."""

    def __init__(
        self,
        src: DataSourceConfig,
        splits: SplitConfig,
        feature_set: str,
        cfg: StreamConfig,
        n_features: int,
        chunk_rows: int = CHUNK_BARS,
    ) -> None:
        self.src, self.feature_set, self.cfg, self.chunk_rows = src, feature_set, cfg, chunk_rows
        # only bars before the train split's end are streamed: the split is over valid rows, which
        # start after the warm-up, so `train * all rows` is within the train split
        n = count_source_rows(src)
        if n == 0:
            raise DataError(f"streaming: data source {src.kind}:{src.symbol} has no M1 bars in its range")
        self.limit_rows = splits.slices(n)["train"].stop
        self.buffer = RingBuffer(cfg.capacity_bars, n_features, cfg.buffer_policy)
        self.passes = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ztb-stream", daemon=True)

    def start(self) -> StreamProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.buffer.close()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        b = self.cfg.batch_size
        try:
            while not self._stop.is_set():
                pushed_any = False
                chunks = iter_source_chunks(self.src, self.chunk_rows)
                for rows in stream_feature_rows(chunks, self.feature_set, self.src.market, self.limit_rows):
                    for a in range(0, len(rows), b):
                        if self._stop.is_set() or not self.buffer.put(rows[a : a + b]):
                            return
                        pushed_any = True
                self.passes += 1
                if not pushed_any:
                    raise DataError(
                        f"streaming: no valid rows in the train part ({self.limit_rows} bars) of "
                        f"{self.src.kind}:{self.src.symbol}; use more data"
                    )
        except BaseException as exc:  # reported to the consumer, which raises it in the training thread
            self.error = exc
        finally:
            self.done.set()
            with self.buffer._cond:
                self.buffer._cond.notify_all()
