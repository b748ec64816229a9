"""An evaluation run's report (the newest reports/eval_*.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ztb_core.atomic import read_json


@dataclass(frozen=True)
class EvalReport:
    path: Path
    mtime_ns: int
    data: dict = field(compare=False)


def eval_report(run_dir: Path) -> EvalReport | None:
    """The newest `reports/eval_<id>.json` an evaluation run wrote (evaluation.writer)."""
    reports = Path(run_dir) / "reports"
    found = []
    for p in reports.glob("eval_*.json") if reports.is_dir() else ():
        try:
            found.append((p.stat().st_mtime_ns, p))
        except OSError:
            continue
    if not found:
        return None
    mtime, path = max(found)
    try:
        data = read_json(path)
    except (ValueError, OSError):
        return None
    return EvalReport(path, mtime, data if isinstance(data, dict) else {})
