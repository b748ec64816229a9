"""The console's data sources, without a UI: incremental reads, truncation and rotation,
liveness with a frozen clock, launch argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import NOW, make_run

from ztb_core.errors import ZtbError
from ztb_core.runs import LineTail
from ztb_tui.launching import build_argv, parse_overrides
from ztb_tui.sources import MetricsSource, RunsSource, event_severity


def test_line_tail_reads_only_new_lines_and_holds_partial(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("one\ntwo\nthr")
    f = LineTail(log)
    assert f.poll().records == ["one", "two"]
    assert f.poll().records == []  # nothing new, partial line held back
    with open(log, "a") as fh:
        fh.write("ee\nfour\n")
    assert f.poll().records == ["three", "four"]


def test_line_tail_survives_truncation(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("a\nb\nc\n")
    f = LineTail(log)
    f.poll()
    log.write_text("new\n")  # copytruncate-style: same inode, smaller
    got = f.poll()
    assert got.reset and got.records == ["new"]


def test_line_tail_survives_rotation(tmp_path: Path) -> None:
    """A replaced file is followed from its top and says so (the console marks the break)."""
    log = tmp_path / "run.log"
    log.write_text("a\n\nb\n")
    f = LineTail(log)
    assert f.poll().records == ["a", "", "b"]  # blank lines are kept in a text log
    os.rename(log, tmp_path / "run.log.1")
    log.write_text("c\n")
    got = f.poll()
    assert got.records == ["c"]
    assert got.reset


def test_line_tail_first_read_is_only_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    f = LineTail(log, from_end_bytes=1000)
    lines = f.poll().records
    assert 50 < len(lines) < 200 and lines[-1] == "line 99999"


def test_metrics_source_is_incremental_and_resets_on_rewrite(artifacts: Path) -> None:
    run = make_run(artifacts, "train-x", rows=20)
    src = MetricsSource(run)
    snap = src.poll()
    ep = snap.get("train", "ep_rew_mean")
    assert ep is not None and len(ep.values) == 20 and ep.min <= ep.last <= ep.max
    assert snap.text["sys/gpu"] == "ok"
    offset = src.tail.offset
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"time": NOW, "step": 99_999, "split": "train", "ep_rew_mean": 7.5}) + "\n")
    snap2 = src.poll()
    assert src.tail.offset > offset and src.rows_read == snap.rows_read + 1  # only the new row was read
    assert snap2.get("train", "ep_rew_mean").last == 7.5 and snap2.get("train", "ep_rew_mean").step == 99_999
    (run / "metrics.jsonl").write_text(
        json.dumps({"time": NOW, "step": 1, "split": "train", "ep_rew_mean": 0.5}) + "\n"
    )
    snap3 = src.poll()
    assert snap3.reset and len(snap3.get("train", "ep_rew_mean").values) == 1


def test_metrics_first_read_of_a_huge_file_reads_only_its_tail(artifacts: Path) -> None:
    run = make_run(artifacts, "train-big", rows=1)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(
            "".join(
                json.dumps({"time": NOW, "step": i, "split": "train", "value_loss": 1.0 / (i + 1)}) + "\n"
                for i in range(200_000)
            )
        )
    src = MetricsSource(run, tail_bytes=64 << 10)
    snap = src.poll()
    assert snap.rows_read < 2000
    assert snap.get("train", "value_loss").step == 199_999


def test_runs_source_liveness_with_frozen_clock_and_new_runs(artifacts: Path) -> None:
    src = RunsSource(artifacts, now=lambda: NOW)
    assert src.poll() == []
    make_run(artifacts, "train-live", age_s=2.0)
    make_run(artifacts, "train-stale", age_s=120.0, created="2026-01-01T09:00:00.000+00:00")
    make_run(artifacts, "train-dead", alive=False, age_s=2.0, created="2026-01-01T08:00:00.000+00:00")
    make_run(artifacts, "pre-done", kind="pretrain", state="completed", created="2026-01-01T07:00:00.000+00:00")
    rows = {r.run_id: r for r in src.poll()}
    assert rows["train-live"].liveness == "running" and rows["train-live"].fps == 812.5
    assert rows["train-stale"].liveness == "stale"
    assert rows["train-dead"].liveness == "dead" and rows["train-dead"].fps is None
    assert rows["pre-done"].liveness == "completed"
    assert rows["train-live"].heartbeat_age_s == pytest.approx(2.0)
    assert rows["train-live"].eta_s == pytest.approx((100_000 - 40_960) / 812.5)
    assert [r.run_id for r in src.poll()][0] == "train-live"  # newest first


def test_overrides_and_argv() -> None:
    assert parse_overrides('ppo.total_timesteps=2048 name="a b"') == ["ppo.total_timesteps=2048", "name=a b"]
    with pytest.raises(ZtbError, match="expected key=value"):
        parse_overrides("oops")
    argv = build_argv("train", Path("configs/train.yaml"), ["seed=3"], "train-abc")
    assert argv[:3] == [sys.executable, "-m", "ztb_core.cli"]
    assert argv[3:] == [
        "train",
        "--headless",
        "--config",
        "configs/train.yaml",
        "--set",
        "seed=3",
        "--run-id",
        "train-abc",
    ]
    assert build_argv("live-minimal")[3:5] == ["live", "--minimal"]
    with pytest.raises(ZtbError, match="unknown job kind"):
        build_argv("backtest")


def test_event_severity() -> None:
    assert event_severity({"event": "alert"}) == "alert"
    assert event_severity({"event": "stop_escalated"}) == "alert"
    assert event_severity({"event": "stop_requested"}) == "notice"
    assert event_severity({"event": "checkpoint_saved"}) == "info"


def test_pretrain_launches_with_a_run_id_and_resumes_from_the_chosen_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from ztb_tui import launching

    assert build_argv("pretrain", overrides=["seed=2"], run_id="pretrain-x")[3:] == [
        "pretrain",
        "--headless",
        "--set",
        "seed=2",
        "--run-id",
        "pretrain-x",
    ]
    calls = []
    monkeypatch.setattr(
        launching,
        "launch_detached",
        lambda argv, out, env=None: calls.append((argv, out)) or subprocess.Popen([sys.executable, "-c", "pass"]),
    )
    art = tmp_path / "artifacts"
    launched = launching.launch("pretrain", art)
    launched.proc.wait()
    # the console names the run, so its launch output is the one the run view shows
    assert launched.run_id.startswith("pretrain-") and calls[-1][0][-2:] == ["--run-id", launched.run_id]
    assert calls[-1][1] == art / "launches" / f"{launched.run_id}.out"
    calls[-1][1].parent.mkdir(parents=True, exist_ok=True)
    calls[-1][1].write_text("started")
    assert launching.launch_output(art, launched.run_id) == [calls[-1][1]]
    run = art / "runs" / launched.run_id
    ckpt = run / "checkpoints" / "best-step=20-val_loss=0.1000.ckpt"
    launching.resume("pretrain", run, ckpt, art).proc.wait()
    assert calls[-1][0][3:] == ["pretrain", "--headless", "--resume", str(ckpt)]
    assert calls[-1][1].parent == art / "launches" and calls[-1][1].name.startswith(f"{launched.run_id}-resume-")
    with pytest.raises(ZtbError, match="no resume"):
        launching.resume("live", run, run, tmp_path / "artifacts")
