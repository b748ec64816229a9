"""Real charts (textual-plotext) for the curves people would rather look at than read: loss,
reward, validation Sharpe against the baselines, equity and drawdown. Series arrive already
downsampled (`sources.ChartSource`); a chart redraws only when its data or its size changed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ..sources import ChartSnapshot
from . import set_display

Points = tuple[Sequence[float], Sequence[float]]


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    lines: tuple[tuple[str, str], ...]  # (split/name, legend label); a line shows once its metric exists
    drawdown_of: str | None = None  # also draw the drawdown of this equity series


def _sharpe_lines(split: str) -> tuple[tuple[str, str], ...]:
    return (
        (f"{split}/sharpe", "agent"),
        (f"{split}/buy_and_hold_sharpe", "buy & hold"),
        (f"{split}/sma_crossover_sharpe", "SMA cross"),
        (f"{split}/ridge_sharpe", "ridge"),
        (f"{split}/strongest_baseline_sharpe", "strongest baseline"),
    )


CHARTS: dict[str, tuple[ChartSpec, ...]] = {
    "train": (
        ChartSpec("chart-reward", "episode reward", (("train/ep_rew_mean", "ep reward"),)),
        ChartSpec(
            "chart-loss",
            "loss",
            (("train/policy_loss", "policy"), ("train/value_loss", "value"), ("train/loss", "total")),
        ),
        ChartSpec("chart-sharpe", "validation Sharpe vs baselines", _sharpe_lines("val") + _sharpe_lines("test")),
        ChartSpec("chart-psr", "PSR / DSR (probability)", (("val/psr", "PSR"), ("val/dsr", "DSR"))),
        ChartSpec(
            "chart-equity",
            "validation return / drawdown",
            (("val/total_return", "return"), ("val/max_drawdown", "max DD")),
        ),
    ),
    "pretrain": (ChartSpec("chart-loss", "loss", (("train/loss", "train"), ("val/loss", "val"))),),
    "live": (
        ChartSpec("chart-equity", "equity and drawdown", (("live/equity", "equity"),), drawdown_of="live/equity"),
        ChartSpec("chart-pnl", "P&L", (("live/pnl", "P&L"),)),
    ),
    "tune": (ChartSpec("chart-trials", "trial scores", (("trial/value", "score"),)),),
}


def drawdown(values: Sequence[float]) -> list[float]:
    """Drawdown from the running peak, as a fraction (0 at a new high, negative below it)."""
    out: list[float] = []
    peak = -math.inf
    for v in values:
        peak = max(peak, v)
        out.append(v / peak - 1.0 if peak > 0 else 0.0)
    return out


class Chart(PlotextPlot):
    """One plotext chart; `draw` replaces its lines and repaints only when they changed."""

    DEFAULT_CSS = "Chart { height: 12; min-height: 6; width: 1fr; }"

    def __init__(self, title: str, **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.lines: dict[str, Points] = {}
        self.draws = 0

    def draw(self, lines: dict[str, Points]) -> None:
        if lines == self.lines:
            return
        self.lines = lines
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        for label, (xs, ys) in lines.items():
            if len(xs) == 1:
                plt.scatter(list(xs), list(ys), label=label, marker="dot")
            elif xs:
                plt.plot(list(xs), list(ys), label=label, marker="braille")
        self.draws += 1
        self.refresh()


class ChartsPanel(Vertical):
    """The charts of one run kind (or a custom set); a chart appears once one of its lines has
    data. `overlay` draws several runs' series on the same axes (the compare view)."""

    DEFAULT_CSS = """
    ChartsPanel { height: auto; }
    ChartsPanel > .chart-note { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, specs: Sequence[ChartSpec], **kwargs):
        super().__init__(**kwargs)
        self.specs = tuple(specs)
        self.version = -1

    def compose(self) -> ComposeResult:
        yield Static("charts: reading the run's history…", classes="chart-note", id="chart-note")
        for spec in self.specs:
            chart = Chart(spec.title, id=spec.id)
            chart.display = False
            yield chart

    def show(self, snap: ChartSnapshot) -> None:
        if snap.version == self.version:
            return
        self.version = snap.version
        self.show_runs({"": snap})

    def show_runs(self, snaps: dict[str, ChartSnapshot]) -> None:
        """Draw each chart from one or more runs (`label -> snapshot`; "" for a single run)."""
        any_shown = False
        for spec in self.specs:
            lines: dict[str, Points] = {}
            for run_label, snap in snaps.items():
                for key, label in spec.lines:
                    pts = snap.series.get(key)
                    if pts is None or not pts[0]:
                        continue
                    name = f"{run_label} {label}".strip() if len(snaps) > 1 else label
                    lines[name] = pts
                    if spec.drawdown_of == key:
                        lines[f"{name} drawdown" if run_label else "drawdown"] = (pts[0], drawdown(pts[1]))
            chart = self.query_one(f"#{spec.id}", Chart)
            set_display(chart, bool(lines))
            if lines:
                any_shown = True
                chart.draw(lines)
        note = self.query_one("#chart-note", Static)
        set_display(note, not any_shown)
        if not any_shown:
            note.update("charts: no charted metrics yet")

    def set_chart_height(self, rows: int) -> None:
        for chart in self.query(Chart):
            if chart.styles.height is None or chart.styles.height.value != rows:
                chart.styles.height = rows
