"""Real charts (textual-plotext) for the curves people would rather look at than read: loss,
reward, validation Sharpe against the baselines, equity and drawdown. Series arrive already
downsampled (`sources.ChartSource`); a chart redraws only when its data or its size changed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import MouseScrollDown, MouseScrollUp
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
        # two charts, two axes: on one axis a drawdown of a few per cent and an equity of a million
        # both drew as flat lines
        ChartSpec("chart-equity", "equity", (("live/equity", "equity"),)),
        ChartSpec("chart-drawdown", "drawdown from the peak", (), drawdown_of="live/equity"),
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


#: line colours, the same names in plotext and Rich: the legend under a chart matches its lines
PALETTE = ("cyan", "magenta", "green", "yellow", "red", "blue", "white")
#: markers that tell a run's metrics apart when its colour is the run's (compare view)
METRIC_MARKERS = ("braille", "•", "+", "x", "o")


def run_color(index: int) -> str:
    """The colour of the index-th run in the compare view (its key and its lines)."""
    return PALETTE[index % len(PALETTE)]


#: a chart this short keeps its legend below the plot (inside, it would cover the lines)
LEGEND_INSIDE_MIN_ROWS = 16


def tick_label(x: float) -> str:
    """A step on the x-axis as a person reads it: 49k, 1.2M."""
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.3g}M"
    if a >= 1e4:
        return f"{x / 1e3:.3g}k"
    return f"{x:.4g}"


def y_limits(values: Sequence[float]) -> tuple[float, float] | None:
    """Explicit limits for a flat or single-valued series (plotext draws those on an upside-down
    or empty axis); None lets plotext choose."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    if hi - lo > 1e-12 * max(1.0, abs(hi)):
        return None
    pad = max(abs(lo) * 0.1, 1e-6)
    return lo - pad, hi + pad


class Chart(PlotextPlot):
    """One plotext chart; `draw` replaces its lines and repaints only when they changed.

    Focus it (tab or a click) to read it closer: `f` fills the screen with it (escape restores),
    `+`/`-` or the mouse wheel zoom the x-axis, `←`/`→` pan, `0` shows everything again."""

    DEFAULT_CSS = """
    Chart { height: 12; min-height: 6; width: 1fr; border-bottom: blank; }
    Chart:focus { border-bottom: hkey $accent; }
    """
    ALLOW_MAXIMIZE = True
    can_focus = True
    BINDINGS = [
        Binding("f", "maximize_chart", "Full screen", show=False),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", show=False),
        Binding("minus", "zoom(2.0)", "Zoom out", show=False),
        Binding("left", "pan(-0.25)", "Pan left", show=False),
        Binding("right", "pan(0.25)", "Pan right", show=False),
        Binding("0", "zoom_reset", "Whole run", show=False),
    ]

    def __init__(self, title: str, **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.lines: dict[str, Points] = {}
        self.draws = 0
        #: the shown part of the x-range as fractions (0, 1) = everything
        self.window: tuple[float, float] = (0.0, 1.0)
        self._saved_height: Any = None
        self.line_styles: dict[str, tuple[str, str]] = {}

    # ---- drawing ------------------------------------------------------------------------
    def draw(self, lines: dict[str, Points], styles: dict[str, tuple[str, str]] | None = None) -> None:
        """`styles`: line -> (colour, marker) where the default (one colour per line, braille) would
        not say which run a line belongs to (the compare view: one colour per run)."""
        if lines == self.lines and (styles or {}) == self.line_styles:
            return
        self.lines = lines
        self.line_styles = dict(styles or {})
        self._render_lines()

    def on_resize(self) -> None:
        if self.lines and not any(k.startswith("bars:") for k in self.lines):
            self._render_lines()  # the legend moves inside or below with the height

    def _x_range(self) -> tuple[float, float] | None:
        xs = [float(x) for x_list, _ in self.lines.values() for x in x_list]
        return (min(xs), max(xs)) if xs else None

    def _render_lines(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.xlim(None, None)  # limits outlive clear_data: reset what the last draw set (ticks are
        plt.ylim(None, None)  # set again below whenever there is a line)
        plt.title(self.title)
        inside = (self.size.height or 12) >= LEGEND_INSIDE_MIN_ROWS or len(self.lines) <= 1
        full = self._x_range()
        lo = hi = None
        if full is not None and self.window != (0.0, 1.0):
            span = full[1] - full[0]
            lo, hi = full[0] + self.window[0] * span, full[0] + self.window[1] * span
        legend = []
        shown: list[float] = []
        for n, (label, (xs, ys)) in enumerate(self.lines.items()):
            color, marker = self.line_styles.get(label, (PALETTE[n % len(PALETTE)], "braille"))
            pts = [(x, y) for x, y in zip(xs, ys, strict=False) if lo is None or lo <= x <= hi]  # type: ignore[operator]
            if not pts:
                continue
            px, py = [p[0] for p in pts], [p[1] for p in pts]
            shown += py
            legend.append(f"[{color}]{'▪' if marker == 'braille' else marker} {label}[/]")
            kwargs = {"label": label} if inside else {}
            if len(px) == 1:
                plt.scatter(px, py, marker="dot", color=color, **kwargs)
            else:
                plt.plot(px, py, marker=marker, color=color, **kwargs)
        limits = y_limits(shown)
        if limits is not None:
            plt.ylim(*limits)
        xs_all = sorted({float(x) for x_list, _ in self.lines.values() for x in x_list})
        x0, x1 = (lo, hi) if lo is not None else ((xs_all[0], xs_all[-1]) if xs_all else (0.0, 0.0))
        if xs_all and x1 > x0:  # type: ignore[operator]
            ticks = [x0 + (x1 - x0) * k / 4 for k in range(5)]  # type: ignore[operator]
            if all(float(x).is_integer() for x in xs_all):  # steps and bars: whole numbers
                ticks = sorted({float(round(t)) for t in ticks})
            plt.xticks(ticks, [tick_label(t) for t in ticks])
            if lo is not None:
                plt.xlim(x0, x1)
        elif xs_all:  # one x: centre it
            plt.xticks([x0], [tick_label(x0)])
        zoom = "" if self.window == (0.0, 1.0) else f" [dim]x {tick_label(x0)}–{tick_label(x1)} (0: all)[/]"  # type: ignore[arg-type]
        self.border_subtitle = ("" if inside else "  ".join(legend)) + zoom
        self.draws += 1
        self.refresh()

    # ---- reading closer -------------------------------------------------------------------
    def action_maximize_chart(self) -> None:
        if self.screen.maximized is self:
            self.screen.minimize()
            self.restore_height()
        elif self.screen.maximize(self, container=False):
            # the panel sets each chart's height inline (it wins over the maximized style)
            self._saved_height = self.styles.height
            self.styles.height = "1fr"

    def restore_height(self) -> None:
        """Back to the height the panel gave it (after the screen stopped showing it maximized)."""
        if self._saved_height is not None:
            self.styles.height = self._saved_height
            self._saved_height = None

    def action_zoom(self, factor: float) -> None:
        lo, hi = self.window
        centre = (lo + hi) / 2 if factor > 1 else hi - (hi - lo) / 2  # zoom in keeps the newest half
        width = min(1.0, max(1 / 256, (hi - lo) * factor))
        if factor < 1:
            lo, hi = hi - width, hi
        else:
            lo, hi = centre - width / 2, centre + width / 2
        self._set_window(lo, hi)

    def action_pan(self, fraction: float) -> None:
        lo, hi = self.window
        shift = (hi - lo) * fraction
        self._set_window(lo + shift, hi + shift)

    def action_zoom_reset(self) -> None:
        self._set_window(0.0, 1.0)

    def _set_window(self, lo: float, hi: float) -> None:
        width = hi - lo
        if lo < 0:
            lo, hi = 0.0, width
        if hi > 1:
            lo, hi = max(0.0, 1 - width), 1.0
        if (lo, hi) != self.window:
            self.window = (lo, hi)
            if self.lines and not any(k.startswith("bars:") for k in self.lines):
                self._render_lines()

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        event.stop()
        self.action_zoom(0.5)

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        event.stop()
        self.action_zoom(2.0)

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
            styles: dict[str, tuple[str, str]] = {}
            for run_index, (run_label, snap) in enumerate(snaps.items()):
                own = spec.drawdown_of is not None and spec.drawdown_of not in dict(spec.lines)
                pts = snap.series.get(spec.drawdown_of) if own else None  # type: ignore[arg-type]
                if pts is not None and pts[0]:
                    lines[f"{run_label} drawdown".strip()] = (pts[0], drawdown(pts[1]))
                for key, label in spec.lines:
                    pts = snap.series.get(key)
                    if pts is None or not pts[0]:
                        continue
                    name = f"{run_label} {label}".strip() if len(snaps) > 1 else label
                    lines[name] = pts
                    if len(snaps) > 1:  # compare: the run's colour, one marker per metric
                        metric = [k for k, _ in spec.lines].index(key)
                        styles[name] = (run_color(run_index), METRIC_MARKERS[metric % len(METRIC_MARKERS)])
                    if spec.drawdown_of == key:
                        lines[f"{name} drawdown" if run_label else "drawdown"] = (pts[0], drawdown(pts[1]))
            chart = self.query_one(f"#{spec.id}", Chart)
            set_display(chart, bool(lines))
            if lines:
                any_shown = True
                chart.draw(lines, styles)
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
