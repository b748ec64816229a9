"""Disk health: free space, growth rate and time to full for the filesystem holding a path.

`disk_health(path, history)` is a pure reading: `history` is a sequence of earlier
`(unix_time, free_bytes)` samples of the same filesystem (the telemetry thread records one in every
`sys` metrics row as `disk_free_bytes`; `disk_history(run_dir)` reads them back, and a long-running
watcher or the console adds its own). The growth rate is a least-squares fit of free space over
the samples within `growth_window_min` and the reading now (`runtime.estimates.fit_fill_rate`: a
rate from two readings swung forty-fold between checkpoint bursts); time to full is free space
divided by that rate (None when space is not shrinking or the samples span under ten minutes).
Levels come from `configs/ops.yaml` `disk:`: critical when free space is under `critical_free_mb`
or even the slow end of the fitted rate fills the disk within `critical_hours_to_full`
(`runtime.estimates.fills_within`), warn likewise with the `warn_` keys. `ztb watch` turns a
non-ok level into an `alert` event; the console shows the same reading.
"""

from __future__ import annotations

import errno
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..humanize import age, fmt_bytes
from ..runs import JsonlTail
from .config import DiskConfig, load_ops_config
from .estimates import fills_within, fit_fill_rate, seconds_to_full

Level = Literal["ok", "warn", "critical"]
MB = 2**20


class Usage(NamedTuple):
    total: int
    used: int
    free: int


#: what `disk_health` asks for the numbers (shutil.disk_usage's shape); tests pass a fake filesystem
UsageFn = Callable[[Path], Any]


def read_usage(path: Path) -> Any:
    """The filesystem's (total, used, free); the one place tests replace to fake a full disk."""
    return shutil.disk_usage(path)


@dataclass(frozen=True)
class DiskHealth:
    path: Path
    free_bytes: int
    total_bytes: int
    growth_bytes_per_s: float | None
    seconds_to_full: float | None
    level: Level
    reasons: tuple[str, ...] = ()

    @property
    def free_pct(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    def message(self) -> str:
        """One line for an alert, a log or the console."""
        text = f"{fmt_bytes(self.free_bytes)} free of {fmt_bytes(self.total_bytes)} ({self.free_pct:.1f}%)"
        if self.growth_bytes_per_s is not None and self.growth_bytes_per_s > 0:
            text += f", growing {fmt_bytes(self.growth_bytes_per_s)}/s"
        if self.seconds_to_full is not None:
            text += f", full in {age(self.seconds_to_full, words=True)}"
        if self.reasons:
            text += " — " + "; ".join(self.reasons)
        return text


def existing_ancestor(path: Path) -> Path:
    """The path itself or its nearest existing parent (an artifacts folder may not exist yet)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def disk_health(
    path: Path,
    history: Sequence[tuple[float, int]] = (),
    config: DiskConfig | None = None,
    now: float | None = None,
    usage: UsageFn | None = None,
) -> DiskHealth:
    cfg = config or DiskConfig()
    now = time.time() if now is None else now
    where = existing_ancestor(path)
    u = (usage or read_usage)(where)
    # the reading now counts as a sample; earlier samples at or after `now` are not history
    samples = [(t, f) for t, f in history if t < now]
    samples.append((now, u.free))
    fit = fit_fill_rate(samples, now, cfg.growth_window_min * 60.0)
    level: Level = "ok"
    reasons: list[str] = []

    def raise_to(new: Level, why: str) -> None:
        nonlocal level
        reasons.append(why)
        if new == "critical" or level == "ok":
            level = new

    free_mb = u.free / MB
    if cfg.critical_free_mb and free_mb < cfg.critical_free_mb:
        raise_to("critical", f"under {cfg.critical_free_mb:g} MiB free")
    elif cfg.warn_free_mb and free_mb < cfg.warn_free_mb:
        raise_to("warn", f"under {cfg.warn_free_mb:g} MiB free")
    by_rate: tuple[tuple[Level, float], ...] = (
        ("critical", cfg.critical_hours_to_full),
        ("warn", cfg.warn_hours_to_full),
    )
    for name, hours in by_rate:
        if hours and fills_within(u.free, fit, hours * 3600.0):
            raise_to(name, f"full within {hours:g} h at this rate")
            break
    growth = fit.rate if fit is not None else None
    return DiskHealth(where, int(u.free), int(u.total), growth, seconds_to_full(u.free, fit), level, tuple(reasons))


def disk_fields(path: Path, usage: UsageFn | None = None) -> dict[str, int]:
    """The two numbers the telemetry thread adds to each `sys` row."""
    u = (usage or read_usage)(existing_ancestor(path))
    return {"disk_free_bytes": int(u.free), "disk_total_bytes": int(u.total)}


def disk_history(run_dir: Path, from_end_bytes: int = 256 << 10) -> list[tuple[float, int]]:
    """(time, free bytes) from the `sys` telemetry rows near the end of a run's metrics."""
    records = JsonlTail(Path(run_dir) / "metrics.jsonl", from_end_bytes=from_end_bytes).poll().records
    out = []
    for rec in records:
        if rec.get("split") == "sys" and isinstance(rec.get("disk_free_bytes"), (int, float)):
            out.append((float(rec.get("time", 0.0)), int(rec["disk_free_bytes"])))
    return out


def run_disk_health(run_dir: Path, config: DiskConfig | None = None, now: float | None = None) -> DiskHealth:
    """Disk health of a run's filesystem from its own telemetry history: what `ztb watch` checks and
    the console shows (thresholds from configs/ops.yaml unless given)."""
    return disk_health(run_dir, disk_history(run_dir), config or load_ops_config().disk, now)


class DiskSampler:
    """Keeps recent samples in memory for a long-running watcher (or the console)."""

    def __init__(self, path: Path, maxlen: int = 720, usage: UsageFn | None = None):
        self.path = Path(path)
        self.usage = usage
        self.samples: deque[tuple[float, int]] = deque(maxlen=maxlen)

    def reading(self, config: DiskConfig | None = None, extra: Iterable[tuple[float, int]] = ()) -> DiskHealth:
        now = time.time()
        health = disk_health(self.path, [*extra, *self.samples], config, now, self.usage)
        self.samples.append((now, health.free_bytes))
        return health


def alert_write_failure(writer: Any, what: str, step: int | None, exc: BaseException) -> None:
    """A write that matters failed (a checkpoint, a journal row): record an `alert` event at once,
    with the disk's state when the disk is full, so `ztb watch`, the console and notifications see it.
    The caller keeps its own detailed event (e.g. `checkpoint_failed`)."""
    message = f"{what} at step {step:,} could not be written: {exc}" if step is not None else f"{what}: {exc}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        message += f" [{disk_health(writer.dir).message()}]"
    writer.event("alert", check=f"{what.replace(' ', '_')}_failed", message=message[:500], step=step)
