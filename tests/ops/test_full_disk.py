"""Item 7: a full disk never ends in "completed". The checkpoint saver frees what retention allows
and retries, reports a failure at once (checkpoint_failed + alert), and `require_on_disk` fails a
run whose final checkpoint is missing, saying how many steps are not saved."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from ztb_core.errors import CheckpointError
from ztb_core.manifest import Manifest
from ztb_core.rl.checkpoints import FORMAT_VERSION, CheckpointSaver, load_latest_valid
from ztb_core.runs import RunReader, RunWriter


def state(step: int, kb: int = 64) -> dict:
    # incompressible payload so the file size on disk is predictable
    rng = np.random.default_rng(step)
    return {"format": FORMAT_VERSION, "num_timesteps": step, "blob": rng.bytes(kb * 1024)}


def enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_frees_older_checkpoints_and_retries(tmp_path, monkeypatch):
    saver = CheckpointSaver(tmp_path / "ckpt", level=1, keep_last=5)
    for step in (100, 200, 300):
        saver.submit(state(step))
    saver.wait()
    assert [e["step"] for e in saver.manifest.entries()] == [100, 200, 300]
    real = CheckpointSaver.write_file
    calls = []

    def full_once(path, data):
        calls.append(path.name)
        if len(calls) == 1:
            enospc()
        real(path, data)

    monkeypatch.setattr(CheckpointSaver, "write_file", staticmethod(full_once))
    saver.submit(state(400))
    saver.close()
    assert len(calls) == 2 and saver.errors == []
    # retention's floor: the newest valid (300) survived the freeing, then 400 landed
    assert [e["step"] for e in saver.manifest.entries()] == [300, 400]
    assert saver.freed_bytes > 2 * 64 * 1024
    assert saver.require_on_disk(400)["step"] == 400


def test_best_checkpoint_survives_the_freeing(tmp_path, monkeypatch):
    saver = CheckpointSaver(tmp_path / "ckpt", level=1, keep_last=5)
    saver.submit(state(100), eval_score=2.0)
    saver.submit(state(200), eval_score=0.5)
    saver.submit(state(300))
    saver.wait()
    monkeypatch.setattr(CheckpointSaver, "write_file", staticmethod(enospc))
    saver.submit(state(400))
    saver.close()
    assert [e["step"] for e in Manifest(saver.dir).entries()] == [100, 300]  # best + newest
    assert len(saver.errors) == 1 and "No space left" in saver.errors[0]


def test_failure_is_alerted_at_once_and_final_check_counts_lost_steps(artifacts, monkeypatch):
    writer = RunWriter.create("train", {})
    saver = CheckpointSaver(writer.checkpoints_dir, level=1, on_error=CheckpointSaver.failure_reporter(writer))
    saver.submit(state(30_720))
    saver.wait()
    monkeypatch.setattr(CheckpointSaver, "write_file", staticmethod(enospc))
    saver.submit(state(200_704))
    saver.close()
    events = RunReader(writer.dir).events()
    failed = [e for e in events if e["event"] == "checkpoint_failed"]
    alerts = [e for e in events if e["event"] == "alert"]
    assert failed and failed[0]["step"] == 200_704
    assert alerts and alerts[0]["check"] == "checkpoint_failed" and "No space left on device" in alerts[0]["message"]
    assert "free of" in alerts[0]["message"]  # the disk's state is part of the alert
    with pytest.raises(CheckpointError, match=r"169,984 steps of training are not saved"):
        saver.require_on_disk(200_704)
    writer.close("failed")


def test_other_write_errors_are_not_retried(tmp_path, monkeypatch):
    saver = CheckpointSaver(tmp_path / "ckpt", level=1)
    saver.submit(state(100))
    saver.wait()
    calls = []

    def eio(path, data):
        calls.append(1)
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(CheckpointSaver, "write_file", staticmethod(eio))
    saver.submit(state(200))
    saver.close()
    assert calls == [1] and [e["step"] for e in saver.manifest.entries()] == [100]


def test_real_3mb_filesystem(tiny_fs):
    """On a real 3 MB tmpfs: 1 MB checkpoints fill it; the saver frees and retries, and once even the
    freed space is too small the final check fails with the lost steps counted."""
    saver = CheckpointSaver(tiny_fs / "ckpt", level=1, keep_last=5)
    for step in (1000, 2000):
        saver.submit(state(step, kb=1024))
    saver.wait()
    assert saver.errors == [] and len(saver.manifest.entries()) == 2
    saver.submit(state(3000, kb=1024))  # 3 x 1 MB + manifest does not fit: frees 1000, retries, lands
    saver.wait()
    assert saver.errors == [], saver.errors
    assert [e["step"] for e in saver.manifest.entries()] == [2000, 3000]
    saver.submit(state(4000, kb=2900))  # cannot fit even after freeing
    saver.close()
    assert saver.errors and "No space left on device" in saver.errors[-1]
    with pytest.raises(CheckpointError, match=r"step 4,000 is not on disk.*1,000 steps of training are not saved"):
        saver.require_on_disk(4000)
    entry, _ = load_latest_valid(saver.dir)
    assert entry["step"] == 3000  # what is on disk still verifies and loads


def test_train_on_a_full_disk_ends_failed_with_the_lost_steps(artifacts, monkeypatch, capsys):
    """End to end through `ztb train`: every checkpoint after the first hits ENOSPC. The run must not
    say completed: exit != 0, state failed, the message counts the steps not saved, and each failed
    save raised an alert at once."""
    from ztb_core.cli import main
    from ztb_core.cli.smoke import TRAIN_SETS

    real = CheckpointSaver.write_file
    writes = []

    def full_after_first(path, data):
        writes.append(path.name)
        if len(writes) > 1:
            enospc()
        real(path, data)

    monkeypatch.setattr(CheckpointSaver, "write_file", staticmethod(full_after_first))
    sets = [a for s in [*TRAIN_SETS[:-1], "total_timesteps=512"] for a in ("--set", s)]
    code = main(["train", "--headless", "--run-id", "full-disk", *sets])
    err = capsys.readouterr().err.replace("\n", " ")
    assert code != 0
    assert "the final checkpoint at step 512 is not on disk" in err and "384 steps of training are not saved" in err
    reader = RunReader(artifacts / "runs" / "full-disk")
    assert reader.status()["state"] == "failed"
    events = reader.events()
    assert not [e for e in events if e["event"] == "completed"]
    assert len([e for e in events if e["event"] == "alert" and e.get("check") == "checkpoint_failed"]) >= 2
