"""Data sources the console polls. Plain Python, no Textual: each `poll()` runs in a worker
thread and returns an immutable snapshot the UI thread applies.

Everything reads the run-directory protocol (`ztb_core.runs`) and never writes to a run except
through the ops helpers (kill-file, stop escalation, manifest removal). `now` is injectable so
snapshot tests can freeze time.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ztb_core.runs import ACTIVE_STATES, DEFAULT_STALE_AFTER_S, FINAL_STATES, JsonlTail, RunReader, liveness, runs_dir

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


@dataclass(frozen=True)
class RunRow:
    run_id: str
    dir: Path
    kind: str
    state: str
    liveness: str  # running / stale / dead / stopped / completed / failed ...
    step: int
    total_steps: int | None
    fps: float | None
    heartbeat_age_s: float | None
    pid: int | None
    pid_alive: bool | None
    created_at: str
    message: str | None
    status: dict = field(default_factory=dict, compare=False)

    @property
    def progress(self) -> float | None:
        if not self.total_steps:
            return None
        return max(0.0, min(1.0, self.step / self.total_steps))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES and self.liveness not in ("dead",)

    @property
    def eta_s(self) -> float | None:
        if not self.total_steps or not self.fps or self.fps <= 0 or self.state in FINAL_STATES:
            return None
        return max(0.0, (self.total_steps - self.step) / self.fps)


class RunsSource:
    """Scans `<artifacts>/runs` for run folders. run.json is immutable, so it is read once per
    run; each poll reads only the small status.json files. Step rate (fps) comes from the
    status when the run reports it, else from the step change between two polls."""

    def __init__(self, artifacts: Path, now: Clock = time.time, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.artifacts = Path(artifacts)
        self.now = now
        self.stale_after_s = stale_after_s
        self._info: dict[str, dict] = {}
        self._last: dict[str, tuple[int, float]] = {}  # run_id -> (step, step_updated_at)
        self._fps: dict[str, float] = {}

    @property
    def root(self) -> Path:
        return runs_dir(self.artifacts)

    def poll(self) -> list[RunRow]:
        root = self.root
        if not root.is_dir():
            return []
        rows: list[RunRow] = []
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
        rows.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)  # newest first
        return rows

    def one(self, run_dir: Path) -> RunRow:
        """The row of a single run (the run view polls just its own run)."""
        run_dir = Path(run_dir)
        info = self._info.get(run_dir.name)
        if info is None:
            info = self._info[run_dir.name] = RunReader(run_dir).info()
        return self._row(run_dir, info, RunReader(run_dir).status(), self.now())

    def _row(self, run_dir: Path, info: dict, status: dict, now: float) -> RunRow:
        label, alive = liveness(status, now=now, stale_after_s=self.stale_after_s) if status else ("unknown", None)
        step = int(status.get("step", 0) or 0)
        updated = status.get("updated_at")
        return RunRow(
            run_id=run_dir.name,
            dir=run_dir,
            kind=str(info.get("kind", status.get("kind", "?"))),
            state=str(status.get("state", "unknown")),
            liveness=label,
            step=step,
            total_steps=status.get("total_steps"),
            fps=self._shown_rate(label, self._rate(run_dir.name, status, step)),
            heartbeat_age_s=max(0.0, now - float(updated)) if updated else None,
            pid=status.get("pid"),
            pid_alive=alive,
            created_at=str(info.get("created_at") or ""),
            message=status.get("message"),
            status=status,
        )

    def _rate(self, run_id: str, status: dict, step: int) -> float | None:
        reported = status.get("fps")
        if status.get("state") in FINAL_STATES:
            return None
        if isinstance(reported, (int, float)) and math.isfinite(reported):
            return float(reported)
        at = float(status.get("step_updated_at") or 0.0)
        prev = self._last.get(run_id)
        self._last[run_id] = (step, at)
        if prev is not None and at > prev[1] and step > prev[0]:
            self._fps[run_id] = (step - prev[0]) / (at - prev[1])
        if status.get("state") in FINAL_STATES:
            return None
        return self._fps.get(run_id)

    @staticmethod
    def _shown_rate(label: str, fps: float | None) -> float | None:
        return None if label == "dead" else fps


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


class TextFollower:
    """Follows a growing text file by byte offset (like `tail -F`).

    Reads only what is new; holds back an unterminated last line; on truncation (size below
    the offset) restarts from the top; on rotation (the path now names another inode) reads
    what was left in the old file, then follows the new one from its start."""

    def __init__(self, path: Path, from_end_bytes: int | None = LOG_TAIL_BYTES, max_read_bytes: int = 4 << 20):
        self.path = Path(path)
        self._fh = None
        self._inode: int | None = None
        self.offset = 0
        self._partial = b""
        self._from_end = from_end_bytes
        self._max_read = max_read_bytes

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _open(self, st: os.stat_result, first: bool) -> None:
        self.close()
        self._fh = open(self.path, "rb")
        self._inode = st.st_ino
        self.offset = 0
        self._partial = b""
        if first and self._from_end is not None and st.st_size > self._from_end:
            self._fh.seek(st.st_size - self._from_end)
            self._fh.readline()  # land on a line boundary
            self.offset = self._fh.tell()

    def _read(self) -> bytes:
        assert self._fh is not None
        self._fh.seek(self.offset)
        data = self._fh.read(self._max_read)
        self.offset += len(data)
        return data

    def poll(self) -> TailLines:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return TailLines([])
        data = b""
        reset = False
        if self._fh is None:
            self._open(st, first=True)
        elif st.st_ino != self._inode:
            rest = self._partial + self._read()  # what was left in the rotated file
            if rest and not rest.endswith(b"\n"):
                rest += b"\n"
            data = rest
            self._open(st, first=False)
        elif st.st_size < self.offset:
            reset = True
            self.offset, self._partial = 0, b""
        if st.st_size > self.offset:
            data += self._partial + self._read()
            self._partial = b""
        elif not data:
            return TailLines([], reset)
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return TailLines([], reset)
        self._partial = data[cut + 1 :]
        text = data[: cut + 1].decode("utf-8", errors="replace")
        return TailLines(text.splitlines(), reset)


class LogsSource:
    """All text logs of a run: `logs/*.log` plus the console's launch output for that run
    (which holds anything printed before the run wrote its own log, such as a crash at start)."""

    def __init__(self, run_dir: Path, extra: Iterable[Path] = ()):
        self.run_dir = Path(run_dir)
        self.extra = [Path(p) for p in extra]
        self.followers: dict[Path, TextFollower] = {}

    def files(self) -> list[Path]:
        found = sorted((self.run_dir / "logs").glob("*.log")) if (self.run_dir / "logs").is_dir() else []
        return found + [p for p in self.extra if p.exists()]

    def poll(self) -> TailLines:
        files = self.files()
        lines: list[str] = []
        reset = False
        many = len(files) > 1
        for path in files:
            follower = self.followers.get(path)
            if follower is None:
                follower = self.followers[path] = TextFollower(path)
            got = follower.poll()
            reset |= got.reset
            lines.extend(f"[{path.name}] {line}" if many else line for line in got.lines)
        return TailLines(lines, reset)

    def close(self) -> None:
        for f in self.followers.values():
            f.close()


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


def event_text(record: dict) -> str:
    extra = {k: v for k, v in record.items() if k not in ("time", "event")}
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


class CheckpointsSource:
    def __init__(self, run_dir: Path):
        from ztb_core.manifest import Manifest

        self.manifest = Manifest(Path(run_dir) / "checkpoints")
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

    def verify(self, row: CheckpointRow) -> tuple[bool, str]:
        return self.manifest.verify(row.entry)

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


class HostSource:
    """CPU, memory and GPUs of the machine the console runs on. Takes any `GpuSource`
    (NVML in production, a fake in tests); no GPU is a state to show, never an error."""

    def __init__(self, gpu: Any = None, mem: Callable[[], Any] | None = None, cpu: Callable[[], float] | None = None):
        import psutil

        if gpu is None:
            from ztb_core.ops.telemetry import NvmlSource

            gpu = NvmlSource()
        self.gpu = gpu
        self._mem = mem or psutil.virtual_memory
        self._cpu = cpu or (lambda: psutil.cpu_percent(None))

    def poll(self) -> HostSample:
        vm = self._mem()
        try:
            gpus = tuple(self.gpu.gpus()) if self.gpu.available else ()
            available, reason = bool(self.gpu.available), str(self.gpu.reason)
        except Exception as exc:  # a driver hiccup must not take the console down
            gpus, available, reason = (), False, f"{exc.__class__.__name__}: {exc}"
        return HostSample(
            cpu_pct=float(self._cpu()),
            mem_pct=float(vm.percent),
            mem_used_mb=(vm.total - vm.available) / 2**20,
            mem_total_mb=vm.total / 2**20,
            gpu_available=available,
            gpu_reason=reason,
            gpus=gpus,
        )
