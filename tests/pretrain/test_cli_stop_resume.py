"""The kill-file in a real subprocess: stop at the next step with a fresh checkpoint, exit 0;
`--resume <checkpoint file>` continues from exactly that checkpoint's step to the end. How
`--resume` and `--run-id` pick the run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ztb_core.config import config_to_dict
from ztb_core.errors import CheckpointError, RunError
from ztb_core.paths import REPO_ROOT
from ztb_core.pretrain.runner import resolve_pretrain_resume, run_pretrain, verified_checkpoint
from ztb_core.runs import RunWriter

from .conftest import tiny_config


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_kill_file_stops_with_checkpoint_and_resume_from_an_older_checkpoint_finishes(tmp_path):
    art = tmp_path / "art"
    env = {
        **os.environ,
        "ZTB_ARTIFACTS": str(art),
        "ZTB_KILL": str(tmp_path / "global.stop"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 100_000, "trainer.epoch_steps": 10})
    cfg_path = tmp_path / "pretrain.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    cmd = [
        sys.executable,
        "-m",
        "ztb_core.cli",
        "pretrain",
        "--headless",
        "--config",
        str(cfg_path),
        "--run-id",
        "pretrain-cli-1",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        run_dir = None
        while time.time() < deadline:
            if _status(art / "runs" / "pretrain-cli-1").get("step", 0) >= 12:
                run_dir = art / "runs" / "pretrain-cli-1"
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        assert run_dir is not None, "training never reached step 12"
        (run_dir / "ztb.stop").write_text("{}")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    st = _status(run_dir)
    assert st["state"] == "stopped"
    stopped_at = st["step"]
    manifest = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())["checkpoints"]
    last = next(e for e in manifest if e["file"] == "last.ckpt")
    assert last["step"] == stopped_at  # the kill-file callback saved it: no steps lost
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert "stop_requested" in events and "stopped" in events

    # resume from the oldest checkpoint the manifest lists: later metrics are rewound, none duplicated
    older = min((e for e in manifest if e["file"] != "last.ckpt"), key=lambda e: e["step"])
    assert older["step"] < stopped_at
    target = stopped_at + 6
    res = subprocess.run(
        cmd[:4]
        + [
            "--headless",
            "--resume",
            str(run_dir / "checkpoints" / older["file"]),
            "--set",
            f"trainer.max_steps={target}",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    st = _status(run_dir)
    assert st["state"] == "completed" and st["step"] == target
    train_steps = [
        r["step"]
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if r["split"] == "train"
    ]
    assert train_steps == sorted(train_steps) and len(train_steps) == len(set(train_steps))
    assert (run_dir / "encoder" / "encoder.pt").exists()
    assert (run_dir / "reports" / "pretrain-eval.json").exists()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    resumed = [e for e in events if e["event"] == "resumed"]
    assert resumed and resumed[0]["step"] == older["step"] and resumed[0]["checkpoint"] == older["file"]


def test_resume_picks_the_run_by_latest_run_id_dir_or_checkpoint_file(tmp_path):
    a = RunWriter.create("pretrain", {"seed": 0}, run_id="pretrain-a", argv=["test"])
    a.close("stopped")
    b = RunWriter.create("pretrain", {"seed": 0}, run_id="pretrain-b", argv=["test"])
    b.close("stopped")
    assert resolve_pretrain_resume("latest") == (b.dir, None)
    assert resolve_pretrain_resume("latest", "pretrain-a") == (a.dir, None)
    assert resolve_pretrain_resume(str(a.dir)) == (a.dir.resolve(), None)
    ckpt = a.checkpoints_dir / "best-step=4.ckpt"
    ckpt.write_bytes(b"weights")
    assert resolve_pretrain_resume(str(ckpt)) == (a.dir.resolve(), ckpt.resolve())
    stray = tmp_path / "stray.ckpt"
    stray.write_bytes(b"weights")
    with pytest.raises(RunError, match="not inside a run's checkpoints/ folder"):
        resolve_pretrain_resume(str(stray))
    with pytest.raises(CheckpointError, match="not listed in"):
        verified_checkpoint(ckpt)  # never load a file the manifest does not vouch for
    with pytest.raises(RunError, match="name different runs"):
        run_pretrain(resume=str(a.dir), run_id="pretrain-b")
    with pytest.raises(RunError, match="already exists"):
        run_pretrain(run_id="pretrain-a", overrides=["trainer.max_steps=1"])
