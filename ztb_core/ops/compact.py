"""`ztb runs compact`: move a finished run's metrics and events history into zstd segments
(ztb_core.segments) that `JsonlTail`, and so the console, rollup and watcher, still read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import RunError
from ..runs import ACTIVE_STATES, RunReader, pid_alive
from ..segments import CompactResult, compact_jsonl

COMPACTED_FILES = ("metrics.jsonl", "events.jsonl")


@dataclass
class RunCompaction:
    run_id: str
    files: list[CompactResult]

    @property
    def raw_bytes(self) -> int:
        return sum(f.raw_bytes for f in self.files)

    @property
    def compressed_bytes(self) -> int:
        return sum(f.compressed_bytes for f in self.files)


def compact_run(run_dir: Path) -> RunCompaction:
    """Compact a run that no process is writing. A run whose status is active and whose process
    lives is refused: its appenders hold the files open and would write past the move."""
    reader = RunReader(run_dir)
    status = reader.status()
    if status.get("state") in ACTIVE_STATES and pid_alive(
        status.get("pid"), status.get("pid_create_time"), status.get("host")
    ):
        raise RunError(f"run {reader.run_id} is {status['state']} (pid {status.get('pid')}): stop it before compacting")
    return RunCompaction(reader.run_id, [compact_jsonl(Path(run_dir) / name) for name in COMPACTED_FILES])
