"""Real charts (textual-plotext) for the curves people would rather look at than read: loss,
reward, validation Sharpe against the baselines, equity and drawdown. Series arrive already
downsampled (`sources.ChartSource`); a chart redraws only when its data or its size changed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    #: grouped bars of the newest values instead of lines over steps: (category, ((key, legend), ...)),
    #: e.g. per timeframe the model's correlation beside the best naive filler's
    bars: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


PRETRAIN_TIMEFRAMES = ("M1", "M5", "M15", "H1", "H4", "D")


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
    "pretrain": (
        ChartSpec("chart-loss", "loss", (("train/loss", "train"), ("val/loss", "val"))),
        ChartSpec(
            "chart-corr",
            "return correlation inside masked spans, newest validation",
            (),
            bars=tuple(
                (tf, ((f"val/corr_interior_{tf}", "model"), (f"val/corr_interior_baseline_{tf}", "best naive")))
                for tf in PRETRAIN_TIMEFRAMES
            ),
        ),
    ),
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

    def draw_bars(self, categories: Sequence[str], groups: Mapping[str, Sequence[float]]) -> None:
        """Grouped bars: one group per category, one bar per series (`groups`: legend -> heights)."""
        lines = {f"bars:{label}": (tuple(categories), tuple(values)) for label, values in groups.items()}
        if lines == self.lines:
            return
        self.lines = lines  # type: ignore[assignment]
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        if groups:
            # plotext takes `labels` (its type stub says `label`)
            plt.multiple_bar(list(categories), [list(v) for v in groups.values()], labels=list(groups))  # type: ignore[call-arg]
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
            if spec.bars:
                any_shown |= self._show_bars(spec, snaps)
                continue
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

    def _show_bars(self, spec: ChartSpec, snaps: dict[str, ChartSnapshot]) -> bool:
        """The newest value of each bar's metric (the first run's, in the compare view)."""
        snap = next(iter(snaps.values()), None)
        categories: list[str] = []
        groups: dict[str, list[float]] = {}
        for category, keys in spec.bars if snap is not None else ():
            got = [(label, snap.series.get(key)) for key, label in keys]  # type: ignore[union-attr]
            if not all(pts is not None and pts[1] for _, pts in got):
                continue
            categories.append(category)
            for label, pts in got:
                groups.setdefault(label, []).append(pts[1][-1])  # type: ignore[index]
        chart = self.query_one(f"#{spec.id}", Chart)
        set_display(chart, bool(categories))
        if categories:
            chart.draw_bars(categories, groups)
        return bool(categories)

    def set_chart_height(self, rows: int) -> None:
        for chart in self.query(Chart):
            if chart.styles.height is None or chart.styles.height.value != rows:
                chart.styles.height = rows
