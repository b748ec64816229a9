"""A run's checkpoint manifest and the console's verification of each file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ztb_core.atomic import atomic_write_json, read_json
from ztb_core.manifest import Manifest


@dataclass(frozen=True)
class CheckpointRow:
    file: str
    step: int
    created_at: str
    size: int | None
    ratio: float | None
    save_seconds: float | None
    sha256: str | None
    best: bool
    entry: dict = field(compare=False, default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one checkpoint file against the manifest."""

    file: str
    step: int
    ok: bool
    reason: str
    sha256: str | None = None
    verified_at: float | None = None

    @property
    def pruned(self) -> bool:
        return self.reason == PRUNED


PRUNED = "pruned"
VERIFY_REPORT = Path("reports") / "verify.json"


class CheckpointsSource:
    """The manifest of one run, plus the console's verification verdicts, which are kept in
    `reports/verify.json` so the next console (or another person's) knows what was checked. A
    read-only console (`record=False`) keeps its verdicts in memory and writes nothing."""

    def __init__(self, run_dir: Path, record: bool = True):
        self.run_dir = Path(run_dir)
        self.record = record
        self.manifest = Manifest(self.run_dir / "checkpoints")
        self._mtime: float | None = None
        self._rows: list[CheckpointRow] = []

    def poll(self) -> list[CheckpointRow]:
        """Re-reads the manifest only when it changed (one stat otherwise)."""
        try:
            mtime = self.manifest.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._rows = None, []
            return []
        if mtime != self._mtime:
            self._mtime = mtime
            self._rows = [
                CheckpointRow(
                    file=str(e.get("file")),
                    step=int(e.get("step", 0) or 0),
                    created_at=str(e.get("created_at", "")),
                    size=e.get("size"),
                    ratio=e.get("ratio"),
                    save_seconds=e.get("save_seconds"),
                    sha256=e.get("sha256"),
                    best=bool(e.get("best")),
                    entry=dict(e),
                )
                for e in self.manifest.entries()
            ]
        return list(self._rows)

    def current(self, row: CheckpointRow) -> CheckpointRow | None:
        """The manifest's entry for this checkpoint now (same file, same step), or None when it
        was pruned or replaced since the row was read."""
        for e in self.manifest.entries():
            if e.get("file") == row.file and int(e.get("step", 0) or 0) == row.step:
                return replace(row, sha256=e.get("sha256"), entry=dict(e))
        return None

    def verify(self, row: CheckpointRow) -> Verdict:
        """Verify the checkpoint the person chose, by file and step; a pruned one says so. The
        verdict is recorded in reports/verify.json."""
        now_row = self.current(row)
        if now_row is None:
            return Verdict(row.file, row.step, False, PRUNED)
        ok, reason = self.manifest.verify(now_row.entry)
        if not ok and reason == "missing" and self.current(row) is None:
            return Verdict(row.file, row.step, False, PRUNED)  # pruned while we read it
        verdict = Verdict(row.file, row.step, ok, reason, now_row.sha256, time.time())
        if self.record:
            self._record(verdict)
        return verdict

    def verdicts(self) -> dict[str, Verdict]:
        """Recorded verdicts still valid for the manifest (same file, step and sha256)."""
        try:
            raw = read_json(self.run_dir / VERIFY_REPORT)
        except (FileNotFoundError, ValueError, OSError):
            return {}
        current = {r.file: r for r in self.poll()}
        out: dict[str, Verdict] = {}
        for file, v in (raw.get("checkpoints") or {}).items() if isinstance(raw, dict) else ():
            row = current.get(file)
            if row is None or not isinstance(v, dict):
                continue
            if v.get("step") == row.step and v.get("sha256") == row.sha256:
                out[file] = Verdict(
                    file, row.step, bool(v.get("ok")), str(v.get("reason", "")), row.sha256, v.get("verified_at")
                )
        return out

    def _record(self, verdict: Verdict) -> None:
        path = self.run_dir / VERIFY_REPORT
        try:
            raw = read_json(path)
        except (FileNotFoundError, ValueError, OSError):
            raw = {}
        checkpoints = dict(raw.get("checkpoints") or {}) if isinstance(raw, dict) else {}
        checkpoints[verdict.file] = {
            "step": verdict.step,
            "ok": verdict.ok,
            "reason": verdict.reason,
            "sha256": verdict.sha256,
            "verified_at": verdict.verified_at,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"checkpoints": checkpoints})

    def remove(self, row: CheckpointRow) -> None:
        self.manifest.remove(row.file)
        self._mtime = None
