"""`RunWriter`: the one writer of a run folder (status heartbeat, metrics, events, lifecycle), and the
place every write of the protocol goes through, so a failed write ends the run cleanly."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psutil
import yaml

from .. import __version__
from ..atomic import atomic_write_json, atomic_write_text, read_json
from ..config import config_hash, config_to_dict, config_to_yaml
from ..errors import RunError, RunWriteError
from ..humanize import fmt_bytes
from ..manifest import Manifest
from ..paths import runs_dir
from ..segments import segment_files, uncompact_jsonl
from .appender import JsonlAppender
from .protocol import (
    RESERVE_BYTES,
    RESERVE_FILE,
    STATES,
    STOP_FILE,
    EventHook,
    _clean,
    _git_sha,
    host_facts,
    new_run_id,
    package_versions,
    read_run_info,
    utc_now_iso,
)


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
        config_sources: Mapping[str, str] | None = None,
    ) -> RunWriter:
        """A new run folder. `host` (facts for run.json, default: this machine without GPUs) and
        `on_event` (the notification hook) come from the runtime floor: `runtime.run_writer`.
        `config_sources` (`Resolved.chosen()`: dotted key -> the file, `--set` or flag that set it)
        goes into run.json, so a run says which of its settings were asked for and how."""
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
            "config_sources": dict(config_sources or {}),
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
