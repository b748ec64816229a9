"""The trial registry: every evaluation the system performs on a split is a trial.

A Sharpe ratio picked as the best of N evaluations is inflated by the picking; the Deflated
Sharpe Ratio (`sharpe_stats`) corrects for it, given N and the variance of the trials' Sharpes.
Those two numbers must come from what was actually done, not from a guess typed into a config,
so each run keeps `trials.jsonl` (append-only, one JSON object a line):

    {"time", "run_id", "split", "step", "sharpe", "sharpe_per_period", "n_obs", "source", ...}

* training appends one per periodic evaluation (`source: "periodic_eval"`);
* `ztb eval` appends one to the evaluated model's run (`source: "eval"`), so peeking at the test
  split again and again is counted;
* a study (`ztb tune`) copies its trial runs' records into its own registry when each finishes,
  so a run that belongs to a study is deflated for every configuration the study tried.

A trial is one (run, split, checkpoint step): evaluating the same checkpoint on the same data
twice is one strategy, not two. `split` is a key for the data: `val`, `test`, `all`, or a
holdout such as `all@USDJPY[2016-09-01,2016-10-01)`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runs import utc_now_iso

TRIALS_FILE = "trials.jsonl"


class TrialRegistry:
    """Append-only registry of one run (`<run dir>/trials.jsonl`)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / TRIALS_FILE

    def record(
        self,
        *,
        run_id: str,
        split: str,
        step: int | None,
        sharpe: float | None,
        sharpe_per_period: float | None,
        n_obs: int,
        source: str,
        **extra: Any,
    ) -> dict:
        """Append one trial. One `os.write` of one whole line on an O_APPEND descriptor, so two
        processes recording into one registry (a study's workers) never interleave lines."""
        rec = {
            "time": utc_now_iso(),
            "run_id": run_id,
            "split": split,
            "step": None if step is None else int(step),
            "sharpe": _finite(sharpe),
            "sharpe_per_period": _finite(sharpe_per_period),
            "n_obs": int(n_obs),
            "source": source,
            **extra,
        }
        self.append([rec])
        return rec

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, allow_nan=False, default=str) + "\n" for r in records).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def records(self) -> list[dict]:
        """Every record, oldest first; a torn last line (writer killed mid-write) is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "split" in rec and "run_id" in rec:
                out.append(rec)
        return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def trial_key(rec: dict) -> tuple:
    """What makes two records the same trial: the same checkpoint of the same run on the same data."""
    return (rec.get("run_id"), rec.get("split"), rec.get("step"))


def unique_trials(records: list[dict], split: str) -> list[dict]:
    seen: dict[tuple, dict] = {}
    for rec in records:
        if rec.get("split") == split:
            seen.setdefault(trial_key(rec), rec)
    return list(seen.values())


@dataclass(frozen=True)
class TrialSet:
    """The trials a DSR deflates for: their count, their per-period Sharpes, and where they came from."""

    n_trials: int
    sharpes_per_period: list[float]
    source: str
    records: list[dict]

    @property
    def has_variance(self) -> bool:
        return len(self.sharpes_per_period) >= 2


def _kind(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("kind")
    except (OSError, ValueError):
        return None


def studies_of(run_id: str, runs_root: Path) -> list[Path]:
    """Studies (`tune` runs) whose registry lists `run_id` as one of their trials' runs. A
    walk-forward's folds are not selected among each other, so its registry does not join them."""
    out: list[Path] = []
    if not runs_root.is_dir():
        return out
    for reg in sorted(runs_root.glob(f"*/{TRIALS_FILE}")):
        if reg.parent.name == run_id or _kind(reg.parent) != "tune":
            continue
        if any(r.get("run_id") == run_id for r in TrialRegistry(reg.parent).records()):
            out.append(reg.parent)
    return out


def collect_trials(run_dir: str | Path, split: str, include_studies: bool = True) -> TrialSet:
    """The trials on `split` that selected this run's model: its own registry, plus the registry of
    every study the run belongs to (all sibling configurations count). A flat policy's undefined
    Sharpe counts as 0 (it was tried, and it earned nothing)."""
    run_dir = Path(run_dir)
    records = TrialRegistry(run_dir).records()
    studies = studies_of(run_dir.name, run_dir.parent) if include_studies else []
    members: set[str] = set()
    for study in studies:
        copied = TrialRegistry(study).records()
        records += copied
        members |= {str(r["run_id"]) for r in copied}
    # a member run on this machine is read fresh: its own registry is the source, the study's
    # copy (all there is of runs on other machines) may predate its last evaluations
    for rid in sorted(members - {run_dir.name}):
        if (run_dir.parent / rid).is_dir():
            records += TrialRegistry(run_dir.parent / rid).records()
    trials = unique_trials(records, split)
    sharpes = [float(t["sharpe_per_period"] or 0.0) for t in trials]
    runs = sorted({str(t["run_id"]) for t in trials})
    where = f"run {run_dir.name}"
    if studies:  # the run is a member of a study (or walk-forward): its siblings' evaluations count too
        where += f" and its study {', '.join(s.name for s in studies)} ({len(runs)} run(s) with trials on {split})"
    source = f"registry: {len(trials)} evaluation(s) on {split} in {where}"
    return TrialSet(n_trials=len(trials), sharpes_per_period=sharpes, source=source, records=trials)
