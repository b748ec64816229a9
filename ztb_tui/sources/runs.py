"""The runs list: every run folder under the artifacts folder, one status read per poll, with
its averaged step rate (and so its ETA) and its warnings."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ztb_core.paths import global_kill_file, runs_dir
from ztb_core.runs import DEFAULT_STALE_AFTER_S, FINAL_STATES, RunReader, RunSummary, summarize
from ztb_core.runtime.estimates import EwmaRate

from ..health import Flag, HealthSource

Clock = Callable[[], float]


class RunsSource:
    """Scans `<artifacts>/runs` for run folders. run.json is immutable, so it is read once per
    run; each poll reads only the small status.json files. Step rate (fps) comes from the
    status when the run reports it, else from the step changes between polls, averaged over
    about a minute (`ztb_core.runtime.estimates.EwmaRate`): the step moves in bursts, and a two-poll rate made
    the ETA jump at every poll."""

    def __init__(self, artifacts: Path, now: Clock = time.time, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.artifacts = Path(artifacts)
        self.now = now
        self.stale_after_s = stale_after_s
        self._info: dict[str, dict] = {}
        self._rates: dict[str, EwmaRate] = {}  # run_id -> its averaged step rate
        self._health: dict[str, HealthSource] = {}

    @property
    def root(self) -> Path:
        return runs_dir(self.artifacts)

    def poll(self) -> list[RunSummary]:
        root = self.root
        if not root.is_dir():
            return []
        rows: list[RunSummary] = []
        now = self.now()
        for child in root.iterdir():
            if not child.is_dir():
                continue
            info = self._info.get(child.name)
            if info is None:
                if not (child / "run.json").exists():
                    continue
                info = RunReader(child).info()
                self._info[child.name] = info
            rows.append(self._row(child, info, RunReader(child).status(), now))
        rows.sort(key=lambda r: (r.created_at or "", r.run_id), reverse=True)  # newest first
        return rows

    def one(self, run_dir: Path) -> RunSummary:
        """The row of a single run (the run view polls just its own run)."""
        run_dir = Path(run_dir)
        info = self._info.get(run_dir.name)
        if info is None:
            info = self._info[run_dir.name] = RunReader(run_dir).info()
        return self._row(run_dir, info, RunReader(run_dir).status(), self.now())

    def _row(self, run_dir: Path, info: dict, status: dict, now: float) -> RunSummary:
        row = summarize(run_dir, info, status, now=now, stale_after_s=self.stale_after_s)
        row.fps = self._shown_rate(row.liveness, self._rate(run_dir.name, status, row.step), status, now)
        return row

    def _rate(self, run_id: str, status: dict, step: int) -> float | None:
        reported = status.get("fps")
        if status.get("state") in FINAL_STATES:
            return None
        if isinstance(reported, (int, float)) and math.isfinite(reported):
            return float(reported)
        at = float(status.get("step_updated_at") or 0.0)
        rate = self._rates.get(run_id)
        if rate is None:
            rate = self._rates[run_id] = EwmaRate()
        return rate.update(at, step)

    def _shown_rate(self, label: str, fps: float | None, status: dict, now: float) -> float | None:
        """A rate (and so an ETA) only while the run visibly makes progress: a stale or dead run,
        or one whose step has not moved for `stale_after_s`, shows none rather than an old one."""
        if label in ("dead", "stale"):
            return None
        moved = status.get("step_updated_at")
        if isinstance(moved, (int, float)) and now - float(moved) > self.stale_after_s:
            return None
        return fps

    def health(self, rows: Iterable[RunSummary]) -> dict[str, tuple[Flag, ...]]:
        """The warnings of each run (`health.HealthSource`), read incrementally: a finished run's
        files cost one stat each per poll."""
        out: dict[str, tuple[Flag, ...]] = {}
        for row in rows:
            src = self._health.get(row.run_id)
            if src is None or src.run_dir != row.dir:
                src = self._health[row.run_id] = HealthSource(row.dir, row.kind, now=self.now)
            flags = src.poll(row)
            if flags:
                out[row.run_id] = flags
        return out

    def global_stop(self) -> Path | None:
        """The global kill-file when it exists: every run stops, and so does any new one."""
        path = global_kill_file(self.artifacts)
        return path if path.exists() else None
