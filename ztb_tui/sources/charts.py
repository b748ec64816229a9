"""Whole-history series for the charts, downsampled for drawing."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ztb_core.runs import JsonlTail

from .metrics import MetricsSource

CHART_BUCKETS = 512  # points kept per charted series: more than a terminal can draw


class Downsampled:
    """A bounded summary of a long series for drawing: at most `cap` points, each the mean of
    `width` consecutive values at the step of the last one; when full, neighbours merge and
    `width` doubles. O(1) amortised per value, so a 1M-point series costs 512 points of memory.
    Drawing only: statistics (last/min/max) come from every value (`Series`)."""

    __slots__ = ("cap", "width", "steps", "values", "_acc", "_n", "_step", "count")

    def __init__(self, cap: int = CHART_BUCKETS):
        self.cap = cap
        self.width = 1
        self.steps: list[float] = []
        self.values: list[float] = []
        self._acc = 0.0
        self._n = 0
        self._step = 0.0
        self.count = 0

    def add(self, step: float, value: float) -> bool:
        """Adds one value; True when a drawn point was completed (the chart needs a redraw)."""
        self.count += 1
        self._acc += value
        self._n += 1
        self._step = step
        if self._n < self.width:
            return False
        self.steps.append(step)
        self.values.append(self._acc / self._n)
        self._acc, self._n = 0.0, 0
        if len(self.values) >= self.cap:
            self.steps = self.steps[1::2]
            v = self.values
            self.values = [(v[i] + v[i + 1]) / 2 for i in range(0, len(v) - 1, 2)]
            self.width *= 2
        return True

    def points(self) -> tuple[list[float], list[float]]:
        """The completed points. A partial bucket is drawn only while there is nothing else: on a
        long series the chart then changes once per `width` values, not on every new row (the
        newest value itself is in the panel's numbers)."""
        if self._n and not self.values:
            return [self._step], [self._acc / self._n]
        return list(self.steps), list(self.values)


@dataclass(frozen=True)
class ChartSnapshot:
    series: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]  # "split/name" -> (steps, values)
    counts: dict[str, int]  # values seen per key (all of them, not the drawn ones)
    version: int  # changes whenever any series changed


class ChartSource:
    """Follows one run's metrics.jsonl from its first line (charts show the whole run, unlike
    the sparklines' recent window) and keeps each numeric series downsampled. The first poll of a
    huge file runs in the poller's thread; later polls read only what was appended."""

    def __init__(self, run_dir: Path, keep: Callable[[str], bool] | None = None, cap: int = CHART_BUCKETS):
        self.tail = JsonlTail(Path(run_dir) / "metrics.jsonl")
        self.keep = keep or (lambda key: not key.startswith("sys/"))
        self.cap = cap
        self._series: dict[str, Downsampled] = {}
        self._version = 0
        self._snap: ChartSnapshot | None = None

    def poll(self) -> ChartSnapshot:
        result = self.tail.poll()
        if result.reset:
            self._series.clear()
        changed = result.reset
        series, keep = self._series, self.keep
        for rec in result.records:
            split = rec.get("split", "?")
            step = rec.get("step", 0)
            step = float(step) if isinstance(step, (int, float)) else 0.0
            for name, value in rec.items():
                if name in MetricsSource.SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if not math.isfinite(value):
                    continue
                key = f"{split}/{name}"
                d = series.get(key)
                if d is None:
                    if not keep(key):
                        continue
                    d = series[key] = Downsampled(self.cap)
                if d.add(step, float(value)) or d.count == 1:
                    changed = True
        if changed or self._snap is None:
            self._version += 1
            drawn = {}
            for key, d in series.items():
                xs, ys = d.points()
                drawn[key] = (tuple(xs), tuple(ys))
            self._snap = ChartSnapshot(drawn, {k: d.count for k, d in series.items()}, self._version)
        return self._snap
