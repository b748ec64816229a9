"""Fixture run folders for console tests, written with the real RunWriter and then pinned to
fixed times so screenshots are byte-for-byte stable."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ztb_core.atomic import atomic_write_json, read_json
from ztb_core.manifest import Manifest, sha256_file
from ztb_core.runs import RunWriter
from ztb_core.runtime.telemetry import GpuSample
from ztb_tui.sources import HostSample

NOW = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC: the frozen "now" of every fixture


class FakeGpu:
    """A GpuSource for tests: either one GPU with fixed readings or 'unavailable'."""

    def __init__(self, available: bool = True, reason: str = "NVML: driver not loaded (test)"):
        self.available = available
        self.reason = "" if available else reason
        self.driver_version = "550.54" if available else None

    def gpus(self) -> list[GpuSample]:
        if not self.available:
            return []
        return [GpuSample(0, "NVIDIA H100 80GB HBM3", 87.0, 40_960.0, 81_559.0, 64.0, 512.0)]

    def process_vram_mb(self, pids: set[int]) -> float | None:
        return 12_288.0 if self.available else None


class FakeHost:
    """A HostSource with fixed CPU and memory readings."""

    def __init__(self, gpu: FakeGpu | None = None):
        self.gpu = gpu or FakeGpu(available=False)

    def poll(self) -> HostSample:
        return HostSample(
            cpu_pct=12.0,
            mem_pct=41.0,
            mem_used_mb=10_240.0,
            mem_total_mb=24_576.0,
            gpu_available=self.gpu.available,
            gpu_reason=self.gpu.reason,
            gpus=tuple(self.gpu.gpus()),
        )


def _pin_jsonl(path: Path, start: float) -> None:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for i, rec in enumerate(lines):
        rec["time"] = start + i
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))


def make_run(
    artifacts: Path,
    run_id: str,
    kind: str = "train",
    state: str = "running",
    step: int = 40_960,
    total_steps: int | None = 100_000,
    rows: int = 40,
    checkpoints: int = 2,
    gpu: bool = True,
    alive: bool = True,
    age_s: float = 2.0,
    created: str = "2026-01-01T10:00:00.000+00:00",
    log_lines: int = 30,
    alert: bool = True,
) -> Path:
    writer = RunWriter.create(
        kind,
        {"seed": 1, "ppo": {"total_timesteps": total_steps}},
        run_id=run_id,
        artifacts=artifacts,
        total_steps=total_steps,
        argv=["ztb", kind, "--headless"],
    )
    every = max(1, step // max(rows, 1))
    for i in range(rows):
        s = (i + 1) * every
        x = i / max(rows - 1, 1)
        if kind == "train":
            writer.metric(
                s,
                "train",
                {
                    "ep_rew_mean": -1.0 + 2.0 * x + 0.1 * math.sin(i),
                    "policy_loss": 0.05 * (1 - x),
                    "value_loss": 0.8 * math.exp(-3 * x),
                    "entropy_loss": -1.2 + 0.4 * x,
                    "approx_kl": 0.01 + 0.002 * math.sin(i),
                    "fps": 850.0 + i,
                },
            )
            if i % 5 == 4:
                # the shape the trainer's periodic evaluation writes (split = eval.split)
                writer.metric(
                    s,
                    "val",
                    {
                        "sharpe": 0.2 + 1.1 * x,
                        "max_drawdown": 0.2 - 0.1 * x,
                        "total_return": 0.3 * x,
                        "buy_and_hold_sharpe": 0.5,
                        "buy_and_hold_max_drawdown": 0.15,
                        "buy_and_hold_total_return": 0.05,
                    },
                )
        elif kind == "pretrain":
            writer.metric(s, "train", {"loss": 1.5 * math.exp(-2 * x) + 0.05})
            if i % 4 == 3:
                writer.metric(
                    s,
                    "val",
                    {
                        "loss": 1.6 * math.exp(-2 * x) + 0.08,
                        "corr_return_M1": 0.2 + 0.2 * x,
                        "corr_return_linear_M1": 0.27,
                        "corr_interior_M1": 0.1 + 0.2 * x,
                        "corr_interior_baseline_M1": 0.33,
                        "corr_level_M1": 0.8,
                    },
                )
        else:
            writer.metric(
                s,
                "live",
                {
                    "equity": 10_000 + 150 * x,
                    "pnl": 150 * x,
                    "position": (-1) ** i * 0.5,
                    "latency_ms": 40 + 5 * math.sin(i),
                },
            )
        sysrow = {"rss_mb": 1800 + 3 * i, "cpu_pct": 180 + 10 * math.sin(i), "sys_mem_pct": 40 + 0.1 * i}
        if gpu:
            sysrow.update(
                {
                    "gpu": "ok",
                    "gpu0_util_pct": 80 + 10 * math.sin(i),
                    "gpu0_mem_used_mb": 40_000 + 10 * i,
                    "gpu0_mem_total_mb": 81_559.0,
                    "gpu0_temp_c": 60 + i % 5,
                    "gpu0_power_w": 480 + i,
                    "proc_vram_mb": 12_000 + i,
                }
            )
        else:
            sysrow["gpu"] = "unavailable: NVML: driver not loaded (test)"
        writer.metric(s, "sys", sysrow)
    ckdir = writer.checkpoints_dir
    manifest = Manifest(ckdir)
    for c in range(checkpoints):
        cstep = (c + 1) * (step // max(checkpoints, 1))
        name = f"step-{cstep:09d}.zip"
        (ckdir / name).write_bytes(os.urandom(0) + bytes([c]) * (20_000 + 1000 * c))
        manifest.add(
            {
                "file": name,
                "step": cstep,
                "sha256": sha256_file(ckdir / name),
                "size": (ckdir / name).stat().st_size,
                "raw_size": 3 * (20_000 + 1000 * c),
                "ratio": 3.0,
                "save_seconds": 0.12,
                "created_at": f"2026-01-01T11:{10 + c:02d}:00+00:00",
                "best": c == checkpoints - 1,
            }
        )
        writer.event("checkpoint_saved", step=cstep, file=name)
    if alert:
        writer.event("alert", message="drawdown above 15% threshold")
    with open(writer.logs_dir / "run.log", "w") as fh:
        for i in range(log_lines):
            fh.write(f"2026-01-01 11:{i % 60:02d}:00 INFO    ztb.{kind}: step {i * 1000} done\n")
    final = state if state in ("stopped", "completed", "failed") else None
    writer.close(final)
    # pin every time-dependent field to the frozen clock
    info = read_json(writer.dir / "run.json")
    info["created_at"] = created
    atomic_write_json(writer.dir / "run.json", info)
    status = read_json(writer.dir / "status.json")
    status.update(
        state=state,
        step=step,
        total_steps=total_steps,
        updated_at=NOW - age_s,
        step_updated_at=NOW - age_s,
        host=status.get("host"),
        message=None,
    )
    if alive:
        status.update(pid=1, pgid=1)  # pid 1 always exists: a stable, living pid for screenshots
        status.pop("pid_create_time", None)
    else:
        status.update(pid=os.getpid(), pid_create_time=1.0)  # wrong create time: the pid was "reused"
    if state in ("running", "starting") and kind == "train":
        status["fps"] = 812.5
    atomic_write_json(writer.dir / "status.json", status)
    _pin_jsonl(writer.dir / "events.jsonl", NOW - 3600)
    _pin_jsonl(writer.dir / "metrics.jsonl", NOW - 3600)
    return writer.dir


def make_fleet(artifacts: Path, gpu: bool = True) -> dict[str, Path]:
    """Four runs covering the states a person meets: running, stale, dead and completed."""
    return {
        "train": make_run(artifacts, "train-20260101-100000-a1b2", created="2026-01-01T10:00:00.000+00:00", gpu=gpu),
        "pretrain": make_run(
            artifacts,
            "pretrain-20260101-090000-c3d4",
            kind="pretrain",
            state="completed",
            step=5000,
            total_steps=5000,
            created="2026-01-01T09:00:00.000+00:00",
            gpu=gpu,
            alert=False,
        ),
        "live": make_run(
            artifacts,
            "live-20260101-110000-e5f6",
            kind="live",
            state="running",
            step=310,
            total_steps=None,
            age_s=95.0,
            created="2026-01-01T11:00:00.000+00:00",
            gpu=gpu,
            checkpoints=0,
        ),
        "dead": make_run(
            artifacts,
            "train-20260101-080000-dead",
            state="running",
            step=12_000,
            alive=False,
            age_s=600.0,
            created="2026-01-01T08:00:00.000+00:00",
            gpu=gpu,
            rows=10,
        ),
    }
