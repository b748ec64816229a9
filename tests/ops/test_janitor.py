"""`ztb janitor`: dry run by default; retention by age, count and size; never an active run, the
best checkpoint, the newest one, the one a run resumed from, or a run an active run uses."""

from __future__ import annotations

import json
import os
import time

from ztb_core.cli import main
from ztb_core.manifest import Manifest
from ztb_core.ops import janitor
from ztb_core.runs import RunReader, RunWriter
from ztb_core.runtime.config import JanitorConfig, RetentionRule

DAY = 86400


def add_checkpoints(run_dir, steps, best=None, size=1000):
    m = Manifest(run_dir / "checkpoints")
    for i, step in enumerate(steps):
        name = f"step-{step:010d}.ckpt.zst"
        (run_dir / "checkpoints" / name).write_bytes(b"x" * size)
        os.utime(run_dir / "checkpoints" / name, (time.time() - 100 + i, time.time() - 100 + i))
        m.add({"file": name, "step": step, "sha256": "0", "size": size, "best": step == best})
    return m


def age(path, days):
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def world(artifacts):
    old = RunWriter.create("train", {}, run_id="train-old")
    old.close("completed")
    age(old.dir, 200)
    used = RunWriter.create("pretrain", {}, run_id="pretrain-used")
    used.close("completed")
    age(used.dir, 200)
    live = RunWriter.create(
        "train", {"encoder": {"path": str(used.dir / "encoder" / "encoder.pt")}}, run_id="train-live"
    )
    live.set_status("running", step=5, total_steps=100)
    add_checkpoints(live.dir, [1, 2, 3, 4, 5, 6])
    kept = RunWriter.create("train", {}, run_id="train-kept")
    add_checkpoints(kept.dir, [10, 20, 30, 40, 50, 60], best=20)
    kept.event("resumed", step=30, checkpoint="step-0000000030.ckpt.zst")
    kept.close("stopped")
    launches = artifacts / "launches"
    launches.mkdir()
    (launches / "train-live.out").write_text("running")
    (launches / "train-gone.out").write_text("old")
    age(launches / "train-live.out", 100)
    age(launches / "train-gone.out", 100)
    return old, used, live, kept


def test_plan_follows_the_rules_and_protects_what_it_must(artifacts):
    old, used, live, kept = world(artifacts)
    cfg = JanitorConfig(checkpoints=RetentionRule(keep_last=4))
    plan = janitor.plan(artifacts, cfg)
    removed = {(i.category, i.path.name) for i in plan.remove}
    # the old finished run goes; the old run the active run's config uses stays
    assert ("runs", "train-old") in removed and ("runs", "pretrain-used") not in removed
    # keep_last=4 counts newest (60), best (20) and resumed-from (30): one more (50) stays
    assert {n for c, n in removed if c == "checkpoints"} == {"step-0000000010.ckpt.zst", "step-0000000040.ckpt.zst"}
    assert not any(i.run_dir == live.dir or "train-live" in str(i.path) for i in plan.remove)
    assert ("launches", "train-gone.out") in removed and ("launches", "train-live.out") not in removed
    why = {p.name: w for p, w in plan.protected}
    assert why["train-live"].startswith("active run") and why["pretrain-used"] == "used by active run train-live"
    assert why["step-0000000020.ckpt.zst"] == "best checkpoint"
    assert why["step-0000000030.ckpt.zst"] == "the checkpoint the run resumed from"
    assert why["step-0000000060.ckpt.zst"].startswith("newest valid")
    assert plan.total_bytes >= 2000


def test_dry_run_by_default_then_apply(artifacts, capsys):
    old, used, live, kept = world(artifacts)
    assert main(["janitor", "--set", "janitor.checkpoints.keep_last=4"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "train-old" in out and "would free" in out
    assert old.dir.exists() and (kept.dir / "checkpoints" / "step-0000000010.ckpt.zst").exists()  # nothing gone
    assert main(["janitor", "--apply", "--json", "--set", "janitor.checkpoints.keep_last=4"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["applied"] and payload["bytes"] > 0
    assert not old.dir.exists() and used.dir.exists() and live.dir.exists()
    left = [e["file"] for e in Manifest(kept.dir / "checkpoints").entries()]
    assert left == [
        "step-0000000020.ckpt.zst",
        "step-0000000030.ckpt.zst",
        "step-0000000050.ckpt.zst",
        "step-0000000060.ckpt.zst",
    ]
    assert sorted(p.name for p in (kept.dir / "checkpoints").glob("step-*")) == left  # files follow the manifest
    assert len(list((live.dir / "checkpoints").glob("step-*"))) == 6
    ev = [e for e in RunReader(kept.dir).events() if e["event"] == "janitor_removed"]
    assert sorted(ev[0]["files"]) == ["step-0000000010.ckpt.zst", "step-0000000040.ckpt.zst"]
    live.close("completed")


def test_size_budget_and_count_rules():
    now = 1_000_000.0
    items = [(f"f{i}", 100, now - i) for i in range(5)]  # f0 newest
    assert janitor.select(items, RetentionRule(max_total_mb=250 / 2**20), now) == {
        "f2": "over the 0.000238419 MiB budget",
        "f3": "over the 0.000238419 MiB budget",
        "f4": "over the 0.000238419 MiB budget",
    }
    assert set(janitor.select(items, RetentionRule(keep_last=2), now)) == {"f2", "f3", "f4"}
    assert janitor.select(items, RetentionRule(max_age_days=1), now) == {}
    assert set(janitor.select(items, RetentionRule(max_age_days=2.5 / DAY), now)) == {"f3", "f4"}


def test_a_run_that_became_active_after_planning_is_left_alone(artifacts):
    old = RunWriter.create("train", {}, run_id="train-back")
    old.close("completed")
    age(old.dir, 200)
    plan = janitor.plan(artifacts, JanitorConfig())
    assert [i.path.name for i in plan.remove] == ["train-back"]
    again = RunWriter.open(old.dir)
    again.set_status("running", step=1)
    assert janitor.apply(plan, artifacts) == [] and old.dir.exists()
    again.close("completed")
