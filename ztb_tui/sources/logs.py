"""A run's text logs (followed across files) and its lifecycle events, with their severity."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ztb_core.runs import JsonlTail, LineTail

LOG_TAIL_BYTES = 64 << 10
EVENTS_TAIL_BYTES = 256 << 10


@dataclass(frozen=True)
class TailLines:
    lines: list[str]
    reset: bool = False  # the file was truncated: what was shown before is gone


class LogsSource:
    """All text logs of a run: `logs/*.log` plus the console's launch output for that run
    (which holds anything printed before the run wrote its own log, such as a crash at start).

    Files are read oldest first (by modification time, not by name: a resume's output must come
    after the first start's, so the tail shows the newest text). Lines carry no file-name prefix;
    a short `── name ──` line marks where the text switches to another file."""

    def __init__(self, run_dir: Path, extra: Iterable[Path] | Callable[[], Iterable[Path]] = ()):
        self.run_dir = Path(run_dir)
        self._extra = extra
        self.followers: dict[Path, LineTail] = {}
        self._current: Path | None = None

    def extra(self) -> list[Path]:
        found = self._extra() if callable(self._extra) else self._extra
        return [Path(p) for p in found]

    def files(self) -> list[Path]:
        logs = self.run_dir / "logs"
        found = list(logs.glob("*.log")) if logs.is_dir() else []
        found += [p for p in self.extra() if p.exists()]
        return sorted(found, key=_mtime_then_name)

    def poll(self) -> TailLines:
        files = self.files()
        lines: list[str] = []
        reset = False
        for path in files:
            follower = self.followers.get(path)
            if follower is None:
                follower = self.followers[path] = LineTail(path, LOG_TAIL_BYTES, max_read_bytes=4 << 20)
            got = follower.poll()
            reset |= got.reset
            if got.records and len(files) > 1 and path != self._current:
                lines.append(f"── {path.name} ──")
            if got.records:
                self._current = path
            lines.extend(got.records)
        return TailLines(lines, reset)

    def close(self) -> None:
        self.followers.clear()  # LineTail holds no open file between polls


def _mtime_then_name(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except OSError:
        return (math.inf, path.name)


ALERT_EVENTS = frozenset({"alert", "error", "failed", "fatal", "killed", "stop_escalated", "restarted"})
NOTICE_EVENTS = frozenset({"stop_requested", "stopping", "stopped", "resumed", "console_stop"})


class EventsSource:
    def __init__(self, run_dir: Path):
        self.tail = JsonlTail(Path(run_dir) / "events.jsonl", from_end_bytes=EVENTS_TAIL_BYTES)

    def poll(self) -> tuple[list[dict], bool]:
        result = self.tail.poll()
        return result.records, result.reset


def event_severity(record: dict) -> str:
    kind = str(record.get("event", ""))
    if kind in ALERT_EVENTS or record.get("level") in ("error", "critical"):
        return "alert"
    if kind in NOTICE_EVENTS or record.get("level") == "warning":
        return "notice"
    return "info"


def _short(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too (an event's detail is read, not
    parsed: 0.0097649739 says nothing 0.009765 does not)."""
    if isinstance(value, float):
        return float(f"{value:.4g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def event_text(record: dict) -> str:
    extra = {k: _short(v) for k, v in record.items() if k not in ("time", "event")}
    detail = " ".join(f"{k}={json.dumps(v, default=str) if not isinstance(v, str) else v}" for k, v in extra.items())
    return f"{record.get('event', '?')} {detail}".strip()
