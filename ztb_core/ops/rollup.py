"""`ztb rollup`: a small summary of a run for people and scripts, `reports/summary.json` and
`reports/summary.md`: progress, fps, ETA, the latest evaluation, checkpoints, alerts, restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_text
from ..manifest import Manifest
from ..runs import ACTIVE_STATES, FINAL_STATES, JsonlTail, RunReader, liveness, utc_now_iso

EVAL_SPLITS = ("val", "test")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def build_summary(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    reader = RunReader(run_dir)
    info, status = reader.info(), reader.status()
    label, alive = liveness(status, now=now) if status else ("unknown", None)
    metrics = JsonlTail(reader.dir / "metrics.jsonl").poll().records
    events = reader.events()
    train_rows = [m for m in metrics if m.get("split") == "train"]
    eval_rows = [m for m in metrics if m.get("split") in EVAL_SPLITS]
    step = int(status.get("step", 0) or 0)
    total = status.get("total_steps")
    fps = next((float(m["fps"]) for m in reversed(train_rows) if isinstance(m.get("fps"), (int, float))), None)
    eta = (total - step) / fps if (fps and total and label in ACTIVE_STATES and step < total) else None
    entries = Manifest(reader.dir / "checkpoints").entries()
    alerts = [e for e in events if e.get("event") == "alert"]
    restarts = [e for e in events if e.get("event") == "restarted"]
    errors = [e for e in events if e.get("event") == "error"]
    return {
        "run_id": reader.run_id,
        "kind": info.get("kind"),
        "generated_at": utc_now_iso(),
        "state": status.get("state"),
        "liveness": label,
        "pid_alive": alive,
        "message": status.get("message"),
        "progress": {"step": step, "total_steps": total, "fraction": round(step / total, 4) if total else None},
        "fps": fps,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "latest_train": train_rows[-1] if train_rows else None,
        "latest_evaluation": eval_rows[-1] if eval_rows else None,
        "checkpoints": {
            "count": len(entries),
            "newest": entries[-1] if entries else None,
            "best": next((e for e in entries if e.get("best")), None),
            "invalid": [e["file"] for e in entries if e.get("invalid")],
        },
        "alerts": {"count": len(alerts), "recent": alerts[-10:]},
        "restarts": len(restarts),
        "last_error": errors[-1] if errors else None,
    }


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "-"


def summary_markdown(s: dict[str, Any]) -> str:
    p = s["progress"]
    total = f"{p['total_steps']:,}" if p["total_steps"] else "?"
    pct = f" ({p['fraction'] * 100:.1f}%)" if p["fraction"] is not None else ""
    lines = [
        f"# Run {s['run_id']} ({s['kind']})",
        "",
        f"- state: **{s['liveness']}**" + (f" — {s['message']}" if s.get("message") else ""),
        f"- progress: {p['step']:,} / {total} steps{pct}",
        f"- fps: {_num(s['fps'], '{:.0f}')}; ETA: {_fmt_duration(s['eta_seconds'])}",
        f"- restarts: {s['restarts']}; alerts: {s['alerts']['count']}",
        "",
    ]
    ev = s.get("latest_evaluation")
    lines.append("## Latest evaluation")
    if ev:
        lines.append(f"step {ev['step']:,}, split `{ev['split']}`")
        lines.append("")
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_num(v)} |" for k, v in ev.items() if k not in ("time", "step", "split")]
    else:
        lines.append("none yet")
    lines += ["", "## Checkpoints"]
    ck = s["checkpoints"]
    if ck["count"]:
        lines += ["| file | step | size MB | ratio | save s | best |", "|---|---|---|---|---|---|"]
        rows = [ck["newest"]]
        if ck["best"] and ck["best"]["file"] != ck["newest"]["file"]:
            rows.append(ck["best"])
        for e in rows:
            lines.append(
                f"| {e['file']} | {e['step']:,} | {e.get('size', 0) / 1e6:.2f} | {_num(e.get('ratio'), '{:.2f}')} "
                f"| {_num(e.get('save_seconds'))} | {'yes' if e.get('best') else ''} |"
            )
        lines.append(
            f"\n{ck['count']} checkpoint(s) kept" + (f"; invalid: {', '.join(ck['invalid'])}" if ck["invalid"] else "")
        )
    else:
        lines.append("none yet")
    lines += ["", "## Alerts"]
    lines += [f"- {a.get('check')}: {a.get('message')}" for a in s["alerts"]["recent"]] or ["none"]
    if s.get("last_error"):
        lines += ["", "## Last error", f"`{s['last_error'].get('error')}`"]
    return "\n".join(lines) + "\n"


def write_rollup(run_dir: Path) -> tuple[Path, Path]:
    s = build_summary(run_dir)
    reports = Path(run_dir) / "reports"
    reports.mkdir(exist_ok=True)
    atomic_write_json(reports / "summary.json", s)
    atomic_write_text(reports / "summary.md", summary_markdown(s))
    return reports / "summary.json", reports / "summary.md"


def rollup_loop(run_dir: Path, interval_minutes: float, on_write=None) -> None:
    """Rewrite the summary every `interval_minutes` until the run reaches a final state."""
    while True:
        paths = write_rollup(run_dir)
        if on_write is not None:
            on_write(paths)
        if RunReader(run_dir).status().get("state") in FINAL_STATES:
            return
        time.sleep(interval_minutes * 60.0)
