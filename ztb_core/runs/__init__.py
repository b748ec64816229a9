"""The run-directory protocol: the one contract between the core and the console.

A run is a folder `artifacts/runs/<run_id>/`:

    run.json        kind, run_id, argv, config hash, git SHA, host facts, package versions, seeds
    config.yaml     the resolved config actually used
    status.json     heartbeat, replaced atomically: pid, pgid, host, state, step, total_steps, ...
    metrics.jsonl   append-only: {"time", "step", "split", name: value, ...}
    events.jsonl    append-only lifecycle: started, checkpoint_saved, resumed, stop_requested, ...
    logs/ checkpoints/ reports/
    ztb.stop        kill-file

The core writes (`RunWriter`); the console and CLI only read (`RunReader`, `JsonlTail`,
`list_runs`) and drop kill-files. JSONL appenders only ever write whole lines, so a reader
never sees a torn record except, at worst, an unterminated last line, which it leaves for the
next poll.
"""

from .appender import JsonlAppender
from .protocol import (
    ACTIVE_STATES,
    DEFAULT_STALE_AFTER_S,
    FINAL_STATES,
    RESERVE_BYTES,
    RESERVE_FILE,
    STATES,
    STOP_FILE,
    host_facts,
    new_run_id,
    package_versions,
    read_run_info,
    utc_now_iso,
)
from .reader import (
    JsonlTail,
    LineTail,
    RunReader,
    RunSummary,
    TailResult,
    find_run,
    global_stop_requested,
    list_runs,
    liveness,
    pid_alive,
    resolve_resume,
    summarize,
)
from .writer import EventHook, RunWriter

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_STALE_AFTER_S",
    "EventHook",
    "FINAL_STATES",
    "JsonlAppender",
    "JsonlTail",
    "LineTail",
    "RESERVE_BYTES",
    "RESERVE_FILE",
    "RunReader",
    "RunSummary",
    "RunWriter",
    "STATES",
    "STOP_FILE",
    "TailResult",
    "find_run",
    "global_stop_requested",
    "host_facts",
    "list_runs",
    "liveness",
    "new_run_id",
    "package_versions",
    "pid_alive",
    "read_run_info",
    "resolve_resume",
    "summarize",
    "utc_now_iso",
]
