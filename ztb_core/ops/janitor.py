"""`ztb janitor`: retention for runs, checkpoints, console launch logs and run logs.

`plan()` only reads: it lists what the rules in configs/ops.yaml `janitor:` would remove and what
it keeps on purpose (and why); `apply()` removes exactly a plan's items. Rules per category: older
than `max_age_days`, beyond the newest `keep_last`, or (oldest first) beyond `max_total_mb`.

Never touched: a run that is active (starting/running/stopping, or its process alive) — not its
folder, checkpoints, logs or launch logs; a run that an active run's config refers to (an encoder
or a checkpoint it started from); the best checkpoint of a run (manifest `best`); the newest valid
checkpoint (the one a resume would start from); the checkpoint named by a run's latest `resumed`
event. Whole runs are removed only in the final states of `janitor.states`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..manifest import Manifest
from ..runs import ACTIVE_STATES, FINAL_STATES, RunReader, RunSummary, list_runs
from ..runtime.config import JanitorConfig, RetentionRule
from ..runtime.stopper import record_event

DAY = 86400.0
MB = 2**20


@dataclass(frozen=True)
class Item:
    category: str  # runs | checkpoints | launches | logs
    path: Path
    size: int
    mtime: float
    reason: str
    run_dir: Path | None = None


@dataclass
class Plan:
    remove: list[Item] = field(default_factory=list)
    protected: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(i.size for i in self.remove)

    def by_category(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for i in self.remove:
            n, b = out.get(i.category, (0, 0))
            out[i.category] = (n + 1, b + i.size)
        return out


def path_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def select(items: list[tuple[Path, int, float]], rule: RetentionRule, now: float) -> dict[Path, str]:
    """Which of (path, size, mtime) a rule removes, with the reason; newest items are kept first."""
    ordered = sorted(items, key=lambda t: t[2], reverse=True)
    out: dict[Path, str] = {}
    kept_bytes = 0
    for index, (path, size, mtime) in enumerate(ordered):
        if rule.keep_last is not None and index >= rule.keep_last:
            out[path] = f"beyond the newest {rule.keep_last}"
        elif rule.max_age_days is not None and now - mtime > rule.max_age_days * DAY:
            out[path] = f"older than {rule.max_age_days:g} days"
        elif rule.max_total_mb is not None and kept_bytes + size > rule.max_total_mb * MB:
            out[path] = f"over the {rule.max_total_mb:g} MiB budget"
        else:
            kept_bytes += size
    return out


def is_active(summary: RunSummary) -> bool:
    """Active, or in no final state with its process alive (a run folder still being written)."""
    return summary.state in ACTIVE_STATES or (summary.state not in FINAL_STATES and summary.pid_alive is True)


def referenced_by(active: Iterable[RunSummary], runs: Iterable[RunSummary]) -> dict[Path, str]:
    """Runs whose id or folder appears in an active run's config (an encoder, a start checkpoint)."""
    configs = {a.run_id: RunReader(a.dir).config_text() for a in active}
    out: dict[Path, str] = {}
    for r in runs:
        for active_id, text in configs.items():
            if active_id != r.run_id and (r.run_id in text or str(r.dir) in text):
                out[r.dir] = f"used by active run {active_id}"
    return out


def _resumed_from(run_dir: Path) -> str | None:
    for e in reversed(RunReader(run_dir).events()):
        if e.get("event") == "resumed" and e.get("checkpoint"):
            return str(e["checkpoint"])
    return None


def plan(artifacts: Path, cfg: JanitorConfig, now: float | None = None) -> Plan:
    now = time.time() if now is None else now
    result = Plan()
    runs = list_runs(artifacts)
    active = [r for r in runs if is_active(r)]
    for r in active:
        result.protected.append((r.dir, f"active run ({r.liveness})"))
    refs = referenced_by(active, runs)
    result.protected += [(d, why) for d, why in refs.items()]
    idle = [r for r in runs if not is_active(r)]

    # whole runs
    candidates = [r for r in idle if r.state in cfg.states and r.dir not in refs]
    sized = {r.dir: path_size(r.dir) for r in candidates}
    mtimes = {r.dir: r.dir.stat().st_mtime for r in candidates}
    gone_runs = select([(d, sized[d], mtimes[d]) for d in sized], cfg.runs, now)
    for d, why in gone_runs.items():
        result.remove.append(Item("runs", d, sized[d], mtimes[d], why, d))

    # inside the runs that stay
    for r in idle:
        if r.dir in gone_runs:
            continue
        _plan_checkpoints(r.dir, cfg.checkpoints, now, result)
        logs = [(p, p.stat().st_size, p.stat().st_mtime) for p in (r.dir / "logs").rglob("*") if p.is_file()]
        for p, why in select(
            logs, RetentionRule(max_age_days=cfg.logs.max_age_days, keep_last=cfg.logs.keep_last), now
        ).items():
            result.remove.append(Item("logs", p, p.stat().st_size, p.stat().st_mtime, why, r.dir))
    _plan_log_budget(idle, gone_runs, cfg.logs, now, result)
    _plan_launches(artifacts, active, cfg.launches, now, result)
    return result


def _plan_checkpoints(run_dir: Path, rule: RetentionRule, now: float, result: Plan) -> None:
    ckpt_dir = run_dir / "checkpoints"
    if not (ckpt_dir / "manifest.json").exists():
        return
    entries = [e for e in Manifest(ckpt_dir).entries() if (ckpt_dir / e["file"]).exists()]
    valid = [e for e in entries if not e.get("invalid")]
    keep: dict[str, str] = {}
    if valid:
        keep[valid[-1]["file"]] = "newest valid checkpoint (a resume starts here)"
    for e in valid:
        if e.get("best"):
            keep[e["file"]] = "best checkpoint"
    resumed = _resumed_from(run_dir)
    if resumed:
        keep[resumed] = "the checkpoint the run resumed from"
    # Lightning's own files (last.ckpt, best-*) follow its save_top_k; only step files are ours
    ours = [e for e in entries if e["file"].startswith("step-") and e["file"] not in keep]
    items = [
        (ckpt_dir / e["file"], (ckpt_dir / e["file"]).stat().st_size, (ckpt_dir / e["file"]).stat().st_mtime)
        for e in ours
    ]
    # keep_last counts the protected ones too: they are checkpoints the run keeps
    budget = RetentionRule(
        max_age_days=rule.max_age_days,
        keep_last=None if rule.keep_last is None else max(0, rule.keep_last - len(keep)),
        max_total_mb=rule.max_total_mb,
    )
    for p, why in select(items, budget, now).items():
        result.remove.append(Item("checkpoints", p, p.stat().st_size, p.stat().st_mtime, why, run_dir))
    for name, why in keep.items():
        result.protected.append((ckpt_dir / name, why))


def _plan_log_budget(
    idle: list[RunSummary], gone: dict[Path, str], rule: RetentionRule, now: float, result: Plan
) -> None:
    if rule.max_total_mb is None:
        return
    planned = {i.path for i in result.remove}
    logs = [
        (p, p.stat().st_size, p.stat().st_mtime)
        for r in idle
        if r.dir not in gone
        for p in (r.dir / "logs").rglob("*")
        if p.is_file() and p not in planned
    ]
    for p, why in select(logs, RetentionRule(max_total_mb=rule.max_total_mb), now).items():
        result.remove.append(Item("logs", p, p.stat().st_size, p.stat().st_mtime, why, p.parents[1]))


def _plan_launches(artifacts: Path, active: list[RunSummary], rule: RetentionRule, now: float, result: Plan) -> None:
    folder = Path(artifacts) / "launches"
    if not folder.is_dir():
        return
    active_ids = [a.run_id for a in active]
    files = []
    for p in folder.iterdir():
        if not p.is_file():
            continue
        owner = next((rid for rid in active_ids if p.stem == rid or p.stem.startswith(rid + "-")), None)
        if owner:
            result.protected.append((p, f"launch log of active run {owner}"))
            continue
        files.append((p, p.stat().st_size, p.stat().st_mtime))
    for p, why in select(files, rule, now).items():
        result.remove.append(Item("launches", p, p.stat().st_size, p.stat().st_mtime, why))


def apply(p: Plan, artifacts: Path) -> list[Item]:
    """Remove a plan's items, re-checking right before each run that it has not become active.
    Checkpoints leave their manifest first (never a listed file that is gone), and the run gets a
    `janitor_removed` event."""
    done: list[Item] = []
    states = {r.dir: r for r in list_runs(artifacts)}
    removed_ckpts: dict[Path, list[str]] = {}
    for item in p.remove:
        run = states.get(item.run_dir) if item.run_dir is not None else None
        if run is not None and is_active(RunReader(run.dir).summary()):
            continue  # started again since the plan was made
        if item.category == "runs":
            shutil.rmtree(item.path, ignore_errors=True)
        elif item.category == "checkpoints":
            Manifest(item.path.parent).remove(item.path.name)
            removed_ckpts.setdefault(item.path.parents[1], []).append(item.path.name)
        else:
            item.path.unlink(missing_ok=True)
        done.append(item)
    for run_dir, files in removed_ckpts.items():
        record_event(run_dir, "janitor_removed", files=files)
    return done
