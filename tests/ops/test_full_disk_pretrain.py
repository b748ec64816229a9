"""Item 7 for pretraining: a Lightning checkpoint write that hits a full disk ends the fit with the
run failed (never completed) and an alert at once counting the steps not saved."""

from __future__ import annotations

import errno
import os

import pytest

from ztb_core.errors import RunWriteError
from ztb_core.runs import RunReader, RunWriter


def test_enospc_in_lightning_checkpoint_alerts_with_lost_steps(artifacts, monkeypatch):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.demos.boring_classes import BoringModel

    from ztb_core.pretrain.callbacks import ManifestCallback

    writer = RunWriter.create("pretrain", {})
    manifest = ManifestCallback(writer.checkpoints_dir, writer)
    trainer = L.Trainer(
        max_steps=6,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            ModelCheckpoint(dirpath=writer.checkpoints_dir, filename="{step}", every_n_train_steps=2, save_top_k=-1),
            manifest,
        ],
        default_root_dir=writer.dir,
    )
    real = trainer.strategy.save_checkpoint

    def fill_after_first(checkpoint, filepath, storage_options=None):
        if trainer.global_step > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(checkpoint, filepath, storage_options)

    monkeypatch.setattr(trainer.strategy, "save_checkpoint", fill_after_first)
    # the run writer turns the OSError into its one clear line (tests/ops/test_run_write_failures.py)
    with pytest.raises(RunWriteError, match="No space left on device.*last checkpoint on disk: step 2"), writer:
        trainer.fit(BoringModel())
    events = RunReader(writer.dir).events()
    alert = next(e for e in events if e["event"] == "alert")
    assert alert["check"] == "checkpoint_failed" and "No space left on device" in alert["message"]
    failed = next(e for e in events if e["event"] == "checkpoint_failed")
    assert failed["newest_saved_step"] == 2 and failed["steps_not_saved"] == failed["step"] - 2 > 0
    assert RunReader(writer.dir).status()["state"] == "failed"


def test_is_disk_full_follows_the_chain():
    from ztb_core.pretrain.callbacks import is_disk_full

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("torch.save failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(RuntimeError("other")) and not is_disk_full(OSError(errno.EIO, "I/O error"))


def test_a_full_disk_frees_what_retention_allows_and_the_write_lands(tmp_path):
    """The trainer's rule for pretraining: on "No space left on device" drop temp files and every
    checkpoint but last.ckpt, the newest and the best by val loss, then write once more."""
    import torch

    from ztb_core.pretrain.callbacks import FreeingCheckpointIO

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    for name in ("best-step=10-val_loss=0.5000.ckpt", "best-step=20-val_loss=0.3000.ckpt", "last.ckpt"):
        (ckpt / name).write_bytes(b"x" * 1000)
        os.utime(ckpt / name, (1, 1))
    (ckpt / "best-step=30-val_loss=0.4000.ckpt").write_bytes(b"x" * 1000)  # the newest
    (ckpt / "last.ckpt.tmp").write_bytes(b"x" * 500)  # left by a killed atomic save
    events: list = []

    class Writer:
        def event(self, name, **data):
            events.append((name, data))

    io = FreeingCheckpointIO(ckpt, Writer())
    full = [True]
    real_save = torch.save

    def save(obj, f, *a, **k):
        if full[0]:
            full[0] = False
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "save", save)
        io.save_checkpoint({"step": 40}, ckpt / "best-step=40-val_loss=0.2000.ckpt")
    left = sorted(p.name for p in ckpt.iterdir())
    # the worse, older best (0.5) and the temp file went; the best (0.3), the newest and last stay
    assert left == [
        "best-step=20-val_loss=0.3000.ckpt",
        "best-step=30-val_loss=0.4000.ckpt",
        "best-step=40-val_loss=0.2000.ckpt",
        "last.ckpt",
    ]
    assert io.freed_bytes == 1500 and events and events[0][0] == "checkpoint_space_freed"
    assert torch.load(ckpt / "best-step=40-val_loss=0.2000.ckpt")["step"] == 40


def test_a_full_disk_with_nothing_to_free_still_fails(tmp_path):
    """Positive control: when retention leaves nothing to drop, the ENOSPC propagates (the run then
    fails with its unsaved steps counted, see above) instead of being swallowed."""
    import torch

    from ztb_core.pretrain.callbacks import FreeingCheckpointIO

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "last.ckpt").write_bytes(b"x")

    def save(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "save", save)
        with pytest.raises(OSError, match="No space left"):
            FreeingCheckpointIO(ckpt).save_checkpoint({"step": 1}, ckpt / "best-step=1-val_loss=1.0000.ckpt")
    assert (ckpt / "last.ckpt").exists()
