"""Sparkline rows (name, live history, last/min/max and the step) grouped into panels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Sparkline, Static

from ..fmt import num, steps
from ..sources import MetricsSnapshot, SeriesView
from . import set_display, set_text


def _mean(values: Sequence[float]) -> float:
    # Losses and rates are averaged per cell: Sparkline's default (max) would draw every
    # loss curve by its spikes.
    return fmean(values)


class MetricRow(Horizontal):
    """One metric: label, sparkline of its recent history, and last [min, max] @step."""

    DEFAULT_CSS = """
    MetricRow { height: 1; }
    MetricRow > .metric-name { width: 14; color: $text-muted; }
    MetricRow > Sparkline { width: 1fr; min-width: 8; margin: 0 1 0 0; }
    MetricRow > .metric-stats { width: 44; height: 1; }
    """

    def __init__(
        self,
        key: str,
        label: str,
        unit: str = "",
        total_key: str | None = None,
        ref_key: tuple[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.key = key
        self.label = label
        self.unit = unit
        self.total_key = total_key
        #: a baseline drawn beside the last value: (metric key, short label)
        self.ref_key = ref_key[0] if ref_key else None
        self.ref_label = ref_key[1] if ref_key else ""
        self.ref: float | None = None
        self.view: SeriesView | None = None
        self.total: float | None = None

    def compose(self) -> ComposeResult:
        # never cut: six timeframes' rows differ only at the end of their labels
        yield Label(self.label, classes="metric-name")
        yield Sparkline([], summary_function=_mean)
        yield Label("waiting for data", classes="metric-stats")

    def show(self, view: SeriesView | None, total: float | None = None, ref: float | None = None) -> None:
        if view is None or (view == self.view and total == self.total and ref == self.ref):
            return
        self.view, self.total, self.ref = view, total, ref
        if self.is_mounted:
            self._render_view()

    def on_mount(self) -> None:
        # rows are mounted asynchronously: data that arrived before the children existed is drawn now
        if self.view is not None:
            self._render_view()

    def _render_view(self) -> None:
        view, total = self.view, self.total
        assert view is not None
        self.query_one(Sparkline).data = list(view.values)
        last = num(view.last) + self.unit
        if total is not None and math.isfinite(total):
            last = f"{num(view.last)}/{num(total)}{self.unit}"
        ref = f" [yellow]{self.ref_label} {num(self.ref)}[/]" if self.ref is not None else ""
        set_text(
            self.query_one(".metric-stats", Label),
            f"[b]{last}[/]{ref} [dim]\\[{num(view.min)}, {num(view.max)}] @{steps(view.step)}[/]",
            layout=False,
        )


#: curve rows per run kind: (split/name, label). Rows appear once their metric does.
CURVES = {
    # periodic evaluation rows carry the split they were measured on (eval.split: val, or test)
    "train": [
        ("train/ep_rew_mean", "ep reward"),
        *(
            (f"{split}/{name}", f"{split} {label}")
            for split in ("val", "test")
            for name, label in (("sharpe", "Sharpe"), ("total_return", "return"), ("max_drawdown", "max DD"))
        ),
        ("train/policy_loss", "policy loss"),
        ("train/value_loss", "value loss"),
        ("train/entropy_loss", "entropy loss"),
        ("train/approx_kl", "approx KL"),
        ("train/clip_fraction", "clip frac"),
        ("train/explained_variance", "explained var"),
        ("train/fps", "fps"),
        ("train/learning_rate", "learning rate"),
        # --enable-streaming: how full the ring buffer runs and what it had to drop or wait for
        ("stream/fill", "stream buffer fill"),
        ("stream/dropped", "stream dropped"),
        ("stream/blocked", "stream blocked"),
        ("stream/bars_per_s", "stream bars/s"),
    ],
    # the honest pretraining number is the correlation of one-step returns strictly inside masked
    # spans (a span's edge returns are given away by the visible neighbours), shown beside the
    # strongest naive filler on the same masks; level correlation proves little
    "pretrain": [
        ("train/loss", "train loss"),
        ("val/loss", "val loss"),
        *((f"val/corr_interior_{tf}", f"interior corr {tf}") for tf in ("M1", "M5", "M15", "H1", "H4", "D")),
        *((f"val/corr_return_{tf}", f"ret corr {tf}") for tf in ("M1", "M5", "M15", "H1", "H4", "D")),
    ],
    "live": [
        ("live/equity", "equity"),
        ("live/pnl", "P&L"),
        ("live/position", "position"),
        ("live/open_orders", "open orders"),
        ("live/latency_ms", "latency ms"),
    ],
}
MAX_EXTRA_ROWS = 8
#: the label column of a panel fits its longest label, within these bounds
NAME_MIN = 14
NAME_MAX = 24


def reference_key(key: str) -> tuple[str, str] | None:
    """The baseline measured beside a metric, and its short label: for pretraining's interior and
    boundary returns the strongest naive filler on the same masks, for its plain return metrics
    linear interpolation; PPO's buy-and-hold on the same bars and costs."""
    split, _, name = key.partition("/")
    for metric in ("corr_interior_", "mse_interior_", "corr_boundary_"):
        if name.startswith(metric) and "_baseline_" not in name:
            return f"{split}/{metric}baseline_{name[len(metric) :]}", "best naive"
    for metric in ("corr_return_", "mse_"):
        if name.startswith(metric) and "_linear_" not in name:
            return f"{split}/{metric}linear_{name[len(metric) :]}", "lin"
    if name in ("sharpe", "total_return", "max_drawdown") and split in ("val", "test"):
        return f"{split}/buy_and_hold_{name}", "B&H"
    return None


def curve_keys(kind: str, snapshot: MetricsSnapshot) -> list[tuple[str, str]]:
    """The rows to show, in order: the kind's own curves, then other losses and correlations
    found in the metrics (any split but `sys`), so a new metric shows up without code changes."""
    wanted = [(k, label) for k, label in CURVES.get(kind, []) if k in snapshot.series]
    seen = {k for k, _ in wanted}
    extra = []
    for key in sorted(snapshot.series):
        split, name = key.split("/", 1)
        if key in seen or split == "sys":
            continue
        if "_linear_" in name or "_baseline_" in name or name.startswith("corr_level"):
            continue  # baselines are drawn beside their model row; level correlation proves little
        if "loss" in name or name.startswith("corr") or kind not in CURVES:
            extra.append((key, f"{split} {name}" if split not in ("train",) else name))
    return wanted + extra[:MAX_EXTRA_ROWS]


class MetricPanel(VerticalScroll):
    """A titled panel of MetricRows that grows as new metrics appear."""

    DEFAULT_CSS = """
    MetricPanel { height: auto; max-height: 100%; border: round $panel-lighten-2; padding: 0 1; }
    MetricPanel > .panel-note { color: $text-muted; }
    """

    def __init__(self, title: str, empty: str, **kwargs):
        super().__init__(**kwargs)
        self.border_title = title
        self.empty = empty
        self.rows: dict[str, MetricRow] = {}
        self.name_width = NAME_MIN

    def compose(self) -> ComposeResult:
        yield Static(self.empty, classes="panel-note", id="note")

    def clear_rows(self) -> None:
        for row in self.rows.values():
            row.remove()
        self.rows.clear()

    def ensure_rows(self, specs: list[tuple[str, str]], units: dict[str, str] | None = None) -> None:
        new = [
            MetricRow(key, label, (units or {}).get(key, ""), ref_key=reference_key(key))
            for key, label in specs
            if key not in self.rows
        ]
        for row in new:
            self.rows[row.key] = row
        width = min(NAME_MAX, max([NAME_MIN - 1, *(len(r.label) for r in self.rows.values())]) + 1)
        if new:
            self.mount_all(new)
        if new:
            self.name_width = width
            self.call_after_refresh(self._set_name_width)
        if new or not self.rows:
            set_display(self.query_one("#note", Static), not self.rows)

    def _set_name_width(self) -> None:
        for label in self.query(".metric-name"):
            if label.styles.width is None or label.styles.width.value != self.name_width:
                label.styles.width = self.name_width

    def show(self, snapshot: MetricsSnapshot, totals: dict[str, float] | None = None) -> None:
        for key, row in self.rows.items():
            ref = snapshot.series.get(row.ref_key) if row.ref_key else None
            row.show(snapshot.series.get(key), (totals or {}).get(key), ref.last if ref is not None else None)
