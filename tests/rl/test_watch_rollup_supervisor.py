"""Watcher alerts, rollup summaries and the supervisor's give-up rule, on fabricated runs."""

from __future__ import annotations

import json
import time

import pytest

from ztb_core.errors import ConfigError
from ztb_core.ops.rollup import build_summary, write_rollup
from ztb_core.ops.watcher import Thresholds, check_run, watch_once
from ztb_core.rl.config import SupervisorConfig
from ztb_core.rl.supervisor import Supervisor
from ztb_core.runs import RunWriter

from .conftest import events


def _run(art, run_id="w", config=None):
    w = RunWriter.create(
        "train", config or {"watch": {"stall_min": 5.0, "rss_mb": 100.0}}, run_id=run_id, total_steps=1000
    )
    w.set_status("running", step=250, total_steps=1000)
    return w


def test_thresholds_come_from_config_then_environment(art):
    w = _run(art)
    th = Thresholds.resolve(w.dir, env={"ZTB_WATCH_RSS_MB": "50", "ZTB_WATCH_CPU_PCT": "90"})
    assert (th.stall_min, th.rss_mb, th.cpu_pct, th.mem_pct) == (5.0, 50.0, 90.0, 92.0)
    with pytest.raises(ConfigError, match="ZTB_WATCH_STALL_MIN"):
        Thresholds.resolve(w.dir, env={"ZTB_WATCH_STALL_MIN": "soon"})
    w.close()


def test_watch_alerts_on_stall_and_resources_once(art):
    w = _run(art)
    w.metric(250, "sys", {"rss_mb": 512.0, "cpu_pct": 20.0, "sys_mem_pct": 40.0}, flush=True)
    th = Thresholds.resolve(w.dir, env={})
    now = time.time() + 6 * 60  # the step has not moved for 6 minutes (> 5) and the heartbeat is fresh-ish
    status = json.loads((w.dir / "status.json").read_text())
    status["updated_at"] = now - 1
    (w.dir / "status.json").write_text(json.dumps(status))
    checks = {a.check for a in check_run(w.dir, th, now=now)}
    assert checks == {"stall", "rss"}
    written = watch_once(w.dir, th, repeat_min=30, now=now)
    assert {a.check for a in written} == {"stall", "rss"}
    assert watch_once(w.dir, th, repeat_min=30, now=now + 1) == []  # not repeated
    alerts = [e for e in events(w.dir) if e["event"] == "alert"]
    assert len(alerts) == 2 and any("512 MiB RSS > 100" in a["message"] for a in alerts)
    w.close()


def test_rollup_writes_progress_eval_checkpoints_alerts(art):
    w = _run(art, "r")
    w.metric(250, "train", {"fps": 100.0, "policy_loss": 0.1}, flush=True)
    w.metric(250, "val", {"sharpe": 1.5, "buy_and_hold_sharpe": 0.2}, flush=True)
    w.event("alert", check="rss", message="too big")
    (w.dir / "checkpoints" / "manifest.json").write_text(
        json.dumps(
            {
                "version": 1,
                "checkpoints": [
                    {
                        "file": "step-0000000250.ckpt.zst",
                        "step": 250,
                        "size": 1000,
                        "ratio": 1.1,
                        "save_seconds": 0.1,
                        "best": True,
                    }
                ],
            }
        )
    )
    s = build_summary(w.dir)
    assert s["progress"] == {"step": 250, "total_steps": 1000, "fraction": 0.25}
    assert s["fps"] == 100.0 and s["eta_seconds"] == pytest.approx(7.5)
    assert s["latest_evaluation"]["sharpe"] == 1.5 and s["checkpoints"]["best"]["step"] == 250
    assert s["alerts"]["count"] == 1
    js, md = write_rollup(w.dir)
    assert json.loads(js.read_text())["run_id"] == "r"
    text = md.read_text()
    assert "250 / 1,000 steps (25.0%)" in text and "buy_and_hold_sharpe" in text and "rss: too big" in text
    w.close()


def test_supervisor_gives_up_after_too_many_crashes(art):
    w = _run(art, "f")
    try:
        raise RuntimeError("boom in step")
    except RuntimeError as exc:
        w.error_event(exc)
    w.close()
    sup = Supervisor("f", [], SupervisorConfig(backoff_s=0.0, max_crashes=2, crash_window_s=60), say=lambda m: None)
    assert sup._crashed(1) is True  # first crash: restart
    assert sup._crashed(-9) is False  # second within the window: give up
    st = json.loads((w.dir / "status.json").read_text())
    assert st["state"] == "fatal" and "gave up after 2 crashes" in st["message"]
    fatal = [e for e in events(w.dir) if e["event"] == "fatal"][-1]
    assert fatal["last_exit"] == "signal SIGKILL" and "boom in step" in fatal["error"] and fatal["traceback_sha1"]
    restarted = [e for e in events(w.dir) if e["event"] == "restarted"]
    assert len(restarted) == 1 and restarted[0]["attempt"] == 1
