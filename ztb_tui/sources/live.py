"""A live run's trading state: the newest live metrics, the journal's orders and fills, the breakers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ztb_core.atomic import read_json
from ztb_core.live.execution.journal import read_snapshot
from ztb_core.live.loop.live_config import journal_path_for
from ztb_core.live.loop.requests import breaker_reset_pending
from ztb_core.runs import JsonlTail


@dataclass(frozen=True)
class LiveState:
    step: int
    metrics: dict  # the newest `live` metrics row
    risk: dict | None  # the risk state the loop keeps in its journal (breakers, daily halt, ...)
    open_orders: tuple[dict, ...]
    fills: tuple[dict, ...]  # newest first
    reset_pending: bool
    journal_error: str | None = None


LIVE_TAIL_BYTES = 64 << 10
FILLS_SHOWN = 20


def live_journal_path(run_dir: Path) -> Path | None:
    """The journal a live run writes: `journal` in its report, else the core's rule
    (`journal_path_for`) applied to the run's saved config and its artifacts folder."""
    run_dir = Path(run_dir)
    try:
        report = read_json(run_dir / "reports" / "live_report.json")
        if isinstance(report, dict) and report.get("journal"):
            return Path(report["journal"])
    except (FileNotFoundError, ValueError, OSError):
        pass  # no (readable) report yet: the journal path comes from the run's config below
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, ValueError):
        return None
    exchange = cfg.get("exchange") or {}
    return journal_path_for(
        str(cfg.get("mode", "dry_run")),
        str(exchange.get("exchange", "?")),
        str(exchange.get("symbol", "")),
        cfg.get("journal_path"),
        artifacts=run_dir.parent.parent,
    )


def read_journal(path: Path) -> tuple[dict | None, list[dict], list[dict]]:
    """(risk state, open orders, newest fills) of a live journal, read-only (the core's reader)."""
    risk, orders, fills = read_snapshot(path, FILLS_SHOWN)
    if risk is not None:
        risk.setdefault("reduce_only", bool(risk.get("breakers")) or risk.get("daily_halt") is not None)
    return risk, orders, fills


def live_state(run_dir: Path) -> LiveState:
    run_dir = Path(run_dir)
    rows = JsonlTail(run_dir / "metrics.jsonl", from_end_bytes=LIVE_TAIL_BYTES).poll().records
    latest: dict = next((r for r in reversed(rows) if r.get("split") == "live"), {})
    risk: dict | None = None
    orders: list[dict] = []
    fills: list[dict] = []
    error = None
    path = live_journal_path(run_dir)
    if path is not None and path.exists():
        try:
            risk, orders, fills = read_journal(path)
        except Exception as exc:  # a locked or foreign file: shown, the rest keeps working
            error = f"{exc.__class__.__name__}: {exc}"
    elif path is not None:
        error = f"{path} not found"
    return LiveState(
        step=int(latest.get("step", 0) or 0),
        metrics=latest,
        risk=risk,
        open_orders=tuple(orders),
        fills=tuple(fills),
        reset_pending=breaker_reset_pending(run_dir),
        journal_error=error,
    )
