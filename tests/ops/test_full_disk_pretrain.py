"""Item 7 for pretraining: a Lightning checkpoint write that hits a full disk ends the fit with the
run failed (never completed) and an alert at once counting the steps not saved."""

from __future__ import annotations

import errno
import os

import pytest

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
    with pytest.raises(OSError, match="No space left on device"), writer:
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
