"""`ztb errors`: the last errors across all runs, de-duplicated by traceback digest.

Reads every run's `events.jsonl` for `error` events (written by `RunWriter.error_event`: message,
`traceback_sha1`, traceback tail) and `fatal` events (the supervisor giving up). The same digest in
many runs (or many times in one run) is one row: how often, in which runs, first and last seen.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ZtbError
from ..runs import RunReader, list_runs

ERROR_EVENTS = ("error", "fatal")
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """'30m', '12h', '2d', '1w' before now, or an ISO date/time (UTC when no zone) -> unix time."""
    if text is None or text == "":
        return None
    now = time.time() if now is None else now
    m = _SPAN.match(text.strip().lower())
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ZtbError(
            f"--since {text!r}: expected a span like 30m, 12h, 2d, 1w or an ISO date like 2026-11-30"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass
class ErrorGroup:
    digest: str
    error: str
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    runs: list[str] = field(default_factory=list)
    traceback_tail: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "digest": self.digest,
            "error": self.error,
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "runs": self.runs,
            "traceback_tail": self.traceback_tail,
        }


def digest_of(event: dict) -> str:
    """The traceback digest; events without one (a supervisor's `fatal`) group by their message."""
    if event.get("traceback_sha1"):
        return str(event["traceback_sha1"])
    text = str(event.get("error") or event.get("message") or event.get("last_exit") or event.get("event"))
    return "msg:" + re.sub(r"\d+", "N", text)[:120]


def collect(artifacts: Path | None = None, since: float | None = None) -> list[ErrorGroup]:
    """Error groups, newest last-seen first."""
    groups: dict[str, ErrorGroup] = {}
    for run in list_runs(artifacts):
        for e in RunReader(run.dir).events():
            if e.get("event") not in ERROR_EVENTS:
                continue
            t = float(e.get("time", 0.0))
            if since is not None and t < since:
                continue
            key = digest_of(e)
            g = groups.get(key)
            if g is None:
                message = e.get("error") or e.get("message") or f"{e.get('event')}: {e.get('last_exit', '')}"
                g = groups[key] = ErrorGroup(key, str(message), first=t, last=t)
            g.count += 1
            g.first, g.last = min(g.first, t), max(g.last, t)
            if e.get("traceback_tail"):
                g.traceback_tail = list(e["traceback_tail"])
            if run.run_id not in g.runs:
                g.runs.append(run.run_id)
    return sorted(groups.values(), key=lambda g: g.last, reverse=True)
