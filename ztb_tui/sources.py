"""Data sources the console polls. Plain Python, no Textual: each `poll()` runs in a worker
thread and returns an immutable snapshot the UI thread applies.

Everything reads the run-directory protocol (`ztb_core.runs`) and never writes to a run except
through the ops helpers (kill-file, stop escalation, manifest removal). `now` is injectable so
snapshot tests can freeze time.
"""
# Over 600 lines, to be split: one poll source per panel; they become a package of one module each (issue 26 item 7).

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ztb_core.atomic import atomic_write_json, read_json
from ztb_core.errors import ZtbError
from ztb_core.live.execution.journal import read_snapshot
from ztb_core.live.loop.live_config import journal_path_for
from ztb_core.live.loop.requests import breaker_reset_pending
from ztb_core.manifest import Manifest
from ztb_core.paths import global_kill_file, runs_dir
from ztb_core.runs import (
    DEFAULT_STALE_AFTER_S,
    FINAL_STATES,
    JsonlTail,
    LineTail,
    RunReader,
    RunSummary,
    summarize,
)

from .estimates import EwmaRate, fills_within, fit_fill_rate, seconds_to_full
from .health import Flag, HealthSource

if TYPE_CHECKING:
    from ztb_core.runtime.config import DiskConfig
    from ztb_core.runtime.disk import DiskHealth, Level

Clock = Callable[[], float]

#: metric rows read on first paint of a run: enough history for every sparkline, and cheap
#: even when metrics.jsonl holds a million lines (the tail, never the whole file).
METRICS_TAIL_BYTES = 2 << 20
LOG_TAIL_BYTES = 64 << 10
EVENTS_TAIL_BYTES = 256 << 10
HISTORY = 240  # points kept per series: wider than any terminal's sparkline


# ---------------------------------------------------------------------------------------
# runs list
# ---------------------------------------------------------------------------------------


class RunsSource:
    """Scans `<artifacts>/runs` for run folders. run.json is immutable, so it is read once per
    run; each poll reads only the small status.json files. Step rate (fps) comes from the
    status when the run reports it, else from the step changes between polls, averaged over
    about a minute (`estimates.EwmaRate`): the step moves in bursts, and a two-poll rate made
    the ETA jump at every poll."""

    def __init__(self, artifacts: Path, now: Clock = time.time, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.artifacts = Path(artifacts)
        self.now = now
        self.stale_after_s = stale_after_s
        self._info: dict[str, dict] = {}
        self._rates: dict[str, EwmaRate] = {}  # run_id -> its averaged step rate
        self._health: dict[str, HealthSource] = {}

    @property
    def root(self) -> Path:
        return runs_dir(self.artifacts)

    def poll(self) -> list[RunSummary]:
        root = self.root
        if not root.is_dir():
            return []
        rows: list[RunSummary] = []
        now = self.now()
        for child in root.iterdir():
            if not child.is_dir():
                continue
            info = self._info.get(child.name)
            if info is None:
                if not (child / "run.json").exists():
                    continue
                info = RunReader(child).info()
                self._info[child.name] = info
            rows.append(self._row(child, info, RunReader(child).status(), now))
        rows.sort(key=lambda r: (r.created_at or "", r.run_id), reverse=True)  # newest first
        return rows

    def one(self, run_dir: Path) -> RunSummary:
        """The row of a single run (the run view polls just its own run)."""
        run_dir = Path(run_dir)
        info = self._info.get(run_dir.name)
        if info is None:
            info = self._info[run_dir.name] = RunReader(run_dir).info()
        return self._row(run_dir, info, RunReader(run_dir).status(), self.now())

    def _row(self, run_dir: Path, info: dict, status: dict, now: float) -> RunSummary:
        row = summarize(run_dir, info, status, now=now, stale_after_s=self.stale_after_s)
        row.fps = self._shown_rate(row.liveness, self._rate(run_dir.name, status, row.step), status, now)
        return row

    def _rate(self, run_id: str, status: dict, step: int) -> float | None:
        reported = status.get("fps")
        if status.get("state") in FINAL_STATES:
            return None
        if isinstance(reported, (int, float)) and math.isfinite(reported):
            return float(reported)
        at = float(status.get("step_updated_at") or 0.0)
        rate = self._rates.get(run_id)
        if rate is None:
            rate = self._rates[run_id] = EwmaRate()
        return rate.update(at, step)

    def _shown_rate(self, label: str, fps: float | None, status: dict, now: float) -> float | None:
        """A rate (and so an ETA) only while the run visibly makes progress: a stale or dead run,
        or one whose step has not moved for `stale_after_s`, shows none rather than an old one."""
        if label in ("dead", "stale"):
            return None
        moved = status.get("step_updated_at")
        if isinstance(moved, (int, float)) and now - float(moved) > self.stale_after_s:
            return None
        return fps

    def health(self, rows: Iterable[RunSummary]) -> dict[str, tuple[Flag, ...]]:
        """The warnings of each run (`health.HealthSource`), read incrementally: a finished run's
        files cost one stat each per poll."""
        out: dict[str, tuple[Flag, ...]] = {}
        for row in rows:
            src = self._health.get(row.run_id)
            if src is None or src.run_dir != row.dir:
                src = self._health[row.run_id] = HealthSource(row.dir, row.kind, now=self.now)
            flags = src.poll(row)
            if flags:
                out[row.run_id] = flags
        return out

    def global_stop(self) -> Path | None:
        """The global kill-file when it exists: every run stops, and so does any new one."""
        path = global_kill_file(self.artifacts)
        return path if path.exists() else None


# ---------------------------------------------------------------------------------------
# metrics: incremental series per (split, name)
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# text logs and events
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailLines:
    lines: list[str]
    reset: bool = False  # the file was truncated: what was shown before is gone


class LogsSource:
    """All text logs of a run: `logs/*.log` plus the console's launch output for that run
    (which holds anything printed before the run wrote its own log, such as a crash at start).

    Files are read oldest first (by modification time, not by name: a resume's output must come
    after the first start's, so the tail shows the newest text). Lines carry no file-name prefix;
    a short `── name ──` line marks where the text switches to another file."""

    def __init__(self, run_dir: Path, extra: Iterable[Path] | Callable[[], Iterable[Path]] = ()):
        self.run_dir = Path(run_dir)
        self._extra = extra
        self.followers: dict[Path, LineTail] = {}
        self._current: Path | None = None

    def extra(self) -> list[Path]:
        found = self._extra() if callable(self._extra) else self._extra
        return [Path(p) for p in found]

    def files(self) -> list[Path]:
        logs = self.run_dir / "logs"
        found = list(logs.glob("*.log")) if logs.is_dir() else []
        found += [p for p in self.extra() if p.exists()]
        return sorted(found, key=_mtime_then_name)

    def poll(self) -> TailLines:
        files = self.files()
        lines: list[str] = []
        reset = False
        for path in files:
            follower = self.followers.get(path)
            if follower is None:
                follower = self.followers[path] = LineTail(path, LOG_TAIL_BYTES, max_read_bytes=4 << 20)
            got = follower.poll()
            reset |= got.reset
            if got.records and len(files) > 1 and path != self._current:
                lines.append(f"── {path.name} ──")
            if got.records:
                self._current = path
            lines.extend(got.records)
        return TailLines(lines, reset)

    def close(self) -> None:
        self.followers.clear()  # LineTail holds no open file between polls


def _mtime_then_name(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except OSError:
        return (math.inf, path.name)


ALERT_EVENTS = frozenset({"alert", "error", "failed", "fatal", "killed", "stop_escalated", "restarted"})
NOTICE_EVENTS = frozenset({"stop_requested", "stopping", "stopped", "resumed", "console_stop"})


class EventsSource:
    def __init__(self, run_dir: Path):
        self.tail = JsonlTail(Path(run_dir) / "events.jsonl", from_end_bytes=EVENTS_TAIL_BYTES)

    def poll(self) -> tuple[list[dict], bool]:
        result = self.tail.poll()
        return result.records, result.reset


def event_severity(record: dict) -> str:
    kind = str(record.get("event", ""))
    if kind in ALERT_EVENTS or record.get("level") in ("error", "critical"):
        return "alert"
    if kind in NOTICE_EVENTS or record.get("level") == "warning":
        return "notice"
    return "info"


def _short(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too (an event's detail is read, not
    parsed: 0.0097649739 says nothing 0.009765 does not)."""
    if isinstance(value, float):
        return float(f"{value:.4g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def event_text(record: dict) -> str:
    extra = {k: _short(v) for k, v in record.items() if k not in ("time", "event")}
    detail = " ".join(f"{k}={json.dumps(v, default=str) if not isinstance(v, str) else v}" for k, v in extra.items())
    return f"{record.get('event', '?')} {detail}".strip()


# ---------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointRow:
    file: str
    step: int
    created_at: str
    size: int | None
    ratio: float | None
    save_seconds: float | None
    sha256: str | None
    best: bool
    entry: dict = field(compare=False, default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one checkpoint file against the manifest."""

    file: str
    step: int
    ok: bool
    reason: str
    sha256: str | None = None
    verified_at: float | None = None

    @property
    def pruned(self) -> bool:
        return self.reason == PRUNED


PRUNED = "pruned"
VERIFY_REPORT = Path("reports") / "verify.json"


class CheckpointsSource:
    """The manifest of one run, plus the console's verification verdicts, which are kept in
    `reports/verify.json` so the next console (or another person's) knows what was checked. A
    read-only console (`record=False`) keeps its verdicts in memory and writes nothing."""

    def __init__(self, run_dir: Path, record: bool = True):
        self.run_dir = Path(run_dir)
        self.record = record
        self.manifest = Manifest(self.run_dir / "checkpoints")
        self._mtime: float | None = None
        self._rows: list[CheckpointRow] = []

    def poll(self) -> list[CheckpointRow]:
        """Re-reads the manifest only when it changed (one stat otherwise)."""
        try:
            mtime = self.manifest.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._rows = None, []
            return []
        if mtime != self._mtime:
            self._mtime = mtime
            self._rows = [
                CheckpointRow(
                    file=str(e.get("file")),
                    step=int(e.get("step", 0) or 0),
                    created_at=str(e.get("created_at", "")),
                    size=e.get("size"),
                    ratio=e.get("ratio"),
                    save_seconds=e.get("save_seconds"),
                    sha256=e.get("sha256"),
                    best=bool(e.get("best")),
                    entry=dict(e),
                )
                for e in self.manifest.entries()
            ]
        return list(self._rows)

    def current(self, row: CheckpointRow) -> CheckpointRow | None:
        """The manifest's entry for this checkpoint now (same file, same step), or None when it
        was pruned or replaced since the row was read."""
        for e in self.manifest.entries():
            if e.get("file") == row.file and int(e.get("step", 0) or 0) == row.step:
                return replace(row, sha256=e.get("sha256"), entry=dict(e))
        return None

    def verify(self, row: CheckpointRow) -> Verdict:
        """Verify the checkpoint the person chose, by file and step; a pruned one says so. The
        verdict is recorded in reports/verify.json."""
        now_row = self.current(row)
        if now_row is None:
            return Verdict(row.file, row.step, False, PRUNED)
        ok, reason = self.manifest.verify(now_row.entry)
        if not ok and reason == "missing" and self.current(row) is None:
            return Verdict(row.file, row.step, False, PRUNED)  # pruned while we read it
        verdict = Verdict(row.file, row.step, ok, reason, now_row.sha256, time.time())
        if self.record:
            self._record(verdict)
        return verdict

    def verdicts(self) -> dict[str, Verdict]:
        """Recorded verdicts still valid for the manifest (same file, step and sha256)."""
        try:
            raw = read_json(self.run_dir / VERIFY_REPORT)
        except (FileNotFoundError, ValueError, OSError):
            return {}
        current = {r.file: r for r in self.poll()}
        out: dict[str, Verdict] = {}
        for file, v in (raw.get("checkpoints") or {}).items() if isinstance(raw, dict) else ():
            row = current.get(file)
            if row is None or not isinstance(v, dict):
                continue
            if v.get("step") == row.step and v.get("sha256") == row.sha256:
                out[file] = Verdict(
                    file, row.step, bool(v.get("ok")), str(v.get("reason", "")), row.sha256, v.get("verified_at")
                )
        return out

    def _record(self, verdict: Verdict) -> None:
        path = self.run_dir / VERIFY_REPORT
        try:
            raw = read_json(path)
        except (FileNotFoundError, ValueError, OSError):
            raw = {}
        checkpoints = dict(raw.get("checkpoints") or {}) if isinstance(raw, dict) else {}
        checkpoints[verdict.file] = {
            "step": verdict.step,
            "ok": verdict.ok,
            "reason": verdict.reason,
            "sha256": verdict.sha256,
            "verified_at": verdict.verified_at,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"checkpoints": checkpoints})

    def remove(self, row: CheckpointRow) -> None:
        self.manifest.remove(row.file)
        self._mtime = None


# ---------------------------------------------------------------------------------------
# the console host: its own CPU/memory and GPUs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostSample:
    cpu_pct: float
    mem_pct: float
    mem_used_mb: float
    mem_total_mb: float
    gpu_available: bool
    gpu_reason: str
    gpus: tuple[Any, ...] = ()  # GpuSample
    disk: DiskHealth | None = None  # the artifacts filesystem


class CpuMeter:
    """Whole-machine CPU % since the previous call, from its own `cpu_times()` baseline.

    `psutil.cpu_percent(None)` keeps one baseline per process, shared with every other caller
    (the telemetry sampler, libraries), and its first call returns a meaningless 0.0; so the
    console read 0% on a saturated machine. Busy time is total minus idle and iowait, as psutil
    counts it."""

    def __init__(self, cpu_times: Callable[[], Any]):
        self._times = cpu_times
        self._last = cpu_times()  # the primed baseline: the first reading covers a real interval
        self._value = 0.0

    @staticmethod
    def _split(t: Any) -> tuple[float, float]:
        fields = t._asdict()
        # guest time is already counted in user/nice (Linux)
        total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
        idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
        return total, total - idle

    def __call__(self) -> float:
        now = self._times()
        total0, busy0 = self._split(self._last)
        total1, busy1 = self._split(now)
        if total1 - total0 > 0:
            self._value = max(0.0, min(100.0, 100.0 * (busy1 - busy0) / (total1 - total0)))
            self._last = now
        return self._value


def with_fill_forecast(health: DiskHealth, history: list[tuple[float, int]], cfg: DiskConfig, now: float) -> DiskHealth:
    """`health` with the fill rate fitted over the window (`estimates.fit_fill_rate`) and the
    time-to-full levels of configs/ops.yaml, raised only when the slow end of the fitted rate fills
    the disk in time (`estimates.fills_within` says why)."""
    fit = fit_fill_rate(history, now, cfg.growth_window_min * 60.0)
    level, reasons = health.level, list(health.reasons)
    levels: tuple[tuple[Level, float], ...] = (
        ("critical", cfg.critical_hours_to_full),
        ("warn", cfg.warn_hours_to_full),
    )
    for name, hours in levels:
        if hours and fills_within(health.free_bytes, fit, hours * 3600.0):
            reasons.append(f"full within {hours:g} h at this rate")
            if name == "critical" or level == "ok":
                level = name
            break
    return replace(
        health,
        growth_bytes_per_s=fit.rate if fit is not None else None,
        seconds_to_full=seconds_to_full(health.free_bytes, fit),
        level=level,
        reasons=tuple(reasons),
    )


class HostSource:
    """CPU, memory and GPUs of the machine the console runs on. Takes any `GpuSource`
    (NVML in production, a fake in tests); no GPU is a state to show, never an error."""

    def __init__(
        self,
        gpu: Any = None,
        mem: Callable[[], Any] | None = None,
        cpu: Callable[[], float] | None = None,
        disk_path: Path | None = None,
        now: Clock = time.time,
        disk_usage: Callable[[Path], Any] | None = None,
    ):
        import psutil

        self.disk_path = disk_path
        self.now = now
        self._disk_usage = disk_usage
        self._disk_config: DiskConfig | None = None
        self._disk_history: deque[tuple[float, int]] = deque(maxlen=4096)
        if gpu is None:
            from ztb_core.runtime.telemetry import NvmlSource

            gpu = NvmlSource()
        self.gpu = gpu
        self._mem = mem or psutil.virtual_memory
        self._cpu = cpu or CpuMeter(psutil.cpu_times)

    def _disk(self) -> DiskHealth | None:
        """Free space, growth and time to full of the artifacts filesystem (runtime.disk)."""
        if self.disk_path is None:
            return None
        # imported in the poller's thread: runtime.disk pulls in pydantic, kept off the first paint
        from ztb_core.runtime.config import load_ops_config
        from ztb_core.runtime.disk import disk_health

        now = self.now()
        try:
            if self._disk_config is None:  # the thresholds `ztb watch` alerts on (configs/ops.yaml)
                self._disk_config = load_ops_config().disk
            # the free-space levels from runtime.disk; the time to full from the console's own
            # fitted rate (below): runtime.disk's two-reading rate swung 40-fold between polls
            health = disk_health(self.disk_path, (), self._disk_config, now=now, usage=self._disk_usage)
        except (OSError, ZtbError):
            return None
        self._disk_history.append((now, health.free_bytes))
        return with_fill_forecast(health, list(self._disk_history), self._disk_config, now)

    def poll(self) -> HostSample:
        vm = self._mem()
        try:
            gpus = tuple(self.gpu.gpus()) if self.gpu.available else ()
            available, reason = bool(self.gpu.available), str(self.gpu.reason)
        except Exception as exc:  # a driver hiccup must not take the console down
            gpus, available, reason = (), False, f"{exc.__class__.__name__}: {exc}"
        return HostSample(
            disk=self._disk(),
            cpu_pct=float(self._cpu()),
            mem_pct=float(vm.percent),
            mem_used_mb=(vm.total - vm.available) / 2**20,
            mem_total_mb=vm.total / 2**20,
            gpu_available=available,
            gpu_reason=reason,
            gpus=gpus,
        )


# ---------------------------------------------------------------------------------------
# charts: whole-history series, downsampled for drawing
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# run kinds with their own view: evaluation report, tuning trials, live trading state
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalReport:
    path: Path
    mtime_ns: int
    data: dict = field(compare=False)


def eval_report(run_dir: Path) -> EvalReport | None:
    """The newest `reports/eval_<id>.json` an evaluation run wrote (evaluation.writer)."""
    reports = Path(run_dir) / "reports"
    found = []
    for p in reports.glob("eval_*.json") if reports.is_dir() else ():
        try:
            found.append((p.stat().st_mtime_ns, p))
        except OSError:
            continue
    if not found:
        return None
    mtime, path = max(found)
    try:
        data = read_json(path)
    except (ValueError, OSError):
        return None
    return EvalReport(path, mtime, data if isinstance(data, dict) else {})


@dataclass(frozen=True)
class TrialsReport:
    study: str
    direction: str
    trials: tuple[dict, ...] = field(compare=False)
    mtime_ns: int = 0
    version: int = 0  # changes whenever a running trial's score or the started trials change

    def best(self) -> dict | None:
        """The best finished trial so far (a running trial's interim score is not a result)."""
        done = [t for t in self.trials if t.get("state") == "complete" and isinstance(t.get("value"), (int, float))]
        if not done:
            return None
        pick = min if str(self.direction).lower().startswith("min") else max
        return pick(done, key=lambda t: t["value"])

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.get("state") == state)


TRIALS_REPORT = Path("reports") / "trials.json"


def _trial_row(t: dict) -> dict:
    # Optuna's state names, lower case as `ztb tune` writes them ("COMPLETE" from older files too)
    return {**t, "state": str(t.get("state", "?")).lower()}


def trials_report(run_dir: Path) -> TrialsReport | None:
    """`reports/trials.json` of a tuning study: {"study", "storage", "direction", "trials": [...]}
    (written after each finished trial; `TrialsSource` adds the trial still running)."""
    path = Path(run_dir) / TRIALS_REPORT
    try:
        mtime = path.stat().st_mtime_ns
        data = read_json(path)
    except (FileNotFoundError, ValueError, OSError):
        return None
    if not isinstance(data, dict):
        return None
    trials = tuple(_trial_row(t) for t in data.get("trials") or () if isinstance(t, dict))
    return TrialsReport(str(data.get("study", "?")), str(data.get("direction", "maximize")), trials, mtime)


def best_eval_score(run_dir: Path) -> float | None:
    """A running trial's score so far: the best periodic-evaluation Sharpe in its metrics (what
    `ztb tune` reports to the study with objective: best)."""
    best: float | None = None
    for rec in JsonlTail(Path(run_dir) / "metrics.jsonl", from_end_bytes=METRICS_TAIL_BYTES).poll().records:
        v = rec.get("sharpe")
        if rec.get("split") in ("val", "test") and isinstance(v, (int, float)) and math.isfinite(v):
            best = v if best is None else max(best, v)
    return best


class TrialsSource:
    """The study as it stands: `reports/trials.json` plus the trials this worker started that the
    file does not hold yet (its `trial_started` events), each with its run's score so far."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.events = JsonlTail(self.run_dir / "events.jsonl")
        self.started: dict[int, dict] = {}
        self.finished: set[int] = set()
        self.study = self.run_dir.name

    def poll(self) -> TrialsReport | None:
        got = self.events.poll()
        if got.reset:
            self.started.clear()
            self.finished.clear()
        for ev in got.records:
            if ev.get("event") == "trial_started" and isinstance(ev.get("trial"), int):
                self.started[ev["trial"]] = ev
            elif ev.get("event") == "trial_finished" and isinstance(ev.get("trial"), int):
                self.finished.add(ev["trial"])
            elif ev.get("event") == "study_opened" and ev.get("study"):
                self.study = str(ev["study"])
        report = trials_report(self.run_dir)
        known = {t.get("number") for t in report.trials} if report else set()
        extra = []
        for number, ev in sorted(self.started.items()):
            if number in known or number in self.finished:
                continue
            run_id = ev.get("run_id")
            extra.append(
                {
                    "number": number,
                    "state": "running",
                    "value": best_eval_score(self.run_dir.parent / str(run_id)) if run_id else None,
                    "params": ev.get("params") or {},
                    "run_id": run_id,
                    "started_at": ev.get("time"),
                }
            )
        if report is None and not extra:
            return None
        if report is None:
            report = TrialsReport(self.study, "maximize", ())
        if not extra:
            return report
        rows = tuple(sorted([*report.trials, *extra], key=lambda t: t.get("number", 0)))
        return replace(report, trials=rows, version=hash(tuple((t["number"], t["value"]) for t in extra)))


@dataclass(frozen=True)
class LiveState:
    step: int
    metrics: dict  # the newest `live` metrics row
    risk: dict | None  # the risk state the loop keeps in its journal (breakers, daily halt, ...)
    open_orders: tuple[dict, ...]
    fills: tuple[dict, ...]  # newest first
    reset_pending: bool
    journal_error: str | None = None


LIVE_TAIL_BYTES = 64 << 10
FILLS_SHOWN = 20


def live_journal_path(run_dir: Path) -> Path | None:
    """The journal a live run writes: `journal` in its report, else the core's rule
    (`journal_path_for`) applied to the run's saved config and its artifacts folder."""
    run_dir = Path(run_dir)
    try:
        report = read_json(run_dir / "reports" / "live_report.json")
        if isinstance(report, dict) and report.get("journal"):
            return Path(report["journal"])
    except (FileNotFoundError, ValueError, OSError):
        pass
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, ValueError):
        return None
    exchange = cfg.get("exchange") or {}
    return journal_path_for(
        str(cfg.get("mode", "dry_run")),
        str(exchange.get("exchange", "?")),
        str(exchange.get("symbol", "")),
        cfg.get("journal_path"),
        artifacts=run_dir.parent.parent,
    )


def read_journal(path: Path) -> tuple[dict | None, list[dict], list[dict]]:
    """(risk state, open orders, newest fills) of a live journal, read-only (the core's reader)."""
    risk, orders, fills = read_snapshot(path, FILLS_SHOWN)
    if risk is not None:
        risk.setdefault("reduce_only", bool(risk.get("breakers")) or risk.get("daily_halt") is not None)
    return risk, orders, fills


def live_state(run_dir: Path) -> LiveState:
    run_dir = Path(run_dir)
    rows = JsonlTail(run_dir / "metrics.jsonl", from_end_bytes=LIVE_TAIL_BYTES).poll().records
    latest: dict = next((r for r in reversed(rows) if r.get("split") == "live"), {})
    risk: dict | None = None
    orders: list[dict] = []
    fills: list[dict] = []
    error = None
    path = live_journal_path(run_dir)
    if path is not None and path.exists():
        try:
            risk, orders, fills = read_journal(path)
        except Exception as exc:  # a locked or foreign file: shown, the rest keeps working
            error = f"{exc.__class__.__name__}: {exc}"
    elif path is not None:
        error = f"{path} not found"
    return LiveState(
        step=int(latest.get("step", 0) or 0),
        metrics=latest,
        risk=risk,
        open_orders=tuple(orders),
        fills=tuple(fills),
        reset_pending=breaker_reset_pending(run_dir),
        journal_error=error,
    )
