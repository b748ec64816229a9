"""The reading side of the run protocol: incremental tails, run summaries, liveness, listing and
resolving runs. The console, `ztb runs`, the watcher and the rollup only read through here."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from ..atomic import read_json
from ..errors import RunError
from ..paths import global_kill_file, runs_dir
from ..segments import read_segments, read_segments_tail
from .protocol import (
    ACTIVE_STATES,
    DEFAULT_STALE_AFTER_S,
    FINAL_STATES,
    STOP_FILE,
)


@dataclass
class TailResult:
    records: list[Any]  # dicts from JsonlTail, str lines from LineTail
    reset: bool = False  # the file was truncated or replaced: readers should drop what they had


class JsonlTail:
    """Incremental reader of an append-only JSONL file.

    Keeps a byte offset and reads only what is new; an unterminated last line waits for the next
    poll; a shrink or inode change (truncation, rotation, atomic rewrite) restarts from the top
    and says so with `reset=True`. A poll that finds nothing new costs one `os.stat`.
    History moved into compressed segments (`ztb runs compact`) is read first, on the first poll and
    after a reset, so readers see one continuous file.
    """

    def __init__(self, path: Path, from_end_bytes: int | None = None, max_read_bytes: int = 16 << 20):
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None
        self._partial = b""
        self._max_read = max_read_bytes
        self._from_end = from_end_bytes
        self._history_read = False
        self.bad_lines = 0

    def _start_offset(self, size: int, fh) -> int:
        if self._from_end is None or size <= self._from_end:
            return 0
        fh.seek(size - self._from_end)
        fh.readline()  # skip to the next line boundary
        return fh.tell()

    def _history(self, live_size: int) -> bytes:
        """Compacted segments to read before the live file: all of them, or with `from_end_bytes`
        only enough to make up what the live file lacks (from a line boundary)."""
        if self._from_end is None:
            return read_segments(self.path)
        if live_size >= self._from_end:
            return b""
        data = read_segments_tail(self.path, self._from_end - live_size)
        skip = len(data) - (self._from_end - live_size)
        if skip > 0:
            data = data[data.find(b"\n", skip - 1) + 1 :]
        return data

    def poll(self) -> TailResult:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            reset = self.inode is not None
            if reset:
                self.offset, self.inode, self._partial, self._history_read = 0, None, b"", False
            if not self._history_read:  # a compacted run has no live file until it is resumed
                self._history_read = True
                return TailResult(self._parse(self._history(0)), reset)
            return TailResult([], reset)
        reset = False
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            reset = True
            self.offset, self._partial, self._history_read = 0, b"", False
        if st.st_size == self.offset and self.inode is not None and self._history_read:
            return TailResult([], reset)
        history = b""
        with open(self.path, "rb") as fh:
            if self.inode is None:
                self.offset = self._start_offset(st.st_size, fh)
            if not self._history_read:
                history = self._history(st.st_size - self.offset)
                self._history_read = True
            self.inode = st.st_ino
            fh.seek(self.offset)
            data = fh.read(self._max_read)
        self.offset += len(data)
        records = self._parse(history) if history else []
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return TailResult([], reset)
        self._partial = data[cut + 1 :]
        records.extend(self._parse(data[: cut + 1]))
        return TailResult(records, reset)

    def _parse(self, data: bytes) -> list[dict]:
        records: list[dict] = []
        for line in data.splitlines():
            if not line:
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                self.bad_lines += 1
        return records


class LineTail(JsonlTail):
    """The same incremental reader for plain-text logs: each poll's complete lines as text
    (undecodable bytes replaced), blank lines kept. A replaced file (rotation) restarts from the
    top with `reset=True`, like a truncation."""

    def _parse(self, data: bytes) -> list[str]:  # type: ignore[override]
        return data.decode("utf-8", errors="replace").splitlines()


@dataclass
class RunSummary:
    run_id: str
    dir: Path
    kind: str
    state: str
    liveness: str  # the state as a person should read it: running / stale / dead / completed ...
    step: int
    total_steps: int | None
    heartbeat_age_s: float | None
    pid: int | None
    pid_alive: bool | None
    created_at: str | None
    message: str | None = None
    status: dict = field(default_factory=dict)
    fps: float | None = None  # steps per second while the run visibly progresses (the console measures it)

    @property
    def progress(self) -> float | None:
        if not self.total_steps:
            return None
        return max(0.0, min(1.0, self.step / self.total_steps))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES and self.liveness != "dead"

    @property
    def eta_s(self) -> float | None:
        if not self.total_steps or not self.fps or self.fps <= 0 or self.state in FINAL_STATES:
            return None
        return max(0.0, (self.total_steps - self.step) / self.fps)


def summarize(
    run_dir: Path,
    info: dict,
    status: dict,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> RunSummary:
    """A run's summary from its run.json and status.json contents (readers that cache run.json,
    such as the console, pass it in)."""
    now = time.time() if now is None else now
    label, alive = liveness(status, now=now, stale_after_s=stale_after_s) if status else ("unknown", None)
    updated = status.get("updated_at")
    return RunSummary(
        run_id=Path(run_dir).name,
        dir=Path(run_dir),
        kind=str(info.get("kind", status.get("kind", "?"))),
        state=str(status.get("state", "unknown")),
        liveness=label,
        step=int(status.get("step", 0) or 0),
        total_steps=status.get("total_steps"),
        heartbeat_age_s=max(0.0, now - float(updated)) if updated else None,
        pid=status.get("pid"),
        pid_alive=alive,
        created_at=info.get("created_at"),
        message=status.get("message"),
        status=status,
    )


def pid_alive(pid: int | None, create_time: float | None = None, host: str | None = None) -> bool | None:
    """True/False for a process on this host; None when the run lives on another host."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return None
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def liveness(
    status: dict, now: float | None = None, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> tuple[str, bool | None]:
    """(label, pid_alive). Final states are reported as they are; an active state whose heartbeat
    is stale is `stale` while its pid lives and `dead` once the pid is gone."""
    state = status.get("state", "unknown")
    alive = pid_alive(status.get("pid"), status.get("pid_create_time"), status.get("host"))
    if state in FINAL_STATES:
        return state, alive
    now = time.time() if now is None else now
    age = now - float(status.get("updated_at", 0) or 0)
    if age > stale_after_s:
        return ("dead" if alive is False else "stale"), alive
    if alive is False:
        return "dead", alive
    return state, alive


class RunReader:
    """Read-only view of a run directory."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise RunError(f"{self.dir}: no such run directory")

    @property
    def run_id(self) -> str:
        return self.dir.name

    def info(self) -> dict:
        try:
            info = read_json(self.dir / "run.json")
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            info = None
        # a damaged run.json still lists (by folder name); reopening it is a RunError (read_run_info)
        return info if isinstance(info, dict) else {"run_id": self.dir.name}

    def status(self) -> dict:
        try:
            return read_json(self.dir / "status.json")
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def config_text(self) -> str:
        try:
            return (self.dir / "config.yaml").read_text()
        except FileNotFoundError:
            return ""

    def metrics_tail(self, from_end_bytes: int | None = None) -> JsonlTail:
        return JsonlTail(self.dir / "metrics.jsonl", from_end_bytes=from_end_bytes)

    def events_tail(self, from_end_bytes: int | None = None) -> JsonlTail:
        return JsonlTail(self.dir / "events.jsonl", from_end_bytes=from_end_bytes)

    def events(self) -> list[dict]:
        return JsonlTail(self.dir / "events.jsonl").poll().records

    def summary(self, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> RunSummary:
        return summarize(self.dir, self.info(), self.status(), stale_after_s=stale_after_s)

    @property
    def stop_file(self) -> Path:
        return self.dir / STOP_FILE


def list_runs(artifacts: Path | None = None, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> list[RunSummary]:
    root = runs_dir(artifacts)
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        if child.is_dir() and (child / "run.json").exists():
            out.append(RunReader(child).summary(stale_after_s))
    out.sort(key=lambda s: (s.created_at or "", s.run_id))
    return out


def find_run(run_id: str, artifacts: Path | None = None) -> Path:
    """Resolve a run id (or a unique prefix, or a path) to its directory."""
    as_path = Path(run_id)
    if as_path.is_dir() and (as_path / "run.json").exists():
        return as_path.resolve()
    root = runs_dir(artifacts)
    exact = root / run_id
    if exact.is_dir():
        return exact
    matches = [p for p in root.glob(f"{run_id}*") if p.is_dir()] if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunError(f"no run {run_id!r} under {root} (see `ztb runs`)")
    raise RunError(f"run id {run_id!r} is ambiguous: {', '.join(sorted(p.name for p in matches))}")


def resolve_resume(resume: str | None, run_id: str | None = None, *, kind: str) -> tuple[Path | None, Path | None]:
    """(run dir, checkpoint file or None) for `--resume` of a `kind` run (train, pretrain):
    none/empty -> (None, None), a new run; `latest` -> the run named by `run_id`, else the newest
    run of this kind; a checkpoint file inside a run's checkpoints/ -> that run and file; otherwise
    a run id, unique prefix or path. None as the file means "the run's newest valid checkpoint"."""
    if resume is None or resume.lower() in ("", "none", "no"):
        return None, None
    if resume.lower() == "latest":
        if run_id:
            return find_run(run_id), None
        runs = [r for r in list_runs() if r.kind == kind]
        if not runs:
            raise RunError(f"--resume latest: there is no {kind} run yet (start one without --resume; see `ztb runs`)")
        return runs[-1].dir, None
    p = Path(resume)
    if p.is_file():
        run_dir = p.resolve().parent.parent
        if p.resolve().parent.name != "checkpoints" or not (run_dir / "run.json").exists():
            raise RunError(f"--resume {resume}: the checkpoint is not inside a run's checkpoints/ folder")
        return run_dir, p.resolve()
    return find_run(resume), None


def global_stop_requested(artifacts: Path | None = None) -> bool:
    return global_kill_file(artifacts).exists()
