"""`ztb watch`: turn a run's heartbeat and telemetry into `alert` events.

Checks (thresholds: built-in defaults, then the run config's `watch:` section, then the
environment variables ZTB_WATCH_STALL_MIN, ZTB_WATCH_RSS_MB, ZTB_WATCH_VRAM_MB,
ZTB_WATCH_CPU_PCT, ZTB_WATCH_MEM_PCT; 0 switches a resource check off):

* stall: an active run whose step has not moved for `stall_min` minutes;
* dead: an active run whose process is gone without writing a final state;
* rss / vram / cpu / mem: the newest `sys` telemetry row above its threshold;
* disk_warn / disk_critical: the run's filesystem is nearly full or fills soon at its growth rate
  (`runtime.disk.disk_health`, thresholds in configs/ops.yaml `disk:`), before a checkpoint fails.

The same alert is not repeated within `repeat_min` minutes, so a watcher run from cron (`--once`)
and a long-running one behave alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..runs import ACTIVE_STATES, JsonlTail, RunReader, liveness
from ..runtime.config import DiskConfig, load_ops_config
from ..runtime.disk import DiskHealth, DiskSampler, disk_health, disk_history
from ..runtime.stopper import record_event

ENV_VARS = {
    "stall_min": "ZTB_WATCH_STALL_MIN",
    "rss_mb": "ZTB_WATCH_RSS_MB",
    "vram_mb": "ZTB_WATCH_VRAM_MB",
    "cpu_pct": "ZTB_WATCH_CPU_PCT",
    "mem_pct": "ZTB_WATCH_MEM_PCT",
}


@dataclass
class Thresholds:
    stall_min: float = 10.0
    rss_mb: float = 16_384.0
    vram_mb: float = 0.0
    cpu_pct: float = 0.0
    mem_pct: float = 92.0

    @classmethod
    def resolve(cls, run_dir: Path | None = None, env: dict[str, str] | None = None) -> Thresholds:
        th = cls()
        if run_dir is not None:
            cfg = _run_watch_section(Path(run_dir))
            for f in fields(cls):
                if isinstance(cfg.get(f.name), (int, float)):
                    setattr(th, f.name, float(cfg[f.name]))
        source: Mapping[str, str] = os.environ if env is None else env
        for name, var in ENV_VARS.items():
            raw = source.get(var)
            if raw not in (None, ""):
                try:
                    value = float(raw)
                except ValueError:
                    raise ConfigError(f"environment variable {var}={raw!r}: expected a number") from None
                if value < 0:
                    raise ConfigError(f"environment variable {var}={raw!r}: must be >= 0")
                setattr(th, name, value)
        return th


def _run_watch_section(run_dir: Path) -> dict:
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    section = data.get("watch") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


@dataclass
class Alert:
    check: str
    message: str
    value: float | None = None
    threshold: float | None = None


def last_sys_row(run_dir: Path, from_end_bytes: int = 256 << 10) -> dict | None:
    records = JsonlTail(Path(run_dir) / "metrics.jsonl", from_end_bytes=from_end_bytes).poll().records
    for rec in reversed(records):
        if rec.get("split") == "sys":
            return rec
    return None


def disk_alert(health: DiskHealth) -> Alert | None:
    if health.level == "ok":
        return None
    return Alert(f"disk_{health.level}", f"disk {health.level}: {health.path}: {health.message()}", health.free_bytes)


def check_run(
    run_dir: Path,
    th: Thresholds,
    now: float | None = None,
    disk: DiskConfig | None = None,
    disk_sampler: DiskSampler | None = None,
) -> list[Alert]:
    """Alerts that hold right now (pure reading; writes nothing). Disk health uses the run's own
    telemetry history plus `disk_sampler`'s samples when a long-running watcher keeps one."""
    now = time.time() if now is None else now
    reader = RunReader(run_dir)
    status = reader.status()
    state = status.get("state")
    alerts: list[Alert] = []
    if state in ACTIVE_STATES:
        label, alive = liveness(status, now=now)
        if alive is False:
            alerts.append(Alert("dead", f"run is '{state}' but its process {status.get('pid')} is gone"))
        moved = float(status.get("step_updated_at") or status.get("updated_at") or now)
        stalled_min = (now - moved) / 60.0
        if th.stall_min and stalled_min > th.stall_min and alive is not False:
            alerts.append(
                Alert(
                    "stall",
                    f"step {status.get('step')} has not moved for {stalled_min:.1f} min",
                    round(stalled_min, 2),
                    th.stall_min,
                )
            )
    sys_row = last_sys_row(run_dir) if state in ACTIVE_STATES else None
    if sys_row:
        for check, key, limit, unit in (
            ("rss", "rss_mb", th.rss_mb, "MiB RSS"),
            ("vram", "proc_vram_mb", th.vram_mb, "MiB VRAM"),
            ("cpu", "cpu_pct", th.cpu_pct, "% CPU"),
            ("mem", "sys_mem_pct", th.mem_pct, "% system memory"),
        ):
            value = sys_row.get(key)
            if limit and isinstance(value, (int, float)) and value > limit:
                alerts.append(Alert(check, f"{value:.0f} {unit} > {limit:.0f}", float(value), limit))
    if state in ACTIVE_STATES:
        disk = disk if disk is not None else load_ops_config().disk
        history = disk_history(run_dir)
        if disk_sampler is not None:
            health = disk_sampler.reading(disk, extra=history)
        else:
            health = disk_health(run_dir, history, disk, now)
        found = disk_alert(health)
        if found is not None:
            alerts.append(found)
    return alerts


def _recent_alerts(run_dir: Path, within_s: float, now: float) -> set[str]:
    out: set[str] = set()
    for e in RunReader(run_dir).events():
        if e.get("event") == "alert" and now - float(e.get("time", 0)) < within_s:
            out.add(str(e.get("check")))
    return out


def watch_once(
    run_dir: Path,
    th: Thresholds,
    repeat_min: float = 30.0,
    now: float | None = None,
    disk: DiskConfig | None = None,
    disk_sampler: DiskSampler | None = None,
) -> list[Alert]:
    """Check once and write an `alert` event for each new alert; returns the alerts written."""
    now = time.time() if now is None else now
    found = check_run(run_dir, th, now, disk, disk_sampler)
    recent = _recent_alerts(run_dir, repeat_min * 60.0, now) if found else set()
    written = []
    for a in found:
        if a.check in recent:
            continue
        record_event(run_dir, "alert", **{k: v for k, v in asdict(a).items() if v is not None})
        written.append(a)
    return written


def watch(
    run_dir: Path,
    th: Thresholds,
    interval_s: float = 30.0,
    repeat_min: float = 30.0,
    on_alert: Callable[[Alert], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    disk: DiskConfig | None = None,
) -> None:
    """Check every `interval_s` until the run reaches a final state (or `should_stop()`)."""
    sampler = DiskSampler(run_dir)
    while True:
        for a in watch_once(run_dir, th, repeat_min, disk=disk, disk_sampler=sampler):
            if on_alert is not None:
                on_alert(a)
        state = RunReader(run_dir).status().get("state")
        if state not in ACTIVE_STATES or (should_stop is not None and should_stop()):
            return
        time.sleep(interval_s)


def thresholds_dict(th: Thresholds) -> dict[str, Any]:
    return asdict(th)
