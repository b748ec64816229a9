"""The run-directory protocol: the one contract between the core and the console.

A run is a folder `artifacts/runs/<run_id>/`:

    run.json        kind, run_id, argv, config hash, git SHA, host facts, package versions, seeds
    config.yaml     the resolved config actually used
    status.json     heartbeat, replaced atomically: pid, pgid, host, state, step, total_steps, ...
    metrics.jsonl   append-only: {"time", "step", "split", name: value, ...}
    events.jsonl    append-only lifecycle: started, checkpoint_saved, resumed, stop_requested, ...
    logs/ checkpoints/ reports/
    ztb.stop        kill-file

The core writes (`RunWriter`); the console and CLI only read (`RunReader`, `JsonlTail`,
`list_runs`) and drop kill-files. JSONL appenders only ever write whole lines, so a reader
never sees a torn record except, at worst, an unterminated last line, which it leaves for the
next poll.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil
import yaml

from . import __version__
from .atomic import atomic_write_json, atomic_write_text, read_json
from .config import config_hash, config_to_dict, config_to_yaml
from .errors import RunError, RunWriteError
from .humanize import fmt_bytes
from .manifest import Manifest
from .paths import REPO_ROOT, global_kill_file, runs_dir
from .segments import read_segments, read_segments_tail, segment_files, uncompact_jsonl

STATES = ("starting", "running", "stopping", "stopped", "completed", "failed", "fatal")
FINAL_STATES = frozenset({"stopped", "completed", "failed", "fatal"})
ACTIVE_STATES = frozenset({"starting", "running", "stopping"})
STOP_FILE = "ztb.stop"
#: A heartbeat older than this (seconds) marks an active run as stale.
DEFAULT_STALE_AFTER_S = 30.0
#: Kept on disk beside a run's files and freed for its last words (the final status and the error
#: event) when a write fails for want of space, so the run can still say `failed` and why.
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 64 * 1024

_PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "torch",
    "lightning",
    "transformers",
    "stable-baselines3",
    "gymnasium",
    "textual",
    "rich",
    "typer",
    "psutil",
    "nvidia-ml-py",
    "zstandard",
    "ccxt",
    "pydantic",
)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id(kind: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{stamp}-{secrets.token_hex(2)}"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_facts(gpu: list[str] | str | None = None) -> dict[str, Any]:
    """Facts about this machine for run.json. The GPU list comes from the caller (the runtime floor's
    `telemetry.gpu_facts`): this module stays below the code that talks to NVML."""
    facts: dict[str, Any] = {
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if gpu is not None:
        facts["gpu"] = gpu
    return facts


#: called with (run_dir, run_id, kind, record) for every event a writer records (notifications)
EventHook = Callable[[Path | None, str, str, dict], None]


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: map them to null so every line parses everywhere."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return _clean(value.item())
        except (ValueError, AttributeError):
            return value
    return value


_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JsonlAppender:
    """Append-only JSON-lines writer.

    Lines are buffered and written with one `os.write` per flush on an O_APPEND descriptor, only
    ever whole lines. A background thread flushes at least every `flush_interval_s`, so readers
    see new records within a second even when the producer goes quiet.
    """

    def __init__(self, path: Path, flush_interval_s: float = 1.0, max_buffer_bytes: int = 1 << 16):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _repair_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._lock = threading.Lock()
        self._max = max_buffer_bytes
        self._interval = flush_interval_s
        self._closed = False
        #: an OS error of the background flush, raised on the next append/flush (the producer's thread)
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name=f"flush-{self.path.name}", daemon=True)
        self._thread.start()

    def append(self, record: dict, flush: bool = False) -> None:
        # orjson: ~5x faster than json here, maps NaN/inf to null and serialises numpy scalars
        line = orjson.dumps(record, option=_ORJSON_OPTS, default=str) + b"\n"
        with self._lock:
            if self.error is not None:
                raise self.error
            if self._closed:
                raise RunError(f"{self.path}: appender is closed")
            self._buf.append(line)
            self._buf_bytes += len(line)
            if flush or self._buf_bytes >= self._max:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.error is not None:
            raise self.error
        if not self._buf or self._closed:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._buf_bytes = 0
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.error = exc
            raise

    def _flusher(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except OSError:
                return  # kept in self.error: the producer's next call raises it

    def close(self, quiet: bool = False) -> None:
        """Flush and close; `quiet` (a run already failing) drops what cannot be written."""
        self._stop.set()
        with self._lock:
            try:
                self._flush_locked()
            except OSError:
                if not quiet:
                    raise
            finally:
                if not self._closed:
                    self._closed = True
                    os.close(self._fd)


def _repair_torn_tail(path: Path) -> None:
    """Drop an unterminated last line left by a writer killed mid-write, so appends resume
    on a clean line boundary."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        chunk = min(size, 1 << 20)
        fh.seek(size - chunk)
        tail = fh.read(chunk)
        cut = tail.rfind(b"\n")
        fh.truncate(size - chunk + cut + 1 if cut >= 0 else 0)


def _make_reserve(path: Path) -> None:
    """Best effort: a run that cannot even set aside its reserve still runs (and fails clearly later)."""
    if path.exists():
        return
    try:
        with open(path, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
    except OSError:
        path.unlink(missing_ok=True)


def _free_text(path: Path) -> str:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return ""
    return f"; {fmt_bytes(usage.free)} free of {fmt_bytes(usage.total)} there"


def _saved_text(checkpoints_dir: Path, step: int | None) -> str:
    """What a person needs after a failed write: the newest checkpoint on disk and the steps since."""
    try:
        entries = Manifest(checkpoints_dir).entries()
    except Exception:  # a damaged manifest must not hide the original failure
        entries = []
    if entries:
        last = max(int(e.get("step", 0)) for e in entries)
        lost = f"; {int(step) - last:,} steps not saved" if step is not None and int(step) > last else ""
        return f"; last checkpoint on disk: step {last:,}{lost}"
    if step:
        return f"; no checkpoint on disk ({int(step):,} steps not saved)"
    return ""


def read_run_info(run_dir: Path) -> dict:
    """run.json of a run that is to be reopened (resume, restart). A damaged file is a RunError that
    names it and says what is left, never a raw JSONDecodeError: run.json is written once, atomically,
    so damage means the disk or a person changed it, and guessing its facts would mislabel the run."""
    path = Path(run_dir) / "run.json"
    try:
        info = read_json(path)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError:
        problem = "not valid JSON (not UTF-8 text)"
    else:
        missing = [k for k in ("kind", "run_id") if not isinstance(info, dict) or not isinstance(info.get(k), str)]
        if not missing:
            return info
        problem = f"missing {', '.join(missing)}" if isinstance(info, dict) else "not a JSON object"
    raise RunError(
        f"{path}: damaged run file, {problem}. The run cannot be reopened until run.json is restored; its "
        f"config.yaml and checkpoints/ are untouched (start a new run with --config {Path(run_dir) / 'config.yaml'} "
        "to train from the same settings)"
    )


class RunWriter:
    """Writes one run directory. Use as a context manager: an exception marks the run failed
    and records an `error` event with a traceback digest."""

    def __init__(self, run_dir: Path, info: dict, on_event: EventHook | None = None):
        self.dir = Path(run_dir)
        self._on_event = on_event
        self.info = info
        self.run_id: str = info["run_id"]
        self.kind: str = info["kind"]
        for sub in ("logs", "checkpoints", "reports"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.metrics = JsonlAppender(self.dir / "metrics.jsonl")
        self.events = JsonlAppender(self.dir / "events.jsonl")
        self._status: dict[str, Any] = {}
        self._status_lock = threading.Lock()
        self._last_status_write = 0.0
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._closed = False
        self._write_failure: RunWriteError | None = None
        _make_reserve(self.dir / RESERVE_FILE)

    # ---- creation -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        kind: str,
        config: Any = None,
        run_id: str | None = None,
        argv: list[str] | None = None,
        seeds: dict | None = None,
        artifacts: Path | None = None,
        total_steps: int | None = None,
        host: dict[str, Any] | None = None,
        on_event: EventHook | None = None,
    ) -> RunWriter:
        """A new run folder. `host` (facts for run.json, default: this machine without GPUs) and
        `on_event` (the notification hook) come from the runtime floor: `runtime.run_writer`."""
        root = runs_dir(artifacts)
        root.mkdir(parents=True, exist_ok=True)
        run_id = run_id or new_run_id(kind)
        if not run_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise RunError(f"run id {run_id!r}: use letters, digits, '-', '_' and '.' only")
        run_dir = root / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise RunError(f"run {run_id!r} already exists at {run_dir}; resume it or pick another --run-id") from None
        cfg_dict = config_to_dict(config) if config is not None and hasattr(config, "model_dump") else (config or {})
        info = {
            "kind": kind,
            "run_id": run_id,
            "argv": list(argv if argv is not None else sys.argv),
            "cwd": os.getcwd(),
            "config_hash": config_hash(cfg_dict),
            "git_sha": _git_sha(),
            "ztb_version": __version__,
            "created_at": utc_now_iso(),
            "seeds": seeds or {},
            "packages": package_versions(),
            **(host if host is not None else host_facts()),
        }
        try:
            atomic_write_json(run_dir / "run.json", info)
            atomic_write_text(
                run_dir / "config.yaml",
                config_to_yaml(config) if hasattr(config, "model_dump") else _yaml_dump(cfg_dict),
            )
            writer = cls(run_dir, info, on_event)
        except OSError as exc:  # no half-written run folder
            shutil.rmtree(run_dir, ignore_errors=True)
            free = _free_text(root)
            raise RunWriteError(f"cannot create run {run_id} in {root}: {exc.strerror or exc}{free}") from None
        writer.set_status("starting", step=0, total_steps=total_steps)
        writer.event("created", run_id=run_id, kind=kind)
        return writer

    @classmethod
    def open(cls, run_dir: Path, on_event: EventHook | None = None) -> RunWriter:
        """Re-open an existing run (resume / restart): appends continue where they stopped."""
        run_dir = Path(run_dir)
        if not (run_dir / "run.json").exists():
            raise RunError(f"{run_dir}: not a run directory (no run.json)")
        writer = cls(run_dir, read_run_info(run_dir), on_event)
        try:
            writer._status = read_json(run_dir / "status.json")
        except (FileNotFoundError, json.JSONDecodeError):
            writer._status = {}
        return writer

    # ---- status / heartbeat ------------------------------------------------------------
    @property
    def status(self) -> dict[str, Any]:
        with self._status_lock:
            return dict(self._status)

    def set_status(
        self,
        state: str | None = None,
        step: int | None = None,
        total_steps: int | None = None,
        message: str | None = None,
        **extra: Any,
    ) -> None:
        if state is not None and state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        now = time.time()
        with self._status_lock:
            st = self._status
            if state is not None:
                st["state"] = state
            if step is not None and step != st.get("step"):
                st["step"] = int(step)
                st["step_updated_at"] = now
            if total_steps is not None:
                st["total_steps"] = int(total_steps)
            if message is not None:
                st["message"] = message
            st.update({k: _clean(v) for k, v in extra.items()})
            st.update(self._process_facts())
            st["run_id"] = self.run_id
            st["kind"] = self.kind
            st["updated_at"] = now
            st.setdefault("step_updated_at", now)
            snapshot = dict(st)
            self._last_status_write = now
        with self._writing("status.json"):
            atomic_write_json(self.dir / "status.json", snapshot)

    def heartbeat(self, step: int | None = None, min_interval_s: float = 1.0, **extra: Any) -> None:
        """Cheap enough for every step: writes status.json at most once per `min_interval_s`."""
        if step is not None:
            with self._status_lock:
                if step != self._status.get("step"):
                    self._status["step"] = int(step)
                    self._status["step_updated_at"] = time.time()
        if time.time() - self._last_status_write >= min_interval_s:
            self.set_status(**extra)

    def start_heartbeat(self, interval_s: float = 2.0) -> None:
        """Keep `updated_at` fresh from a background thread while the main loop works. Stalls
        are still visible: `step_updated_at` only moves when the step does."""
        if self._heartbeat_thread is not None:
            return

        def beat() -> None:
            while not self._heartbeat_stop.wait(interval_s):
                try:
                    self.set_status()
                except RunWriteError:
                    return  # the run is already marked failed; the main thread's next write raises it

        self._heartbeat_thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def _process_facts(self) -> dict[str, Any]:
        pid = os.getpid()
        facts: dict[str, Any] = {"pid": pid, "pgid": os.getpgid(pid), "host": socket.gethostname()}
        try:
            facts["pid_create_time"] = psutil.Process(pid).create_time()
        except Exception:
            pass
        return facts

    # ---- metrics / events -------------------------------------------------------------
    def metric(self, step: int, split: str, values: dict[str, Any], flush: bool = False) -> None:
        record = {"time": round(time.time(), 3), "step": int(step), "split": split}
        record.update(values)
        with self._writing("metrics.jsonl"):
            self.metrics.append(record, flush=flush)

    def event(self, name: str, /, **data: Any) -> None:
        record = {"time": round(time.time(), 3), "event": name, **{k: _clean(v) for k, v in data.items()}}
        with self._writing("events.jsonl"):
            self.events.append(record, flush=True)
        if self._on_event is not None:  # notifications (runtime.notify.forward; never blocks)
            self._on_event(self.dir, self.run_id, self.kind, record)

    def error_event(self, exc: BaseException, scrub: Callable[[str], str] | None = None) -> dict:
        """Record `exc` (message, traceback digest and tail); `scrub` is applied to every text written
        (the live commands pass their key redaction), the exception itself is left as it is."""
        clean = scrub or (lambda text: text)
        tb = clean("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        digest = {
            "error": clean(f"{type(exc).__name__}: {exc}")[:500],
            "traceback_sha1": hashlib.sha1(tb.encode()).hexdigest()[:12],
            "traceback_tail": tb.strip().splitlines()[-6:],
        }
        self.event("error", **digest)
        return digest

    def rewind_metrics(self, step: int) -> int:
        """Drop metric rows beyond `step` (written after the checkpoint a resume starts from) so
        metrics stay monotonic in step with no duplicate rows. Returns rows removed."""
        path = self.dir / "metrics.jsonl"
        self.metrics.flush()
        if segment_files(path):  # rows past `step` may sit in compacted history: fold it back first
            self.metrics.close()
            uncompact_jsonl(path)
            self.metrics = JsonlAppender(path)
        if not path.exists():
            return 0
        kept: list[bytes] = []
        removed = 0
        with open(path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    continue
                try:
                    rec_step = orjson.loads(line).get("step", 0)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(rec_step, (int, float)) and rec_step > step:
                    removed += 1
                else:
                    kept.append(line)
        if removed:
            self.metrics.close()
            tmp = path.with_suffix(".jsonl.rewind")
            with open(tmp, "wb") as fh:
                fh.writelines(kept)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self.metrics = JsonlAppender(path)
        return removed

    def discard(self) -> None:
        """Remove a run this process has just created, when its input turned out to be bad before
        any work was done (bad input leaves no half-written run behind)."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- failed writes ---------------------------------------------------------------------
    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Every write of the protocol goes through here: an OS error (a full disk above all) ends
        the run `failed` with one clear line instead of a traceback from wherever it struck."""
        if self._write_failure is not None:
            raise self._write_failure
        try:
            yield
        except OSError as exc:
            raise self.fail_write(what, exc) from None

    def fail_write(self, what: str, exc: OSError) -> RunWriteError:
        """End the run `failed` because `what` could not be written: free the reserve, write the final
        status and an `error` event with one line (what, why, free space, the last checkpoint on disk
        and the steps not saved), close quietly, and return the error for the caller to raise. Also
        for writes outside this class (reports, exports); idempotent."""
        if self._write_failure is not None:
            return self._write_failure
        Path(self.dir / RESERVE_FILE).unlink(missing_ok=True)
        with self._status_lock:
            step = self._status.get("step")
        message = f"{what} could not be written: {exc.strerror or exc}{_free_text(self.dir)}{_saved_text(self.checkpoints_dir, step)}"
        error = RunWriteError(f"run {self.run_id} failed: {message}")
        self._write_failure = error
        self._heartbeat_stop.set()
        now = time.time()
        with self._status_lock:
            self._status.update(state="failed", message=message[:500], updated_at=now, **self._process_facts())
            snapshot = dict(self._status)
        record = {"time": round(now, 3), "event": "failed", "message": message[:500], "write_error": what}
        self.events.error = self.metrics.error = None  # the reserve's bytes may now take what was pending
        for write in (
            lambda: atomic_write_json(self.dir / "status.json", snapshot),
            lambda: self.events.append(record, flush=True),
        ):
            try:
                write()
            except (OSError, RunError):
                pass  # nothing more can be said on this disk; the exception still says it
        if self._on_event is not None:
            self._on_event(self.dir, self.run_id, self.kind, record)
        self.metrics.close(quiet=True)
        self.events.close(quiet=True)
        self._closed = True
        return error

    # ---- paths --------------------------------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.dir / "reports"

    @property
    def stop_file(self) -> Path:
        return self.dir / STOP_FILE

    # ---- lifecycle ------------------------------------------------------------------------
    def close(self, state: str | None = None, message: str | None = None, **extra: Any) -> None:
        if self._closed:
            return
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=5)
        if state is not None:
            self.set_status(state, message=message, **extra)
            self.event(state, message=message)
        with self._writing("metrics.jsonl / events.jsonl"):
            self.metrics.close()
            self.events.close()
        self._closed = True
        Path(self.dir / RESERVE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and not self._closed:
            if isinstance(exc, OSError) and exc.errno is not None:
                # a write outside this class (a report, an export) failed: same one line, same end
                raise self.fail_write(str(exc.filename or "a file of the run"), exc) from None
            if isinstance(exc, KeyboardInterrupt):
                self.close("stopped", message="interrupted")
            else:
                digest = self.error_event(exc)
                self.close("failed", message=digest["error"])
        else:
            self.close()


def _yaml_dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


# ======================================================================================
# Reading side
# ======================================================================================


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
