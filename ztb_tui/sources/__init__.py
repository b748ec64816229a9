"""Data sources the console polls, one module per kind of source. Plain Python, no Textual: each
`poll()` runs in a worker thread and returns an immutable snapshot the UI thread applies.

Everything reads the run-directory protocol (`ztb_core.runs`) and never writes to a run except
through the ops helpers (kill-file, stop escalation, manifest removal). `now` is injectable so
snapshot tests can freeze time.

runs         the runs list (status of every run, averaged step rate, warnings)
metrics      a run's metric series (tail of metrics.jsonl)
charts       whole-history series, downsampled for the charts
logs         a run's text logs and lifecycle events
checkpoints  a run's checkpoint manifest and its verification
host         the console's machine: CPU, memory, GPUs, the artifacts disk
eval / tune / live   the run kinds with their own view
"""

from __future__ import annotations

from .charts import CHART_BUCKETS, ChartSnapshot, ChartSource, Downsampled
from .checkpoints import PRUNED, VERIFY_REPORT, CheckpointRow, CheckpointsSource, Verdict
from .eval import EvalReport, eval_report
from .host import CpuMeter, HostSample, HostSource
from .live import LiveState, live_journal_path, live_state, read_journal
from .logs import ALERT_EVENTS, NOTICE_EVENTS, EventsSource, LogsSource, TailLines, event_severity, event_text
from .metrics import METRICS_TAIL_BYTES, MetricsSnapshot, MetricsSource, Series, SeriesView
from .runs import RunsSource
from .tune import TRIALS_REPORT, TrialsReport, TrialsSource, best_eval_score, trials_report

__all__ = [
    "ALERT_EVENTS",
    "CHART_BUCKETS",
    "METRICS_TAIL_BYTES",
    "NOTICE_EVENTS",
    "PRUNED",
    "TRIALS_REPORT",
    "VERIFY_REPORT",
    "ChartSnapshot",
    "ChartSource",
    "CheckpointRow",
    "CheckpointsSource",
    "CpuMeter",
    "Downsampled",
    "EvalReport",
    "EventsSource",
    "HostSample",
    "HostSource",
    "LiveState",
    "LogsSource",
    "MetricsSnapshot",
    "MetricsSource",
    "RunsSource",
    "Series",
    "SeriesView",
    "TailLines",
    "TrialsReport",
    "TrialsSource",
    "Verdict",
    "best_eval_score",
    "eval_report",
    "event_severity",
    "event_text",
    "live_journal_path",
    "live_state",
    "read_journal",
    "trials_report",
]
