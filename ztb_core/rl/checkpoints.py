"""Training checkpoints: an in-memory snapshot on the training thread, then serialise + zstd +
atomic write + manifest entry on a background thread.

The training loop only pays for `capture_state` (clones of the policy and optimizer tensors,
VecNormalize statistics and RNG states into CPU memory, a few milliseconds for an MLP). The
`CheckpointSaver` thread does `torch.save` into bytes, compresses them with zstd, writes the
file atomically (temp file, fsync, rename) and only then adds the manifest entry with its
sha256, so the manifest never names a file that is not complete. A file whose sha256, size or
contents do not check out is never loaded: `load_latest_valid` falls back to the previous one
and reports it through `on_invalid`.

A disk that fills up is not silent: a write that fails with "No space left on device" makes the
saver free what retention allows (stray temp files, checkpoints other than the newest and the
best) and retry once; `on_error` fires for a save that still fails (the trainer turns it into a
`checkpoint_failed` event plus an `alert`), and `require_on_disk(final_step)` makes a run whose
final checkpoint is missing end failed with the number of steps that are not saved.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zstandard

from ..atomic import atomic_write_bytes
from ..errors import CheckpointError, ConfigError
from ..manifest import Manifest
from ..runs import utc_now_iso
from ..runtime.disk import alert_write_failure

FORMAT_VERSION = 1
SUFFIX = ".ckpt.zst"


def checkpoint_name(step: int) -> str:
    return f"step-{int(step):010d}{SUFFIX}"


def _cpu_clone(obj: Any) -> Any:
    """Deep copy with every tensor cloned to CPU (optimizer states are nested dicts/lists)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_clone(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_cpu_clone(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.copy()
    return obj


def vecnormalize_state(vn: Any) -> dict[str, Any] | None:
    """Everything VecNormalize needs to continue exactly: running statistics, the per-env
    discounted returns and its settings."""
    if vn is None:
        return None
    if isinstance(vn.obs_rms, dict):  # Dict observations (fine-tune mode): statistics per normalised key
        obs = {
            "obs_mean": {k: np.array(r.mean, dtype=np.float64, copy=True) for k, r in vn.obs_rms.items()},
            "obs_var": {k: np.array(r.var, dtype=np.float64, copy=True) for k, r in vn.obs_rms.items()},
            "obs_count": {k: float(r.count) for k, r in vn.obs_rms.items()},
        }
    else:
        obs = {
            "obs_mean": np.array(vn.obs_rms.mean, dtype=np.float64, copy=True),
            "obs_var": np.array(vn.obs_rms.var, dtype=np.float64, copy=True),
            "obs_count": float(vn.obs_rms.count),
        }
    return {
        **obs,
        "ret_mean": np.array(vn.ret_rms.mean, dtype=np.float64, copy=True),
        "ret_var": np.array(vn.ret_rms.var, dtype=np.float64, copy=True),
        "ret_count": float(vn.ret_rms.count),
        "returns": np.array(vn.returns, dtype=np.float64, copy=True),
        "norm_obs": bool(vn.norm_obs),
        "norm_reward": bool(vn.norm_reward),
        "clip_obs": float(vn.clip_obs),
        "clip_reward": float(vn.clip_reward),
        "gamma": float(vn.gamma),
        "epsilon": float(vn.epsilon),
    }


def restore_vecnormalize(vn: Any, st: dict[str, Any] | None) -> None:
    if vn is None or st is None:
        return
    if isinstance(vn.obs_rms, dict) != isinstance(st["obs_mean"], dict):
        raise CheckpointError(
            "checkpoint VecNormalize statistics do not match the observation kind "
            "(flat vs Dict: was encoder.mode changed?)"
        )
    if isinstance(vn.obs_rms, dict):
        if set(vn.obs_rms) != set(st["obs_mean"]):
            raise CheckpointError(
                f"checkpoint VecNormalize keys {sorted(st['obs_mean'])} differ from the "
                f"environment's {sorted(vn.obs_rms)}"
            )
        pairs = [(vn.obs_rms[k], st["obs_mean"][k], st["obs_var"][k], st["obs_count"][k]) for k in vn.obs_rms]
    else:
        pairs = [(vn.obs_rms, st["obs_mean"], st["obs_var"], st["obs_count"])]
    for rms, mean, _var, _count in pairs:
        if rms.mean.shape != mean.shape:
            raise CheckpointError(
                f"checkpoint VecNormalize statistics have shape {mean.shape}, "
                f"the environment's observations {rms.mean.shape}"
            )
    for rms, mean, var, count in pairs:
        rms.mean, rms.var, rms.count = mean.copy(), var.copy(), count
    vn.ret_rms.mean, vn.ret_rms.var, vn.ret_rms.count = st["ret_mean"].copy(), st["ret_var"].copy(), st["ret_count"]
    if np.shape(st["returns"]) == np.shape(vn.returns):
        vn.returns = st["returns"].copy()
    if "epsilon" in st:  # the statistics are only meaningful with the epsilon they were used with
        vn.epsilon = float(st["epsilon"])


def rng_state() -> dict[str, Any]:
    out: dict[str, Any] = {
        "torch": torch.get_rng_state().clone(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return out


def restore_rng(st: dict[str, Any] | None) -> None:
    if not st:
        return
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def capture_state(
    model: Any, vecnorm: Any, config: dict, config_hash: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The blocking part of a checkpoint: copy all state to CPU memory (no I/O). `extra`
    (e.g. the Stage-1 encoder's sha256) is stored alongside."""
    return {
        **(extra or {}),
        "format": FORMAT_VERSION,
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "policy": _cpu_clone(model.policy.state_dict()),
        "optimizer": _cpu_clone(model.policy.optimizer.state_dict()),
        "vecnormalize": vecnormalize_state(vecnorm),
        "rng": rng_state(),
        "config": config,
        "config_hash": config_hash,
        "captured_at": utc_now_iso(),
    }


def restore_state(model: Any, vecnorm: Any, state: dict[str, Any]) -> None:
    """Put a captured state back into a freshly built PPO model and its VecNormalize."""
    model.policy.load_state_dict(state["policy"])
    model.policy.optimizer.load_state_dict(state["optimizer"])
    model.num_timesteps = int(state["num_timesteps"])
    model._n_updates = int(state.get("n_updates", 0))
    restore_vecnormalize(vecnorm, state.get("vecnormalize"))
    restore_rng(state.get("rng"))


def warm_start_policy(model: Any, path: Path) -> Path:
    """Copy the policy weights of a verified checkpoint (a file, or a run / checkpoints folder: its
    newest valid one) into a freshly built model (a warm start); returns the file used. The
    optimizer, step count, RNG and VecNormalize stay the new run's own. A network of another
    shape (other features, encoder or architecture) is a ConfigError naming both."""
    path = Path(path)
    if path.is_dir():
        ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = load_latest_valid(ckpt_dir)
        if found is None:
            raise CheckpointError(f"warm_start {path}: no valid checkpoint in {ckpt_dir}")
        entry, state = found
        path = ckpt_dir / entry["file"]
    else:
        _, state = load_checkpoint_file(path)
    try:
        model.policy.load_state_dict(state["policy"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(
            f"warm_start {path}: its policy network does not fit this config's "
            f"({first[1].strip() if len(first) > 1 else first[0] if first else exc}); "
            "warm starts need the same features, forecast.kind, encoder and ppo.net_arch"
        ) from None
    return path


def serialise(state: dict[str, Any], level: int) -> tuple[bytes, int]:
    """(zstd-compressed bytes, raw size)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    raw = buf.getvalue()
    return zstandard.ZstdCompressor(level=level).compress(raw), len(raw)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Decompress and unpickle a checkpoint file. Call only after its sha256 was verified
    (the manifest is written by ztb itself; unpickling trusts the file)."""
    data = Path(path).read_bytes()
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 34)
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a ztb checkpoint of format {FORMAT_VERSION}")
    return state


InvalidHook = Callable[[dict, str], None]


def load_latest_valid(
    ckpt_dir: Path, on_invalid: InvalidHook | None = None, max_step: int | None = None
) -> tuple[dict, dict] | None:
    """(manifest entry, state) of the newest checkpoint that verifies, or None. Every entry that
    fails (missing, size, sha256, unreadable) is reported once through `on_invalid` and marked
    `invalid` in the manifest so it is never tried again."""
    manifest = Manifest(ckpt_dir)
    for entry in reversed(manifest.entries()):
        if entry.get("invalid"):
            continue
        if max_step is not None and entry.get("step", 0) > max_step:
            continue
        ok, reason = manifest.verify(entry)
        state = None
        if ok:
            try:
                state = read_checkpoint(manifest.dir / entry["file"])
            except CheckpointError as exc:
                ok, reason = False, str(exc)
        if not ok or state is None:
            manifest.update(entry["file"], invalid=reason)
            if on_invalid is not None:
                on_invalid(entry, reason)
            continue
        return entry, state
    return None


def load_checkpoint_file(path: Path) -> tuple[dict, dict]:
    """A specific checkpoint file, verified against the manifest in its folder."""
    path = Path(path)
    manifest = Manifest(path.parent)
    entry = next((e for e in manifest.entries() if e.get("file") == path.name), None)
    if entry is None:
        raise CheckpointError(f"{path}: not listed in {manifest.path}; refusing to load an unverified checkpoint")
    ok, reason = manifest.verify(entry)
    if not ok:
        raise CheckpointError(f"{path}: failed verification ({reason}); it will not be loaded")
    return entry, read_checkpoint(path)


@dataclass
class SaveJob:
    state: dict[str, Any]
    step: int
    eval_score: float | None = None
    extra: dict = field(default_factory=dict)
    submitted: float = field(default_factory=time.monotonic)


class CheckpointSaver:
    """One background thread that writes checkpoints; at most `max_pending` in flight.

    `submit` blocks only while the queue is full and `when_busy == "wait"`; with "skip" it
    returns False at once. `on_saved(entry)` / `on_error(step, exc)` run on the saver thread.
    """

    def __init__(
        self,
        ckpt_dir: Path,
        level: int = 3,
        max_pending: int = 1,
        when_busy: str = "wait",
        keep_last: int = 5,
        keep_best: bool = True,
        extra_entry: dict | None = None,
        on_saved: Callable[[dict], None] | None = None,
        on_error: Callable[[int, BaseException], None] | None = None,
    ):
        self.dir = Path(ckpt_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.dir)
        self.level, self.max_pending, self.when_busy = level, max_pending, when_busy
        self.keep_last, self.keep_best = keep_last, keep_best
        self.extra_entry = extra_entry or {}
        self.on_saved, self.on_error = on_saved, on_error
        self._queue: queue.Queue[SaveJob | None] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self.saved: list[dict] = []
        self.skipped = 0
        self.errors: list[str] = []
        self.freed_bytes = 0
        self._thread = threading.Thread(target=self._work, name="checkpoint-saver", daemon=True)
        self._thread.start()
        self._remove_temp_files()

    def _remove_temp_files(self) -> None:
        # A process killed mid-write leaves `.step-....tmp`; one killed between the rename and the
        # manifest update (or between a prune's manifest update and its unlink) leaves a checkpoint
        # file the manifest does not list. Neither can be verified, so neither is ever loaded.
        listed = {e.get("file") for e in self.manifest.entries()}
        strays = [*self.dir.glob(".*.tmp"), *(p for p in self.dir.glob("step-*.ckpt.zst") if p.name not in listed)]
        for path in strays:
            try:
                path.unlink()
            except OSError:
                pass

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def submit(self, state: dict[str, Any], eval_score: float | None = None, extra: dict | None = None) -> bool:
        """Queue a captured state for saving; `extra` fields go into its manifest entry."""
        job = SaveJob(state=state, step=int(state["num_timesteps"]), eval_score=eval_score, extra=extra or {})
        with self._cond:
            while self._pending >= self.max_pending:
                if self.when_busy == "skip":
                    self.skipped += 1
                    return False
                self._cond.wait()
            self._pending += 1
        self._queue.put(job)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted save finished; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = None) -> bool:
        done = self.wait(timeout)
        self._queue.put(None)
        self._thread.join(timeout=5)
        return done

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                entry = self._save(job)
                self.saved.append(entry)
                if self.on_saved is not None:
                    self.on_saved(entry)
            except BaseException as exc:  # a failed save must not kill training; it is reported
                self.errors.append(f"step {job.step}: {exc}")
                if self.on_error is not None:
                    try:
                        self.on_error(job.step, exc)
                    except Exception:
                        pass
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    #: the file write; tests replace it (e.g. to raise ENOSPC) where no tiny filesystem can be mounted
    write_file: Callable[[Path, bytes], None] = staticmethod(atomic_write_bytes)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            self.write_file(path, data)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            freed = self.free_space()
            self.freed_bytes += freed
            if not freed:
                raise
            self.write_file(path, data)  # once more after freeing; a second failure is reported

    def free_space(self) -> int:
        """On a full disk: drop temp files and every checkpoint but the newest valid one and the best
        (retention's floor), so the next write can land. Returns the bytes freed."""
        before = sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
        self._remove_temp_files()
        valid = [e for e in self.manifest.entries() if not e.get("invalid")]
        keep = {e["file"] for e in valid[-1:]} | {e["file"] for e in valid if e.get("best")}
        for e in self.manifest.entries():
            if e["file"] not in keep:
                try:
                    self.manifest.remove(e["file"])
                except OSError:
                    # no room even for the manifest rewrite: drop the file; a listed file that is
                    # missing is never loaded (load_latest_valid marks it invalid)
                    (self.dir / e["file"]).unlink(missing_ok=True)
        return max(0, before - sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file()))

    @staticmethod
    def failure_reporter(writer: Any) -> Callable[[int, BaseException], None]:
        """An `on_error` that records `checkpoint_failed` and raises an `alert` at once (watch, the
        console and notifications read alerts)."""

        def report(step: int, exc: BaseException) -> None:
            writer.event("checkpoint_failed", step=step, error=str(exc)[:300])
            alert_write_failure(writer, "checkpoint", step, exc)

        return report

    def require_on_disk(self, step: int) -> dict:
        """The manifest entry of the checkpoint at `step`, its file present with the recorded size;
        otherwise a CheckpointError saying how many steps of training are not saved."""
        entries = [e for e in self.manifest.entries() if not e.get("invalid")]
        for e in reversed(entries):
            path = self.dir / e["file"]
            if e["step"] == step and path.exists() and path.stat().st_size == e.get("size", -1):
                return e
        newest = max((e["step"] for e in entries if (self.dir / e["file"]).exists()), default=0)
        why = f" ({self.errors[-1]})" if self.errors else ""
        raise CheckpointError(
            f"{self.dir}: the final checkpoint at step {step:,} is not on disk{why}; the newest saved checkpoint "
            f"is at step {newest:,}, so {step - newest:,} steps of training are not saved. "
            "Free disk space (`ztb janitor`) and resume the run."
        )

    def _save(self, job: SaveJob) -> dict:
        t0 = time.perf_counter()
        data, raw_size = serialise(job.state, self.level)
        name = checkpoint_name(job.step)
        self._write(self.dir / name, data)
        fsync_dir(self.dir)
        entry = {
            "file": name,
            "step": job.step,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "raw_size": raw_size,
            "ratio": round(raw_size / max(len(data), 1), 4),
            "save_seconds": round(time.perf_counter() - t0, 4),
            "created_at": utc_now_iso(),
            "config_hash": job.state.get("config_hash"),
            **self.extra_entry,
            **job.extra,
        }
        if job.eval_score is not None:
            entry["eval_sharpe"] = float(job.eval_score)
        self.manifest.add(entry)
        self.prune()
        return entry

    def prune(self) -> None:
        """Keep the newest `keep_last` checkpoints plus the best by evaluation; flag the best."""
        entries = self.manifest.entries()
        valid = [e for e in entries if not e.get("invalid")]
        keep = {e["file"] for e in valid[-self.keep_last :]}
        scored = [e for e in valid if e.get("eval_sharpe") is not None]
        best = max(scored, key=lambda e: (e["eval_sharpe"], e["step"]))["file"] if scored and self.keep_best else None
        if best:
            keep.add(best)
        for e in entries:
            if e["file"] not in keep:
                self.manifest.remove(e["file"])
            elif bool(e.get("best")) != (e["file"] == best):
                self.manifest.update(e["file"], best=e["file"] == best)


def fsync_dir(path: Path) -> None:
    """Make a rename durable on filesystems that need the directory synced too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
