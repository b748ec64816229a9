"""Run writers for the long jobs, wired to this host and its notifications.

`runs.RunWriter` is the protocol and knows nothing of NVML or notification targets; every job
creates or re-opens its run here, so run.json lists the GPUs and every event reaches
`notify.forward` (a no-op unless a target is configured)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runs import RunWriter, host_facts
from . import notify
from .telemetry import gpu_facts


def create_run(kind: str, config: Any = None, **kwargs: Any) -> RunWriter:
    """`RunWriter.create` with this machine's facts (GPUs included) and the notification hook."""
    return RunWriter.create(kind, config, host=host_facts(gpu=gpu_facts()), on_event=notify.forward, **kwargs)


def open_run(run_dir: Path) -> RunWriter:
    """`RunWriter.open` (resume, restart) with the notification hook."""
    return RunWriter.open(run_dir, on_event=notify.forward)
