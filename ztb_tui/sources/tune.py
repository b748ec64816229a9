"""A tuning study's trials: the study's trials.json, plus the trials still running read from their runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from ztb_core.atomic import read_json
from ztb_core.runs import JsonlTail

from .metrics import METRICS_TAIL_BYTES


@dataclass(frozen=True)
class TrialsReport:
    study: str
    direction: str
    trials: tuple[dict, ...] = field(compare=False)
    mtime_ns: int = 0
    version: int = 0  # changes whenever a running trial's score or the started trials change

    def best(self) -> dict | None:
        """The best finished trial so far (a running trial's interim score is not a result)."""
        done = [t for t in self.trials if t.get("state") == "complete" and isinstance(t.get("value"), (int, float))]
        if not done:
            return None
        pick = min if str(self.direction).lower().startswith("min") else max
        return pick(done, key=lambda t: t["value"])

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.get("state") == state)


TRIALS_REPORT = Path("reports") / "trials.json"


def _trial_row(t: dict) -> dict:
    # Optuna's state names, lower case as `ztb tune` writes them ("COMPLETE" from older files too)
    return {**t, "state": str(t.get("state", "?")).lower()}


def trials_report(run_dir: Path) -> TrialsReport | None:
    """`reports/trials.json` of a tuning study: {"study", "storage", "direction", "trials": [...]}
    (written after each finished trial; `TrialsSource` adds the trial still running)."""
    path = Path(run_dir) / TRIALS_REPORT
    try:
        mtime = path.stat().st_mtime_ns
        data = read_json(path)
    except (FileNotFoundError, ValueError, OSError):
        return None
    if not isinstance(data, dict):
        return None
    trials = tuple(_trial_row(t) for t in data.get("trials") or () if isinstance(t, dict))
    return TrialsReport(str(data.get("study", "?")), str(data.get("direction", "maximize")), trials, mtime)


def best_eval_score(run_dir: Path) -> float | None:
    """A running trial's score so far: the best periodic-evaluation Sharpe in its metrics (what
    `ztb tune` reports to the study with objective: best)."""
    best: float | None = None
    for rec in JsonlTail(Path(run_dir) / "metrics.jsonl", from_end_bytes=METRICS_TAIL_BYTES).poll().records:
        v = rec.get("sharpe")
        if rec.get("split") in ("val", "test") and isinstance(v, (int, float)) and math.isfinite(v):
            best = v if best is None else max(best, v)
    return best


class TrialsSource:
    """The study as it stands: `reports/trials.json` plus the trials this worker started that the
    file does not hold yet (its `trial_started` events), each with its run's score so far."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.events = JsonlTail(self.run_dir / "events.jsonl")
        self.started: dict[int, dict] = {}
        self.finished: set[int] = set()
        self.study = self.run_dir.name

    def poll(self) -> TrialsReport | None:
        got = self.events.poll()
        if got.reset:
            self.started.clear()
            self.finished.clear()
        for ev in got.records:
            if ev.get("event") == "trial_started" and isinstance(ev.get("trial"), int):
                self.started[ev["trial"]] = ev
            elif ev.get("event") == "trial_finished" and isinstance(ev.get("trial"), int):
                self.finished.add(ev["trial"])
            elif ev.get("event") == "study_opened" and ev.get("study"):
                self.study = str(ev["study"])
        report = trials_report(self.run_dir)
        known = {t.get("number") for t in report.trials} if report else set()
        extra = []
        for number, ev in sorted(self.started.items()):
            if number in known or number in self.finished:
                continue
            run_id = ev.get("run_id")
            extra.append(
                {
                    "number": number,
                    "state": "running",
                    "value": best_eval_score(self.run_dir.parent / str(run_id)) if run_id else None,
                    "params": ev.get("params") or {},
                    "run_id": run_id,
                    "started_at": ev.get("time"),
                }
            )
        if report is None and not extra:
            return None
        if report is None:
            report = TrialsReport(self.study, "maximize", ())
        if not extra:
            return report
        rows = tuple(sorted([*report.trials, *extra], key=lambda t: t.get("number", 0)))
        return replace(report, trials=rows, version=hash(tuple((t["number"], t["value"]) for t in extra)))
