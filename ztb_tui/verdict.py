"""The end-of-run verdict of a training run, as `ztb train` prints it when it finishes: the agent
against the strongest baseline on the last evaluation (`reports/eval-latest.json`, written by the
trainer's periodic evaluation), in the words its paired bootstrap interval supports, with PSR/DSR
deflated for the evaluations already made. The run view shows it once the run has ended."""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape

LATEST = Path("reports") / "eval-latest.json"


def _obj(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def verdict_lines(report: dict, run_id: str) -> list[str]:
    """Console markup lines for one `eval-latest.json` (the same reading as `ztb train`'s last lines)."""
    res = _obj(report.get("result"))
    trials = _obj(report.get("trials"))
    bars = report.get("bars")
    where = f"{report.get('split', 'val')} split, step {int(report.get('step') or 0):,}"
    if isinstance(bars, (int, float)):
        where += f", {bars:,.0f} bars"
    best, best_sharpe, sharpe = res.get("strongest_baseline"), res.get("strongest_baseline_sharpe"), res.get("sharpe")
    vs = res.get("vs_strongest")
    colour = "yellow"
    if best is None or best_sharpe is None:
        head = "undefined (no baseline could be scored on this split)"
    elif isinstance(vs, dict) and vs.get("sentence"):
        head = str(vs["sentence"])
        colour = {"beats": "green", "behind": "red"}.get(str(vs.get("word")), "yellow")
        if res.get("never_traded"):
            head = "the agent did not trade (Sharpe 0); " + head
    elif sharpe is None:
        head = f"the agent did not trade; the strongest baseline ({best}, Sharpe {best_sharpe:.2f}) did"
    else:  # a report written before evaluations recorded the interval: no claim either way
        head = (
            f"the agent's Sharpe {sharpe:.2f} against the strongest baseline ({best}, Sharpe {best_sharpe:.2f}); "
            "no interval recorded for the difference, so no claim that either is better"
        )
    lines = [f"[b]Verdict[/] ({escape(where)}): [{colour}]{escape(head)}[/]"]
    dsr = res.get("dsr")
    if isinstance(dsr, (int, float)):
        n = trials.get("n", res.get("dsr_trials"))
        lines.append(f"PSR {float(res.get('psr') or 0.0):.2f}, DSR {dsr:.2f} deflated for {n} evaluation(s)")
    lines.append(
        f"[dim]the last periodic check, not the final report: ztb eval --model {escape(run_id)} --split test[/]"
    )
    return lines


class VerdictSource:
    """Reads a run's latest evaluation report when it changes (one stat per poll otherwise)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._seen: tuple[int, int] | None = None
        self._lines: list[str] = []

    def poll(self) -> list[str]:
        path = self.run_dir / LATEST
        try:
            st = path.stat()
        except FileNotFoundError:
            self._seen, self._lines = None, []
            return [
                "[b]Verdict[/]: none: this run made no evaluation (eval.every_steps: 0); "
                f"ztb eval --model {escape(self.run_dir.name)} gives one"
            ]
        key = (st.st_mtime_ns, st.st_size)
        if key != self._seen:
            try:
                report = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                return [f"[b]Verdict[/]: [red]cannot read {escape(str(LATEST))}: {escape(str(exc))}[/]"]
            self._seen = key
            self._lines = verdict_lines(report if isinstance(report, dict) else {}, self.run_dir.name)
        return self._lines
