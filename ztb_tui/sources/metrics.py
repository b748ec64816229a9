"""A run's metrics as incremental series per (split, name), read from the tail of metrics.jsonl."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ztb_core.runs import JsonlTail

#: metric rows read on first paint of a run: enough history for every sparkline, and cheap
#: even when metrics.jsonl holds a million lines (the tail, never the whole file).
METRICS_TAIL_BYTES = 2 << 20
HISTORY = 240  # points kept per series: wider than any terminal's sparkline


@dataclass
class Series:
    """A bounded history of one metric plus its extremes over everything seen."""

    values: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    last: float = math.nan
    min: float = math.inf
    max: float = -math.inf
    step: int = 0

    def add(self, step: int, value: float) -> None:
        self.values.append(value)
        self.last = value
        self.step = step
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value


@dataclass(frozen=True)
class SeriesView:
    name: str
    values: tuple[float, ...]
    last: float
    min: float
    max: float
    step: int


@dataclass(frozen=True)
class MetricsSnapshot:
    series: dict[str, SeriesView]  # key "split/name"
    text: dict[str, str]  # non-numeric latest values, key "split/name" (e.g. sys/gpu)
    last_time: float | None
    rows_read: int
    reset: bool

    def get(self, split: str, name: str) -> SeriesView | None:
        return self.series.get(f"{split}/{name}")


class MetricsSource:
    """Follows one run's metrics.jsonl. The first poll reads only the last
    `METRICS_TAIL_BYTES`; later polls read only what was appended (JsonlTail); a truncation or
    rewrite (resume rewinds metrics) drops the history and starts again."""

    SKIP = frozenset({"time", "step", "split"})

    def __init__(self, run_dir: Path, tail_bytes: int = METRICS_TAIL_BYTES):
        self.tail = JsonlTail(Path(run_dir) / "metrics.jsonl", from_end_bytes=tail_bytes)
        self._series: dict[str, Series] = {}
        self._text: dict[str, str] = {}
        self._last_time: float | None = None
        self.rows_read = 0
        self._dirty: set[str] = set()
        self._views: dict[str, SeriesView] = {}

    def poll(self) -> MetricsSnapshot:
        result = self.tail.poll()
        if result.reset:
            self._series.clear()
            self._text.clear()
            self._views.clear()
        self._ingest(result.records)
        for key in self._dirty:
            s = self._series[key]
            self._views[key] = SeriesView(key.split("/", 1)[1], tuple(s.values), s.last, s.min, s.max, s.step)
        self._dirty.clear()
        return MetricsSnapshot(dict(self._views), dict(self._text), self._last_time, self.rows_read, result.reset)

    def _ingest(self, records: Iterable[dict]) -> None:
        series, text, dirty = self._series, self._text, self._dirty
        for rec in records:
            self.rows_read += 1
            split = rec.get("split", "?")
            step = rec.get("step", 0)
            t = rec.get("time")
            if isinstance(t, (int, float)):
                self._last_time = float(t)
            for name, value in rec.items():
                if name in self.SKIP:
                    continue
                key = f"{split}/{name}"
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    if not math.isfinite(value):
                        continue
                    s = series.get(key)
                    if s is None:
                        s = series[key] = Series()
                    s.add(int(step or 0), float(value))
                    dirty.add(key)
                elif isinstance(value, str):
                    text[key] = value
