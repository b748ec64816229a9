"""Lightning glue to the run directory: a logger into `metrics.jsonl`, the kill-file stop, the
checkpoint manifest and the heartbeat."""

from __future__ import annotations

import errno
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from ..manifest import Manifest, sha256_file
from ..runtime.disk import alert_write_failure
from ..runtime.killfile import KillSwitch

LAST = "last.ckpt"


class RunWriterLogger(Logger):
    """Forwards Lightning metrics to `RunWriter.metric`: keys `train/x` go to split "train" as
    `x`, `val/x` (and `val_loss`) to split "val", so the console can draw sparklines per split."""

    def __init__(self, writer):
        super().__init__()
        self.writer = writer

    @property
    def name(self) -> str:
        return "ztb"

    @property
    def version(self) -> str:
        return self.writer.run_id

    @property
    @rank_zero_experiment
    def experiment(self):
        return self.writer

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        # the resolved config is already the run's config.yaml
        return None

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        by_split: dict[str, dict[str, float | None]] = {}  # epoch: None when Lightning did not log one
        for key, value in metrics.items():
            if key == "epoch":
                continue
            if key == "val_loss":
                split, name = "val", "loss"
            elif "/" in key:
                split, name = key.split("/", 1)
            else:
                split, name = "train", key
            by_split.setdefault(split, {})[name] = float(value)
        # Lightning hands loggers the optimizer steps completed *before* the batch these metrics
        # come from (0 for the first batch); the progress log, status.json and the checkpoints
        # count the steps completed *after* it. Recorded as the latter, so a step has one number
        # everywhere ("step 5/300 loss 0.92" in the log is the row at step 5) and a resume's
        # rewind (rows past the checkpoint's step) drops exactly the rows the checkpoint lacks.
        recorded = int(step or 0) + 1
        for split, values in by_split.items():
            values["epoch"] = metrics.get("epoch")
            self.writer.metric(recorded, split, values)


def atomic_save_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """`trainer.save_checkpoint` into a temp file, then `os.replace`: never a torn last.ckpt."""
    tmp = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)


class ManifestCallback(L.Callback):
    """Keeps `checkpoints/manifest.json` (step, sha256, size, created_at) in step with the .ckpt
    files Lightning and the kill-file callback write, and drops entries of deleted files."""

    def __init__(self, ckpt_dir: Path, writer=None):
        self.dir = Path(ckpt_dir)
        self.manifest = Manifest(self.dir)
        self.writer = writer
        self._seen: dict[str, float] = {}

    def sync(self, step_hint: int | None = None) -> None:
        present = {p.name: p for p in self.dir.glob("*.ckpt")}
        for entry in self.manifest.entries():
            if entry["file"] not in present:
                self.manifest.remove(entry["file"], delete_file=False)
        for name, path in present.items():
            mtime = path.stat().st_mtime
            if self._seen.get(name) == mtime:
                continue
            self._seen[name] = mtime
            step = _step_from(path, step_hint)
            self.manifest.add(
                {
                    "file": name,
                    "step": step,
                    "sha256": sha256_file(path),
                    "size": path.stat().st_size,
                    "created_at": datetime.fromtimestamp(mtime, UTC).isoformat(),
                }
            )
            if self.writer is not None:
                self.writer.event("checkpoint_saved", file=name, step=step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.is_global_zero and batch_idx == 0:
            self.sync()

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.sync()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """A checkpoint write that hit a full disk ends the fit (the run fails, never "completed"):
        raise an alert at once saying how many steps are not saved."""
        if not (trainer.is_global_zero and is_disk_full(exception) and self.writer is not None):
            return
        step = int(trainer.global_step)
        try:
            self.sync()  # list what did land, so the count below is right
        except OSError:
            pass
        saved = [e["step"] for e in self.manifest.entries() if (self.dir / e["file"]).exists()]
        newest = max(saved, default=0)
        alert_write_failure(self.writer, "checkpoint", step, exception)
        self.writer.event(
            "checkpoint_failed",
            step=step,
            error=f"{exception}"[:300],
            newest_saved_step=newest,
            steps_not_saved=step - newest,
        )


class FreeingCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with the trainer's full-disk rule: a write that fails with "No
    space left on device" frees what retention allows (temp files, and every checkpoint but
    last.ckpt, the newest and the best by validation loss) and is tried once more; a second
    failure propagates (ManifestCallback.on_exception then fails the run, counting unsaved steps)."""

    def __init__(self, ckpt_dir: Path, writer: Any = None) -> None:
        super().__init__()
        self.dir = Path(ckpt_dir)
        self.writer = writer
        self.freed_bytes = 0

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        try:
            super().save_checkpoint(checkpoint, path, storage_options)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            freed = self.free_space(keep=Path(path).name)
            if not freed:
                raise
            self.freed_bytes += freed
            if self.writer is not None:
                self.writer.event("checkpoint_space_freed", bytes=freed, retrying=Path(path).name)
            super().save_checkpoint(checkpoint, path, storage_options)

    def free_space(self, keep: str) -> int:
        """Bytes freed from the checkpoint folder, keeping `keep` (being written), last.ckpt, the
        newest checkpoint and the best (lowest val_loss in Lightning's `best-…-val_loss=X` name)."""
        files = [p for p in self.dir.iterdir() if p.is_file()]
        before = sum(p.stat().st_size for p in files)
        ckpts = sorted((p for p in files if p.suffix == ".ckpt"), key=lambda p: p.stat().st_mtime)
        best = [p for p in ckpts if p.name.startswith("best-") and _val_loss(p) is not None]
        protected = {keep, LAST} | {p.name for p in ckpts[-1:]}
        protected |= {min(best, key=lambda p: _val_loss(p) or 0.0).name} if best else set()
        for p in files:
            if p.name.endswith(".tmp") or (p.suffix == ".ckpt" and p.name not in protected):
                p.unlink(missing_ok=True)  # the manifest drops entries of deleted files at its next sync
        return max(0, before - sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file()))


def _val_loss(path: Path) -> float | None:
    try:
        return float(path.stem.rsplit("val_loss=", 1)[1])
    except (IndexError, ValueError):
        return None


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC anywhere in the exception chain (torch/fsspec wrap the OSError)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _step_from(path: Path, hint: int | None) -> int:
    """Step of a checkpoint: from `step=NNN` in its file name, else read from the file itself."""
    stem = path.stem
    if "step=" in stem:
        try:
            return int(stem.split("step=")[1].split("-")[0])
        except ValueError:
            pass
    if hint is not None:
        return hint
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", 0))
    except Exception:
        return 0


class KillFileCallback(L.Callback):
    """Stops at the next optimizer-step boundary when the kill-file appears: saves `last.ckpt`
    itself (Lightning's `should_stop` does not refresh it) and asks the trainer to stop."""

    def __init__(
        self, run_dir: Path, ckpt_dir: Path, writer=None, manifest: ManifestCallback | None = None, accumulate: int = 1
    ):
        self.switch = KillSwitch(run_dir)
        self.ckpt_dir = Path(ckpt_dir)
        self.writer = writer
        self.manifest = manifest
        self.accumulate = accumulate
        self.stopped_at: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % self.accumulate:
            return
        if self.writer is not None:
            self.writer.heartbeat(step=trainer.global_step)
        requested = self.switch.requested()
        if trainer.world_size > 1:  # one decision for every rank, or the others would wait forever
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if not requested:
            return
        step = trainer.global_step
        if self.writer is not None:
            self.writer.event("stop_requested", reason=self.switch.reason, step=step)
            self.writer.set_status("stopping", step=step, message=f"stopping: {self.switch.reason}")
        atomic_save_checkpoint(trainer, self.ckpt_dir / LAST)
        if self.manifest is not None and trainer.is_global_zero:
            self.manifest.sync(step_hint=step)
        self.stopped_at = step
        trainer.should_stop = True


class ProgressLog(L.Callback):
    """Headless progress: one log line every `every` steps (step, loss, samples/s, ETA)."""

    def __init__(self, logger, total_steps: int, every: int = 10):
        self._log, self.total, self.every = logger, total_steps, every
        self._t0: float | None = None
        self._s0 = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self._t0 is None:
            self._t0, self._s0 = time.perf_counter(), step
            return
        if step % self.every or step == self._s0:
            return
        rate = (step - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        self._log.info("step %d/%d loss %.4f  %.2f it/s  ETA %.0fs", step, self.total, float(loss), rate, eta)
