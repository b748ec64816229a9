"""The notification hook: `RunWriter.event` and `ops.stopper.record_event` call `forward()` for every
event. It is a no-op unless `DISCORD_WEBHOOK` or `ZTB_NOTIFY` is set; then the sender in
`ops.notifier` (config, queue, HTTP, Apprise) decides whether the event's kind is sent.

This module stays tiny because `ztb_core.runs` imports it: the sender's imports (pydantic config,
urllib, Apprise) are loaded only once a target is configured, so a run or the console without
notifications never pays for them.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DISCORD = "DISCORD_WEBHOOK"
ENV_NOTIFY = "ZTB_NOTIFY"


def configured() -> bool:
    return bool(os.environ.get(ENV_DISCORD, "").strip() or os.environ.get(ENV_NOTIFY, "").strip())


def forward(run_dir: Path | None, run_id: str, run_kind: str, record: dict) -> None:
    """Queue a run event for the configured targets (never blocks; see ops.notifier)."""
    if not configured():
        return
    # loaded on the first event with a target configured (see the module docstring); also an
    # import cycle: ops.notify -> ops.notifier -> ops.notify
    from .notifier import notifier_from_env

    notifier = notifier_from_env()
    if notifier is not None:
        notifier.forward(run_dir, run_id, run_kind, record)
