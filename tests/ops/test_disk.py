"""Disk health: levels from free space and from growth rate (a least-squares fit over the window,
`runtime.estimates`), the telemetry history it reads, and `ztb watch` turning a nearly-full disk
into an alert before a checkpoint fails, but not a roomy disk written in bursts."""

from __future__ import annotations

import random
import time

from ztb_core.ops.watcher import Thresholds, check_run, watch_once
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
    # 4 GiB in ten minutes: full in 25 min -> critical
    fast = disk_health(tmp_path, [(now - 600, 14 * GB), (now - 300, 12 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert fast.level == "critical"
    # the same fall within 10 s says too little about hours: no rate from under ten minutes
    brief = disk_health(tmp_path, [(now - 10, 12 * GB), (now - 5, 11 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert brief.growth_bytes_per_s is None and brief.level == "ok"


def test_samples_outside_the_window_and_shrinking_usage_are_ignored(tmp_path):
    now = 100_000.0
    old = disk_health(tmp_path, [(now - 3 * 3600, 90 * GB)], CFG, now=now, usage=fixed(10 * GB))
    assert old.growth_bytes_per_s is None and old.level == "ok"
    freed = disk_health(tmp_path, [(now - 900, 5 * GB), (now - 450, 7 * GB)], CFG, now=now, usage=fixed(10 * GB))
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
    # history written as the telemetry thread does: 3 GiB free ten minutes ago, 2 GiB five
    for ago, free in ((600, 3 * GB), (300, 2 * GB)):
        run.metric(10, "sys", {"time": now - ago, "disk_free_bytes": free, "disk_total_bytes": 100 * GB}, flush=True)
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(1 * GB))
    alerts = watch_once(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), disk=CFG, now=now)
    assert [a.check for a in alerts] == ["disk_critical"], alerts
    assert "full in" in alerts[0].message
    events = [e for e in RunReader(run.dir).events() if e["event"] == "alert"]
    assert events and events[-1]["check"] == "disk_critical"
    # not repeated within repeat_min
    assert watch_once(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), disk=CFG, now=now + 1) == []
    run.close("completed")


def test_watch_is_quiet_on_a_healthy_disk(artifacts, monkeypatch):
    run = RunWriter.create("train", {})
    run.set_status("running", step=1, total_steps=100)
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(50 * GB))
    assert watch_once(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), disk=CFG) == []
    run.close("completed")


def test_run_disk_health_reads_the_run_history_and_config(artifacts, monkeypatch):
    run = RunWriter.create("train", {})
    for t, free in ((1_000_000.0, 60 * GB), (1_000_300.0, 55 * GB)):
        run.metric(1, "sys", {"time": t, "disk_free_bytes": free, "disk_total_bytes": 100 * GB}, flush=True)
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(50 * GB))
    h = run_disk_health(run.dir, now=1_000_600.0)  # 10 GiB in 600 s
    assert h.growth_bytes_per_s > 0 and h.seconds_to_full is not None and h.free_bytes == 50 * GB
    run.close("completed")


def checkpoint_bursts(free0: int, start: float, minutes: float = 30.0, every_s: float = 5.0) -> list[tuple[float, int]]:
    """Free space as the telemetry thread records it every `every_s` (configs/train.yaml's 5 s) from
    a run's start: a 200 MiB checkpoint 40 s in and every five minutes after, logs in between
    (about 0.7 MiB/s on average: 75 GiB last about 30 h)."""
    out, free = [], free0
    for i in range(int(minutes * 60 / every_s) + 1):
        t = i * every_s
        if t >= 40 and (t - 40) % 300 < every_s:
            free -= 200 * MB
        free -= int(2_000 * every_s)
        out.append((start + t, free))
    return out


def test_watch_forecasts_from_the_fitted_rate_not_two_readings(artifacts, monkeypatch):
    """75 GiB free, a checkpoint burst every five minutes: `ztb watch` once divided the fall since the
    oldest reading of the window by the time since, so the first burst, 40 s into a run, forecast
    "full in" about 4 h (a warning) and the forecast swung tenfold between checks. The fitted rate
    (runtime.estimates) raises no alert and, once it has ten minutes of readings, its forecast holds
    within a factor of 3."""
    run = RunWriter.create("train", {})
    run.set_status("running", step=10, total_steps=100)
    start = time.time() - 1800
    series = checkpoint_bursts(75 * GB, start)
    for t, free in series:
        run.metric(10, "sys", {"time": t, "disk_free_bytes": free, "disk_total_bytes": 100 * GB})
    run.metrics.flush()
    cfg = DiskConfig()  # configs/ops.yaml's defaults: warn when full within 24 h
    th = Thresholds(stall_min=0, mem_pct=0, rss_mb=0)
    forecasts = []
    for t, free in series[1::6]:  # a watcher checking every 30 s from the run's start
        monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(free))
        alerts = check_run(run.dir, th, now=t, disk=cfg)
        assert not [a for a in alerts if a.check.startswith("disk")], (round(t - start), alerts)
        health = disk_health(run.dir, disk_history(run.dir), cfg, now=t, usage=fixed(free))
        if health.seconds_to_full is not None:
            forecasts.append(health.seconds_to_full)
    assert len(forecasts) > 30 and max(forecasts) / min(forecasts) < 3, [round(f / 3600) for f in forecasts]
    run.close("completed")


def test_watch_still_alerts_on_a_noisy_disk_that_fills_within_hours(artifacts, monkeypatch):
    """The other side: 20 GiB free falling 1 MiB/s with +-50 MiB of noise per reading fills in
    about 5.7 h, and `ztb watch` warns (configs/ops.yaml: within 24 h)."""
    run = RunWriter.create("train", {})
    run.set_status("running", step=10, total_steps=100)
    now = time.time()
    rng = random.Random(1)
    for i in range(60):
        t = now - 1800 + 30 * i
        free = int(20 * GB - MB * (t - now + 1800) + rng.uniform(-50, 50) * MB)
        run.metric(10, "sys", {"time": t, "disk_free_bytes": free, "disk_total_bytes": 100 * GB})
    run.metrics.flush()
    monkeypatch.setattr("ztb_core.runtime.disk.read_usage", fixed(int(20 * GB - 1800 * MB)))
    alerts = check_run(run.dir, Thresholds(stall_min=0, mem_pct=0, rss_mb=0), now=now, disk=DiskConfig())
    assert [a.check for a in alerts] == ["disk_warn"], alerts
    assert "full within 24 h" in alerts[0].message
    run.close("completed")
