"""`ztb report weekly`: one page about the last week (or any window) of runs, as Markdown + PNG.

What it reads, all from the run directories: runs created or active in the window (kind, state);
steps trained in the window (per run, the newest metric step in the window minus the newest before
it, so a resumed run counts only new steps); the best periodic evaluation per run in the window
(`sharpe`, `psr`, `dsr` of `val`/`test` rows); live P&L from the daily reports the live runner writes
(`daily_report` events) and risk events (`order_denied`, `breaker_tripped`, `alert`, `exchange_error`).
Written to `<artifacts>/reports/weekly-<end date>.md` and `.png` (steps per day, live P&L per day).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_file, atomic_write_text
from ..runs import RunReader, list_runs

RISK_EVENTS = ("order_denied", "breaker_tripped", "alert", "exchange_error", "stop_requested")
EVAL_SPLITS = ("val", "test")


@dataclass
class Weekly:
    start: float
    end: float
    runs: list[dict] = field(default_factory=list)
    steps_by_run: dict[str, int] = field(default_factory=dict)
    steps_by_day: dict[str, int] = field(default_factory=dict)
    best_evals: list[dict] = field(default_factory=list)
    live_days: list[dict] = field(default_factory=list)
    risk_events: Counter = field(default_factory=Counter)

    @property
    def steps_trained(self) -> int:
        return sum(self.steps_by_run.values())

    @property
    def live_pnl(self) -> float:
        return float(sum(d.get("pnl") or 0.0 for d in self.live_days))


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def build(artifacts: Path | None = None, days: float = 7.0, end: float | None = None) -> Weekly:
    end = time.time() if end is None else end
    start = end - days * 86400
    w = Weekly(start, end)
    steps_day: dict[str, int] = defaultdict(int)
    for run in list_runs(artifacts):
        reader = RunReader(run.dir)
        rows = [r for r in reader.metrics_tail().poll().records if isinstance(r.get("time"), (int, float))]
        events = reader.events()
        times = [float(r["time"]) for r in rows] + [float(e.get("time", 0)) for e in events]
        if not times or max(times) < start or min(times) > end:
            continue
        w.runs.append({"run_id": run.run_id, "kind": run.kind, "state": run.state, "step": run.step})
        if run.kind in ("train", "pretrain"):
            before = max((int(r.get("step", 0)) for r in rows if r["time"] < start), default=0)
            last_day: dict[str, int] = {}
            for r in rows:
                if start <= r["time"] <= end:
                    last_day[_day(r["time"])] = max(last_day.get(_day(r["time"]), 0), int(r.get("step", 0)))
            prev = before
            for day in sorted(last_day):
                gained = max(0, last_day[day] - prev)
                steps_day[day] += gained
                prev = max(prev, last_day[day])
            if prev > before:
                w.steps_by_run[run.run_id] = prev - before
        evals = [
            r
            for r in rows
            if start <= r["time"] <= end
            and r.get("split") in EVAL_SPLITS
            and isinstance(r.get("sharpe"), (int, float))
            and math.isfinite(r["sharpe"])
        ]
        if evals:
            best = max(evals, key=lambda r: r["sharpe"])
            w.best_evals.append(
                {
                    "run_id": run.run_id,
                    "step": best.get("step"),
                    "split": best.get("split"),
                    "sharpe": best["sharpe"],
                    "psr": best.get("psr"),
                    "dsr": best.get("dsr"),
                    "trials": best.get("dsr_trials"),
                }
            )
        for e in events:
            t = float(e.get("time", 0))
            if not start <= t <= end:
                continue
            if e.get("event") == "daily_report":
                w.live_days.append(
                    {"run_id": run.run_id, "date": e.get("date"), "pnl": e.get("pnl"), "orders": e.get("orders")}
                )
            elif e.get("event") in RISK_EVENTS and run.kind == "live":
                w.risk_events[e["event"]] += 1
    w.steps_by_day = dict(sorted(steps_day.items()))
    w.best_evals.sort(key=lambda r: r["sharpe"], reverse=True)
    w.live_days.sort(key=lambda d: (str(d["date"]), d["run_id"]))
    return w


def _fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def weekly_markdown(w: Weekly, png_name: str) -> str:
    kinds = Counter((r["kind"], r["state"]) for r in w.runs)
    lines = [
        f"# ztb weekly report {_day(w.start)} .. {_day(w.end)}",
        "",
        f"- runs active in the window: **{len(w.runs)}** "
        + ("(" + ", ".join(f"{n} {k} {s}" for (k, s), n in sorted(kinds.items())) + ")" if kinds else ""),
        f"- steps trained: **{w.steps_trained:,}**",
        f"- live P&L (daily reports): **{w.live_pnl:,.2f}** over {len(w.live_days)} day report(s)",
        "- live risk events: " + (", ".join(f"{k} {n}" for k, n in sorted(w.risk_events.items())) or "none"),
        "",
        f"![steps and P&L per day]({png_name})",
        "",
        "## Best evaluations (per run, best Sharpe in the window)",
        "",
    ]
    if w.best_evals:
        lines += ["| run | step | split | Sharpe | PSR | DSR | trials |", "|---|---:|---|---:|---:|---:|---:|"]
        for e in w.best_evals[:15]:
            lines.append(
                f"| {e['run_id']} | {e['step']:,} | {e['split']} | {_fmt(e['sharpe'], 2)} | {_fmt(e['psr'])} | "
                f"{_fmt(e['dsr'])} | {_fmt(e['trials'], 0)} |"
            )
    else:
        lines.append("no evaluations in the window")
    lines += ["", "## Runs", ""]
    if w.runs:
        lines += ["| run | kind | state | step | steps this window |", "|---|---|---|---:|---:|"]
        for r in w.runs:
            lines.append(
                f"| {r['run_id']} | {r['kind']} | {r['state']} | {r['step']:,} | {w.steps_by_run.get(r['run_id'], 0):,} |"
            )
    else:
        lines.append("no runs in the window")
    if w.live_days:
        lines += ["", "## Live days", "", "| date | run | orders | P&L |", "|---|---|---:|---:|"]
        for d in w.live_days:
            lines.append(f"| {d['date']} | {d['run_id']} | {d['orders']} | {_fmt(d['pnl'], 2)} |")
    return "\n".join(lines) + "\n"


def weekly_plot(w: Weekly, path: Path) -> None:
    days = [_day(w.start + i * 86400) for i in range(int(round((w.end - w.start) / 86400)) + 1)]
    pnl: dict[str, float] = defaultdict(float)
    for d in w.live_days:
        pnl[str(d["date"])] += float(d.get("pnl") or 0.0)
    # matplotlib's object API on the Agg canvas (no pyplot global state), as evaluation/plots.py
    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    a, b = fig.subplots(2, 1, sharex=True)
    a.bar(days, [w.steps_by_day.get(d, 0) for d in days], color="#4c72b0")
    a.set_ylabel("steps trained")
    b.bar(days, [pnl.get(d, 0.0) for d in days], color=["#55a868" if pnl.get(d, 0) >= 0 else "#c44e52" for d in days])
    b.set_ylabel("live P&L")
    b.tick_params(axis="x", rotation=45)
    fig.suptitle(f"ztb week {days[0]} .. {days[-1]}")
    fig.tight_layout()
    with atomic_file(path) as fh:
        fig.savefig(fh, format="png", dpi=100)


def write_weekly(w: Weekly, out_dir: Path) -> tuple[Path, Path, Path]:
    """reports/weekly-<end>.md, .png and .json (the figures), each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"weekly-{_day(w.end)}"
    png = out_dir / f"{stem}.png"
    weekly_plot(w, png)
    md = out_dir / f"{stem}.md"
    atomic_write_text(md, weekly_markdown(w, png.name))
    data = {
        "start": w.start,
        "end": w.end,
        "runs": w.runs,
        "steps_trained": w.steps_trained,
        "steps_by_run": w.steps_by_run,
        "steps_by_day": w.steps_by_day,
        "best_evals": w.best_evals,
        "live_days": w.live_days,
        "live_pnl": w.live_pnl,
        "risk_events": dict(w.risk_events),
    }
    js = out_dir / f"{stem}.json"
    atomic_write_text(js, json.dumps(data, indent=2, default=str) + "\n")
    return md, png, js
