from __future__ import annotations

import json
import subprocess
import time

import pytest
from typer.testing import CliRunner

from tests.conftest import ztb_cmd
from ztb_core.cli import app
from ztb_core.runs import RunReader, RunWriter
from ztb_core.runtime.telemetry import GpuSample, NvmlSource, TelemetrySampler, TelemetryThread


class FakeGpu:
    available = True
    reason = ""
    driver_version = "999.1"

    def gpus(self):
        return [GpuSample(0, "Fake H100", 42.0, 1000.0, 80000.0, 55.0, 300.0)]

    def process_vram_mb(self, pids):
        return 512.0


def test_nvml_absent_is_a_state_not_an_error():
    src = NvmlSource()  # no driver on CI machines
    if src.available:
        pytest.skip("a GPU and driver are present: test_nvml_present_reports_real_gpus covers this box")
    assert src.reason and src.gpus() == [] and src.process_vram_mb({1}) is None
    sample = TelemetrySampler().sample()
    assert sample["gpu"].startswith("unavailable: ") and sample["rss_mb"] > 10


def test_nvml_present_reports_real_gpus():
    src = NvmlSource()
    if not src.available:
        pytest.skip(f"no NVIDIA GPU: {src.reason}")
    gpus = src.gpus()
    assert gpus and all(g.mem_total_mb and g.mem_total_mb > 0 for g in gpus)
    sample = TelemetrySampler().sample()
    assert sample["gpu"] == "ok" and sample["gpu0_mem_total_mb"] == gpus[0].mem_total_mb


def test_fake_gpu_and_thread_write_sys_series(artifacts):
    run = RunWriter.create("train", {})
    thread = TelemetryThread(run, interval_s=0.05, sampler=TelemetrySampler(gpu=FakeGpu())).start()
    tail = RunReader(run.dir).metrics_tail()
    rows: list[dict] = []
    deadline = time.monotonic() + 30  # wait for rows, not for a fixed time (a busy machine is slow)
    while len(rows) < 3 and time.monotonic() < deadline:
        run.metrics.flush()
        rows += [r for r in tail.poll().records if r["split"] == "sys"]
        time.sleep(0.02)
    thread.stop()
    run.close("completed")
    rows = [r for r in RunReader(run.dir).metrics_tail().poll().records if r["split"] == "sys"]
    assert len(rows) >= 3
    assert rows[-1]["gpu0_util_pct"] == 42.0 and rows[-1]["proc_vram_mb"] == 512.0 and rows[-1]["gpu"] == "ok"


def test_version_help_and_runs_json(artifacts):
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == "ztb 0.1.0"
    help_text = runner.invoke(app, ["--help"]).output
    for cmd in ("doctor", "runs", "stop"):
        assert cmd in help_text
    assert "no runs yet" in runner.invoke(app, ["runs"]).output
    run = RunWriter.create("train", {}, total_steps=1000)
    run.set_status("running", step=250)
    run.close()
    rows = json.loads(runner.invoke(app, ["runs", "--json"]).output)
    assert rows[0]["run_id"] == run.run_id and rows[0]["step"] == 250 and rows[0]["pid_alive"] is True
    table = runner.invoke(app, ["runs"]).output
    assert run.run_id[:10] in table and "250/1,000" in table


def test_doctor_as_subprocess(artifacts):
    res = subprocess.run(ztb_cmd("doctor", "--json"), capture_output=True, text=True, timeout=120)
    report = json.loads(res.stdout)
    assert res.returncode == (0 if report["ok"] else 1)
    names = {c["check"] for c in report["checks"]}
    assert {"python", "torch", "nvml", "artifacts", "torch/cuda"} <= names
    nvml = next(c for c in report["checks"] if c["check"] == "nvml")
    assert nvml["ok"] or nvml["detail"].startswith("unavailable:")
