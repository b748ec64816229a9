"""Disk health: levels from free space and from growth rate, the telemetry history it reads, and
`ztb watch` turning a nearly-full disk into an alert before a checkpoint fails."""

from __future__ import annotations

import time

from ztb_core.ops.watcher import Thresholds, watch_once
from ztb_core.runs import RunReader, RunWriter
from ztb_core.runtime.config import DiskConfig
from ztb_core.runtime.disk import MB, Usage, disk_health, disk_history, run_disk_health
from ztb_core.runtime.telemetry import TelemetryThread

GB = 1024 * MB


def fixed(free: int, total: int = 100 * GB):
    return lambda _path: Usage(total, total - free, free)


CFG = DiskConfig(warn_free_mb=2048, critical_free_mb=256, warn_hours_to_full=24, critical_hours_to_full=1)


def test_plenty_of_space_and_no_history_is_ok(tmp_path):
    h = disk_health(tmp_path, (), CFG, now=1000.0, usage=fixed(50 * GB))
    assert h.level == "ok" and h.growth_bytes_per_s is None and h.seconds_to_full is None
    assert h.free_bytes == 50 * GB and h.total_bytes == 100 * GB


def test_low_free_space_warns_then_goes_critical(tmp_path):
    assert disk_health(tmp_path, (), CFG, usage=fixed(1 * GB)).level == "warn"
    crit = disk_health(tmp_path, (), CFG, usage=fixed(100 * MB))
    assert crit.level == "critical" and "under 256 MiB free" in crit.message()


def test_growth_rate_and_time_to_full(tmp_path):
    # 10 GiB free now, 12 GiB free 1000 s ago: 2 GiB / 1000 s -> full in 5000 s (< 24 h: warn)
    now = 10_000.0
    h = disk_health(tmp_path, [(now - 1000, 12 * GB), (now - 500, 11 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert abs(h.growth_bytes_per_s - 2 * GB / 1000) < 1
    assert abs(h.seconds_to_full - 5000) < 1
    assert h.level == "warn" and "full in" in h.message()
    # the same fall within 10 s: full in 50 s -> critical
    fast = disk_health(tmp_path, [(now - 10, 12 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert fast.level == "critical"


def test_samples_outside_the_window_and_shrinking_usage_are_ignored(tmp_path):
    now = 100_000.0
    old = disk_health(tmp_path, [(now - 3 * 3600, 90 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert old.growth_bytes_per_s is None and old.level == "ok"
    freed = disk_health(tmp_path, [(now - 60, 5 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert freed.growth_bytes_per_s < 0 and freed.seconds_to_full is None and freed.level == "ok"


def test_a_path_that_does_not_exist_yet_reads_its_parent(tmp_path):
    h = disk_health(tmp_path / "not" / "yet", ())
    assert h.path == tmp_path and h.total_bytes > 0


def test_telemetry_rows_carry_disk_free_space(artifacts):
    run = RunWriter.create("train", {})
    thread = TelemetryThread(run, interval_s=0.05).start()
    deadline = time.time() + 20
    while time.time() < deadline and len(disk_history(run.dir)) < 2:
        run.metrics.flush()
        time.sleep(0.05)
    thread.stop()
    run.close("completed")
    hist = disk_history(run.dir)
    assert len(hist) >= 2 and all(free > 0 for _, free in hist)


def test_watch_alerts_on_a_filling_disk(artifacts, monkeypatch):
    run = RunWriter.create("train", {})
    run.set_status("running", step=10, total_steps=100)
    now = time.time()
    # history written as the telemetry thread does: 3 GiB free a minute ago
    run.metric(10, "sys", {"disk_free_bytes": 3 * GB, "disk_total_bytes": 100 * GB}, flush=True)
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(1 * GB))
    alerts = watch_once(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), disk=CFG, now=now + 60)
    assert [a.check for a in alerts] == ["disk_critical"], alerts
    assert "full in" in alerts[0].message
    events = [e for e in RunReader(run.dir).events() if e["event"] == "alert"]
    assert events and events[-1]["check"] == "disk_critical"
    # not repeated within repeat_min
    assert watch_once(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), disk=CFG, now=now + 61) == []
    run.close("completed")


def test_watch_is_quiet_on_a_healthy_disk(artifacts, monkeypatch):
    run = RunWriter.create("train", {})
    run.set_status("running", step=1, total_steps=100)
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(50 * GB))
    assert watch_once(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), disk=CFG) == []
    run.close("completed")


def test_run_disk_health_reads_the_run_history_and_config(artifacts, monkeypatch):
    run = RunWriter.create("train", {})
    run.metric(1, "sys", {"time": 1_000_000.0, "disk_free_bytes": 60 * GB, "disk_total_bytes": 100 * GB}, flush=True)
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(50 * GB))
    h = run_disk_health(run.dir, now=1_000_060.0)  # 10 GiB in 60 s
    assert h.growth_bytes_per_s > 0 and h.seconds_to_full is not None and h.free_bytes == 50 * GB
    run.close("completed")
