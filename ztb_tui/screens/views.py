"""The run view's own tab for the run kinds that need more than curves: an evaluation run's
report, a tuning study's trials, a live run's trading state. Each view reads its run folder in
the poller's thread (`fetch`) and draws on the UI thread (`apply`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from ztb_core.live.loop.requests import request_breaker_reset

from ..context import context
from ..fmt import amount, clock_time, num, price
from ..health import Flag, HealthSource
from ..messages import OpenRun
from ..sources import EvalReport, LiveState, TrialsReport, TrialsSource, eval_report, live_state
from ..widgets import NavTable, set_display, set_text
from ..widgets.charts import Chart, drawdown
from .confirm import ConfirmScreen


class KindView(VerticalScroll):
    TAB: ClassVar[str] = ""

    def __init__(self, run_dir: Path, **kwargs: Any):
        super().__init__(id="kind-view", **kwargs)
        self.run_dir = Path(run_dir)

    # every kind's view overrides both: fetch runs in a worker thread, apply on the UI thread
    def fetch(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must read its run's files in fetch()")

    def apply(self, data: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must draw what fetch() read in apply()")

    def focus_main(self) -> None:
        self.focus()


# ---- evaluation -------------------------------------------------------------------------

EVAL_METRICS = (
    ("sharpe", "Sharpe (annualised)"),
    ("sortino", "Sortino"),
    ("total_return", "total return"),
    ("annualised_return", "annualised return"),
    ("max_drawdown", "max drawdown"),
    ("calmar", "Calmar"),
    ("win_rate", "win rate"),
    ("turnover_per_year", "turnover / year"),
    ("trades", "trades"),
    ("cost_drag_per_year", "cost drag / year"),
)
VERDICT_CHECKS = (
    ("sharpe_ci_above_zero", "Sharpe CI above 0"),
    ("psr_above_0_95", "PSR > 0.95"),
    ("dsr_above_0_95", "DSR > 0.95"),
    ("beats_strongest_baseline", "beats the strongest baseline"),
    ("beats_random", "beats random policies"),
    ("survives_costs_x2", "survives doubled costs"),
)


def count(value: Any) -> str:
    """A count as a whole number ("141", not "141.0"); anything else as `num` shows it."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if float(value).is_integer():
            return f"{int(value):,}"
    return num(value)


#: metrics that are counts: drawn as whole numbers
COUNT_METRICS = frozenset({"trades", "turnover", "position_changes", "n_bars"})
BASELINE_COLUMNS = (("buy_and_hold", "buy & hold"), ("sma_crossover", "SMA cross"), ("ridge", "ridge"))


def _pct(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def bootstrap_text(data: dict) -> str:
    b = data.get("bootstrap") or {}
    intervals = b.get("intervals") or {}
    if not intervals:
        return "bootstrap: not in this report"
    conf = b.get("confidence")
    parts = []
    for key, label in (("sharpe", "Sharpe"), ("total_return", "return"), ("max_drawdown", "max DD")):
        iv = intervals.get(key)
        if isinstance(iv, dict):
            parts.append(f"{label} {num(iv.get('estimate'))} [{num(iv.get('low'))}, {num(iv.get('high'))}]")
    head = f"[b]bootstrap {_pct(conf) if conf else ''} intervals[/] ({b.get('n_resamples', '?')} resamples, "
    head += f"{b.get('method', '?')} blocks of {num(b.get('block_length'))} bars)"
    return head + "\n  " + " · ".join(parts)


def monte_carlo_text(data: dict) -> str:
    mc = data.get("monte_carlo") or {}
    if not mc:
        return "Monte Carlo: not in this report"
    var, cvar = mc.get("var") or {}, mc.get("cvar") or {}
    levels = sorted(set(var) | set(cvar), key=lambda x: float(x))
    risk = " · ".join(f"VaR {_pct(float(lv))} {_pct(var.get(lv))} / CVaR {_pct(cvar.get(lv))}" for lv in levels)
    dd = " · ".join(
        f"P(DD>{_pct(d.get('threshold'))}) {num(d.get('probability'))}"
        for d in mc.get("drawdown_probability") or ()
        if isinstance(d, dict)
    )
    return (
        f"[b]Monte Carlo risk[/] over {num(mc.get('horizon_days'))} days ({mc.get('n_paths', '?')} paths): "
        f"expected return {_pct(mc.get('expected_return'))}\n  {risk}\n  {dd} · median max DD "
        f"{_pct(mc.get('median_max_drawdown'))}"
    )


def costs_text(data: dict) -> str:
    c = data.get("cost_sensitivity") or {}
    if not c:
        return "cost sensitivity: not in this report"
    be = c.get("break_even_cost_bps")
    profitable = c.get("profitable_before_costs")
    verdict = (
        "[red]loses money even at zero cost[/]"
        if profitable is False
        else f"break-even at [b]{num(be)} bps[/] per side"
        if be is not None
        else "break-even not reached on the grid"
    )
    return f"[b]costs[/]: trades at {num(c.get('actual_cost_bps'))} bps per side · {verdict}"


def robustness_text(data: dict) -> str:
    r = data.get("robustness") or {}
    lines = []
    for period in ("monthly", "quarterly"):
        d = (r.get(period) or {}).get("sharpe_dispersion") or {}
        ret = (r.get(period) or {}).get("return_dispersion") or {}
        if d:
            lines.append(
                f"{period}: {count(d.get('count'))} periods, Sharpe {num(d.get('mean'))} ± {num(d.get('std'))} "
                f"[{num(d.get('min'))}, {num(d.get('max'))}], {_pct(ret.get('fraction_positive'))} positive"
            )
    episodes = ((r.get("start_offsets") or {}).get("sharpe_dispersion")) or {}
    if episodes:
        lines.append(
            f"start offsets: {count(episodes.get('count'))} episodes, Sharpe {num(episodes.get('mean'))} ± "
            f"{num(episodes.get('std'))}"
        )
    return "[b]robustness[/]\n  " + "\n  ".join(lines) if lines else "robustness: not in this report"


class EvalView(KindView):
    """reports/eval_<id>.json: the verdict and its checks, DSR with its trial count, metrics beside
    every baseline, bootstrap intervals, Monte Carlo VaR/CVaR, cost sensitivity with the break-even
    cost, robustness over periods and start offsets, equity (with buy-and-hold) and drawdown, and
    Sharpe against the cost per side."""

    TAB = "Report"

    def __init__(self, run_dir: Path, **kwargs: Any):
        super().__init__(run_dir, **kwargs)
        self.report: EvalReport | None = None

    def compose(self) -> ComposeResult:
        yield Static("no evaluation report in reports/ yet", id="eval-verdict")
        yield Static("", id="eval-dsr")
        table: DataTable = DataTable(id="eval-metrics", cursor_type="row")
        table.add_column("metric", key="metric")
        table.add_column("agent", key="agent")
        for key, label in BASELINE_COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="eval-bootstrap", classes="eval-section")
        yield Static("", id="eval-mc", classes="eval-section")
        yield Static("", id="eval-costs", classes="eval-section")
        yield Static("", id="eval-robustness", classes="eval-section")
        yield Chart("equity (agent, buy & hold)", id="eval-equity")
        yield Chart("drawdown", id="eval-drawdown")
        yield Chart("Sharpe vs cost per side (bps)", id="eval-cost-curve")

    def fetch(self) -> EvalReport | None:
        return eval_report(self.run_dir)

    def apply(self, report: EvalReport | None) -> None:
        if report is None or report == self.report:
            return
        self.report = report
        data = report.data
        verdict = data.get("verdict") or {}
        lines = [
            f"[b]verdict: {escape(str(verdict.get('summary', 'no verdict')))}[/] "
            f"({verdict.get('passed', '?')}/{verdict.get('total', '?')} checks)"
        ]
        for key, label in VERDICT_CHECKS:
            if key in verdict:
                lines.append(("  [green]✓[/] " if verdict[key] else "  [red]✗[/] ") + label)
        set_text(self.query_one("#eval-verdict", Static), "\n".join(lines))
        inf = data.get("sharpe_inference") or {}
        set_text(
            self.query_one("#eval-dsr", Static),
            f"DSR [b]{num(inf.get('dsr'))}[/] over [b]{inf.get('n_trials', '?')}[/] trials "
            f"({escape(str(inf.get('n_trials_source', '?')))}) · PSR {num(inf.get('psr'))} · "
            f"expected max Sharpe of the trials {num(inf.get('expected_max_sharpe_annualised'))} · "
            f"{report.path.name}",
        )
        table = self.query_one("#eval-metrics", DataTable)
        metrics = data.get("metrics") or {}
        baselines = data.get("baselines") or {}
        strongest = verdict.get("strongest_baseline")
        # the strongest baseline is the bar to beat: its column is starred (labels rebuilt: a
        # DataTable caches its header)
        table.clear(columns=True)
        table.add_column("metric", key="metric")
        table.add_column("agent", key="agent")
        for name, label in BASELINE_COLUMNS:
            table.add_column(label + (" ★" if name == strongest else ""), key=name)

        def fmt(key: str, value: Any) -> str:
            return count(value) if key in COUNT_METRICS else num(value)

        def base(name: str, key: str) -> str:
            entry = baselines.get(name, {})
            value = (entry.get("metrics") or {}).get(key) if isinstance(entry, dict) else None
            return fmt(key, value) if value is not None else "-"

        for key, label in EVAL_METRICS:
            if key in metrics:
                table.add_row(label, fmt(key, metrics[key]), *(base(name, key) for name, _ in BASELINE_COLUMNS))
        set_text(self.query_one("#eval-bootstrap", Static), bootstrap_text(data))
        set_text(self.query_one("#eval-mc", Static), monte_carlo_text(data))
        set_text(self.query_one("#eval-costs", Static), costs_text(data))
        set_text(self.query_one("#eval-robustness", Static), robustness_text(data))
        curves = data.get("curves") or {}
        bars = curves.get("bar") or list(range(len(curves.get("equity") or [])))
        equity = curves.get("equity") or []
        lines_eq: dict = {}
        if equity:
            lines_eq["agent"] = (bars, equity)
        if curves.get("benchmark_equity"):
            lines_eq["buy & hold"] = (bars, curves["benchmark_equity"])
        for name, label in BASELINE_COLUMNS[1:]:  # drawn when the report carries their curves
            key = f"{name}_equity"
            if curves.get(key):
                lines_eq[label] = (bars, curves[key])
        eq_chart = self.query_one("#eval-equity", Chart)
        eq_chart.title = "equity (" + ", ".join(lines_eq) + ")"
        eq_chart.draw(lines_eq)
        dd = curves.get("drawdown") or (drawdown(equity) if equity else [])
        self.query_one("#eval-drawdown", Chart).draw({"drawdown": (bars, dd)} if dd else {})
        curve = [p for p in (data.get("cost_sensitivity") or {}).get("curve") or () if isinstance(p, dict)]
        pts = [(p["cost_bps"], p["sharpe"]) for p in curve if _finite(p.get("cost_bps")) and _finite(p.get("sharpe"))]
        self.query_one("#eval-cost-curve", Chart).draw(
            {"agent Sharpe": ([x for x, _ in pts], [y for _, y in pts])} if pts else {}
        )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---- tuning -----------------------------------------------------------------------------


def _params(trial: dict) -> str:
    return " ".join(f"{k}={num(v) if isinstance(v, float) else v}" for k, v in (trial.get("params") or {}).items())


class TrialsTable(NavTable):
    BINDINGS = [Binding("enter", "select_cursor", "Open trial")]


class TuneView(KindView):
    """reports/trials.json: every trial with its state and score, best first marked; enter opens
    the trial's own training run."""

    TAB = "Trials"

    def __init__(self, run_dir: Path, **kwargs: Any):
        super().__init__(run_dir, **kwargs)
        self.trials: TrialsReport | None = None
        self.source = TrialsSource(self.run_dir)

    def compose(self) -> ComposeResult:
        yield Static("no reports/trials.json yet", id="tune-summary")
        table = TrialsTable(id="trials", cursor_type="row", zebra_stripes=True)
        for label, key, width in (
            ("#", "number", 4),
            ("state", "state", 9),
            ("score", "value", 9),
            ("started (UTC)", "started", 19),
            ("run", "run", 30),
            ("params", "params", None),
        ):
            table.add_column(label, key=key, width=width)
        yield table

    def focus_main(self) -> None:
        self.query_one("#trials").focus()

    def fetch(self) -> TrialsReport | None:
        return self.source.poll()

    def apply(self, report: TrialsReport | None) -> None:
        if report is None or report == self.trials:
            return
        self.trials = report
        best = report.best()
        counts = ", ".join(
            f"{report.count(state)} {state}"
            for state in ("complete", "running", "pruned", "fail")
            if state == "complete" or report.count(state)
        )
        if best:
            best_text = f"\nbest so far: [b]#{best.get('number')}[/] score [b]{num(best.get('value'))}[/] · " + (
                escape(_params(best)) or "no parameters"
            )
        else:
            best_text = "\nno finished trial yet"
        set_text(
            self.query_one("#tune-summary", Static),
            f"study [b]{escape(report.study)}[/] · {report.direction} · {len(report.trials)} trials: {counts}"
            + best_text
            + " · ⏎ opens a trial's run",
        )
        table = self.query_one("#trials", DataTable)
        key = None
        if table.row_count:
            try:
                key = table.coordinate_to_cell_key(table.cursor_coordinate)[0].value
            except Exception:
                key = None
        table.clear()
        for t in report.trials:
            number = str(t.get("number"))
            params = _params(t)
            mark = " ★" if best is not None and t is best else ""
            state = str(t.get("state", "?"))
            style = {"complete": "green", "fail": "red", "running": "cyan", "pruned": "yellow"}.get(state, "")
            table.add_row(
                number + mark,
                Text(state, style=style),
                num(t.get("value")) if isinstance(t.get("value"), (int, float)) else "-",
                clock_time(t.get("started_at")),
                str(t.get("run_id") or "-"),
                params,
                key=number,
            )
        if key is not None and key in {str(t.get("number")) for t in report.trials}:
            table.move_cursor(row=table.get_row_index(key), animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.trials is None or event.row_key.value is None:
            return
        trial = next((t for t in self.trials.trials if str(t.get("number")) == event.row_key.value), None)
        run_id = trial.get("run_id") if trial else None
        run_dir = self.run_dir.parent / str(run_id) if run_id else None
        if run_dir is None or not (run_dir / "run.json").exists():
            self.notify(f"trial {event.row_key.value} has no run folder ({run_id or 'no run id'})", severity="warning")
            return
        self.post_message(OpenRun(run_dir))


# ---- live -------------------------------------------------------------------------------


class LiveView(KindView):
    """Position, P&L, risk state and latched breakers (from the journal), open orders and recent
    fills; `B` asks the running loop to reset the breakers (after a confirmation)."""

    TAB = "Trading"
    BINDINGS = [Binding("B", "reset_breakers", "Reset breakers")]

    def __init__(self, run_dir: Path, **kwargs: Any):
        super().__init__(run_dir, **kwargs)
        self.state: LiveState | None = None
        self.flags: tuple[Flag, ...] = ()
        self.health = HealthSource(self.run_dir, "live")

    def compose(self) -> ComposeResult:
        warning = Static("", id="live-warning")
        warning.display = False
        yield warning
        yield Static("waiting for the first decision", id="live-summary")
        yield Static("", id="live-risk")
        yield Static("[b]open orders[/]", classes="live-heading")
        orders: DataTable = DataTable(id="live-orders", cursor_type="row")
        orders.add_columns("id", "side", "amount", "price", "filled", "state", "reduce-only")
        yield orders
        yield Static("[b]recent fills[/]", classes="live-heading")
        fills: DataTable = DataTable(id="live-fills", cursor_type="row")
        fills.add_columns("time (UTC)", "side", "amount", "price", "fee", "order")
        yield fills

    def fetch(self) -> tuple[LiveState, tuple[Flag, ...]]:
        return live_state(self.run_dir), self.health.poll()

    def apply(self, got: tuple[LiveState, tuple[Flag, ...]]) -> None:
        state, flags = got
        if flags != self.flags:
            self.flags = flags
            warning = self.query_one("#live-warning", Static)
            set_text(warning, "\n".join(f"[b yellow]⚠ {escape(f.text)}[/]\n  fix: {escape(f.fix)}" for f in flags))
            set_display(warning, bool(flags))
        if state == self.state:
            return
        self.state = state
        m = state.metrics
        if m:
            set_text(
                self.query_one("#live-summary", Static),
                f"position [b]{amount(m.get('position'))}[/] ({num(m.get('position_value'))} quote) · "
                f"price {num(m.get('price'))} · equity {num(m.get('equity'))} · "
                f"P&L [b]{num(m.get('pnl'))}[/] · today {num(m.get('daily_pnl'))} · "
                f"trades today {m.get('trades_today', '-')} · open orders {m.get('open_orders', '-')} · "
                f"bar {state.step}",
            )
        risk = state.risk or {}
        breakers = risk.get("breakers") or {}
        parts = [
            "[b red]REDUCE-ONLY[/]"
            if risk.get("reduce_only")
            else "[green]risk: normal[/]"
            if risk
            else "risk: (no journal state yet)"
        ]
        if risk.get("daily_halt"):
            parts.append(f"daily halt: {risk['daily_halt']}")
        if breakers:
            parts.append("breakers: " + "; ".join(f"[b]{k}[/] ({v})" for k, v in breakers.items()))
            parts.append("B resets them" + (" (request pending)" if state.reset_pending else ""))
        elif risk:
            parts.append("no breaker tripped")
        if state.journal_error:
            parts.append(f"[yellow]journal: {state.journal_error}[/]")
        set_text(self.query_one("#live-risk", Static), " · ".join(parts))
        orders = self.query_one("#live-orders", DataTable)
        orders.clear()
        for o in state.open_orders:
            orders.add_row(
                str(o.get("client_id", ""))[-12:],
                o.get("side", ""),
                amount(o.get("amount")),
                price(o.get("price")),
                amount(o.get("filled")),
                o.get("state", ""),
                "yes" if o.get("reduce_only") else "",
            )
        fills = self.query_one("#live-fills", DataTable)
        fills.clear()
        for f in state.fills:
            fills.add_row(
                clock_time(f.get("time_ms", 0) / 1000 if f.get("time_ms") else None),
                f.get("side", ""),
                amount(f.get("amount")),
                price(f.get("price")),
                f"{price(f.get('fee'))} {f.get('fee_currency') or ''}".strip(),
                str(f.get("client_id") or "")[-12:],
            )
        set_display(orders, bool(state.open_orders))
        set_display(fills, bool(state.fills))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "reset_breakers" and context(self).readonly:
            return False
        return True

    def action_reset_breakers(self) -> None:
        ctx = context(self)
        if ctx.readonly:
            return
        row = ctx.runs_source.one(self.run_dir)
        if not row.active:
            self.notify(
                f"{row.run_id} is {row.liveness}: breakers are reset at the next start with `ztb live --reset-breakers`",
                severity="warning",
            )
            return
        breakers = (self.state.risk or {}).get("breakers") if self.state else None

        def go(yes: bool | None) -> None:
            if yes:
                request_breaker_reset(self.run_dir, by="console")
                self.notify("reset requested: the loop clears the breakers at its next poll")

        self.app.push_screen(
            ConfirmScreen(
                f"Reset the circuit breakers of {row.run_id}?",
                "Tripped: " + (", ".join(breakers) if breakers else "none shown") + ". The loop leaves reduce-only "
                "and may add exposure again. It takes the request at its next poll (a breakers_reset event).",
                yes="Reset",
            ),
            go,
        )


KIND_VIEWS: dict[str, type[KindView]] = {"eval": EvalView, "tune": TuneView, "live": LiveView}
