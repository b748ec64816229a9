"""Real subprocess tests of the main job: kill-file stop, SIGKILL + resume, damaged checkpoints,
the supervisor."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from ztb_core.manifest import Manifest

from .conftest import events, metrics, status, train_args, wait_for, ztb

pytestmark = pytest.mark.slow


def _stepping(run_dir, min_step: int = 1, pid: int | None = None):
    st = status(run_dir)
    return st.get("state") == "running" and st.get("step", 0) >= min_step and (pid is None or st.get("pid") == pid)


def test_kill_file_stops_safely_with_a_checkpoint(art):
    run = art / "runs" / "ks"
    proc = ztb(*train_args("ks", 10_000_000))
    wait_for(lambda: _stepping(run, 300), 90, "training to start")
    t0 = time.monotonic()
    (run / "ztb.stop").write_text("stop\n")
    rc = proc.wait(timeout=30)
    latency = time.monotonic() - t0
    out = proc.stdout.read().decode()
    assert rc == 0, out
    assert latency < 5.0, f"stop took {latency:.2f}s"
    st = status(run)
    assert st["state"] == "stopped"
    entries = Manifest(run / "checkpoints").entries()
    assert entries and entries[-1]["step"] == st["step"]  # the final checkpoint is the stopped state
    assert st["step"] % 128 == 0  # a rollout boundary: nothing counted that was not trained on
    kinds = [e["event"] for e in events(run)]
    assert "stop_requested" in kinds and kinds[-1] == "stopped"
    assert "resume:" in out and "ztb train --headless --resume ks" in out


def test_sigkill_at_random_moments_then_resume_reaches_the_total(art):
    total = 20_000  # rounded up to whole 128-step rollouts: 20,096
    run = art / "runs" / "sk"
    rng = random.Random(1234)
    # kill at random points of the run (by step, so the test does not depend on machine speed),
    # each a random fraction of a second after that step was reported
    targets = sorted(rng.sample(range(1_000, 17_000, 100), 3))
    proc = ztb(*train_args("sk", total))
    kills = 0
    for target in targets:
        wait_for(lambda p=proc, t=target: p.poll() is not None or _stepping(run, t, p.pid), 120, f"step {target}")
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        proc = ztb(*train_args("sk", total), "--resume", "latest")
    assert kills >= 2, proc.communicate(timeout=60)[0].decode()
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out
    st = status(run)
    assert st["state"] == "completed" and st["step"] == 20_096 == st["total_steps"]
    man = Manifest(run / "checkpoints")
    entries = man.entries()
    assert entries[-1]["step"] == 20_096
    assert all(man.verify(e) == (True, "ok") for e in entries)
    assert sorted(p.name for p in (run / "checkpoints").glob("*.ckpt.zst")) == sorted(e["file"] for e in entries)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    steps = [r["step"] for r in metrics(run, "train")]
    assert steps == sorted(set(steps)), "train metrics must be strictly increasing in step"
    resumed = [e for e in events(run) if e["event"] == "resumed"]
    assert len(resumed) >= 2 and all(e["step"] % 128 == 0 for e in resumed)


def test_damaged_newest_checkpoint_is_skipped_on_resume(art):
    run = art / "runs" / "dm"
    proc = ztb(*train_args("dm", 1024))
    assert proc.wait(timeout=120) == 0, proc.stdout.read().decode()
    man = Manifest(run / "checkpoints")
    newest, previous = man.entries()[-1], man.entries()[-2]
    path = run / "checkpoints" / newest["file"]
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    proc = ztb("train", "--headless", "--no-progress", "--resume", "dm", "--total-timesteps", "1280")
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out
    ev = events(run)
    bad = [e for e in ev if e["event"] == "checkpoint_invalid"]
    assert bad and bad[0]["file"] == newest["file"] and "sha256" in bad[0]["reason"]
    assert [e for e in ev if e["event"] == "resumed"][-1]["step"] == previous["step"]
    assert status(run)["step"] == 1280


def test_supervisor_restarts_after_a_crash_and_completes(art):
    run = art / "runs" / "sv"
    args = ["supervise", "--run-id", "sv", "--total-timesteps", "1536"]
    for s in train_args("sv", 1)[7:]:
        args.append(s)
    proc = ztb(*[a for a in args], env={"ZTB_FAULT_CRASH_AT_STEP": "700"})
    out = proc.communicate(timeout=180)[0].decode()
    assert proc.returncode == 0, out
    ev = events(run)
    kinds = [e["event"] for e in ev]
    assert "fault_injected" in kinds and "error" in kinds and "restarted" in kinds
    restarted = next(e for e in ev if e["event"] == "restarted")
    assert restarted["from_step"] <= 700 and "InjectedCrash" in restarted["error"]
    st = status(run)
    assert st["state"] == "completed" and st["step"] == 1536


def test_supervisor_does_not_restart_after_a_stop_request(art):
    run = art / "runs" / "sv2"
    args = ["supervise", "--run-id", "sv2", "--total-timesteps", "10000000", *train_args("x", 1)[7:]]
    proc = ztb(*args)
    wait_for(lambda: _stepping(run, 200), 90, "training to start")
    (run / "ztb.stop").write_text("stop\n")
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    assert status(run)["state"] == "stopped"
    assert "restarted" not in [e["event"] for e in events(run)]
    assert "not restarting" in out
