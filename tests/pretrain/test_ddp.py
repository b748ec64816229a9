"""DDP through Lightning on CPU (2 processes, gloo): the run completes with the same result shape
as a single process, only rank 0 writes to the run directory, the kill-file stops every rank, and
the stopped run resumes to the end."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from ztb_core.config import config_to_dict
from ztb_core.paths import REPO_ROOT
from ztb_core.pretrain.runner import RankWriter, launch_rank

from .conftest import tiny_config

DDP = ["--set", "trainer.strategy=ddp", "--set", "trainer.accelerator=cpu", "--set", "trainer.devices=2"]


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_launch_rank_reads_the_launchers_environment(monkeypatch):
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert launch_rank(2) == 0  # the process the user started
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launch_rank(2) == 1  # started by Lightning's launcher
    monkeypatch.setenv("NODE_RANK", "1")
    assert launch_rank(2) == 3
    monkeypatch.setenv("RANK", "5")  # torchrun
    assert launch_rank(2) == 5


def test_rank_writer_never_writes(tmp_path):
    w = RankWriter(tmp_path / "run")
    w.set_status("running", step=1)
    w.event("x", a=1)
    w.metric(1, "train", {"loss": 1.0})
    w.heartbeat(step=1)
    assert w.rewind_metrics(3) == 0 and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ddp_on_cpu_completes_stops_every_rank_and_resumes(tmp_path):
    art = tmp_path / "art"
    env = {
        **os.environ,
        "ZTB_ARTIFACTS": str(art),
        "ZTB_KILL": str(tmp_path / "global.stop"),
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
    }
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "ZTB_PRETRAIN_RUN_DIR"):
        env.pop(key, None)
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 100_000, "trainer.epoch_steps": 10})
    cfg_path = tmp_path / "pretrain.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    base = [sys.executable, "-m", "ztb_core.cli", "pretrain", "--headless"]
    cmd = base + ["--config", str(cfg_path), "--run-id", "ddp-1", *DDP]
    run_dir = art / "runs" / "ddp-1"
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ranks: list[int] = []
    try:
        deadline = time.time() + 480  # a loaded 2-core CI box starts two torch processes slowly
        while time.time() < deadline and _status(run_dir).get("step", 0) < 12:
            assert proc.poll() is None, proc.stdout.read()
            ranks = _descendants(proc.pid) or ranks
            time.sleep(0.3)
        assert _status(run_dir).get("step", 0) >= 12, "DDP training never reached step 12"
        ranks = _descendants(proc.pid) or ranks
        assert ranks, "Lightning started no second rank"
        (run_dir / "ztb.stop").write_text("{}")  # rank 0 sees it; every rank must stop
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    time.sleep(1.0)
    assert not [p for p in ranks if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    st = _status(run_dir)
    assert st["state"] == "stopped", st
    stopped_at = st["step"]
    assert [p.name for p in (art / "runs").iterdir()] == ["ddp-1"]  # rank 1 created no run of its own
    events = _events(run_dir)
    assert [e["event"] for e in events].count("started") == 1  # rank 1 wrote no events
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["run.log"]

    target = stopped_at + 4
    res = subprocess.run(
        base + ["--resume", "ddp-1", "--set", f"trainer.max_steps={target}", *DDP],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    st = _status(run_dir)
    assert st["state"] == "completed" and st["step"] == target, st
    assert [e["step"] for e in _events(run_dir) if e["event"] == "resumed"] == [stopped_at]
    train_steps = [
        r["step"]
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if r["split"] == "train"
    ]
    assert len(train_steps) == len(set(train_steps))  # one writer: no row twice
    report = json.loads((run_dir / "reports" / "pretrain-eval.json").read_text())
    assert set(report["results"]) == {"model", "linear", "carry", "mean", "bridge", "cross"}
    assert set(report["comparison"]) == {"M1", "M5"} and set(report["verdict"]) == {"M1", "M5"}
    assert (run_dir / "encoder" / "encoder.pt").exists()
    assert [p.name for p in (art / "runs").iterdir()] == ["ddp-1"]
