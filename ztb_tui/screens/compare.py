"""Compare two or more runs: their curves overlaid on the same axes, by step. Runs are named
A, B, C… in the legends (a run id is too long for a chart legend); the key is at the top."""

from __future__ import annotations

import string
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ztb_core.runs import RunReader

from ..context import context
from ..poller import Poller
from ..sources import ChartSnapshot, ChartSource
from ..widgets.charts import CHARTS, ChartsPanel, ChartSpec, run_color


def compare_specs(kinds: list[str]) -> list[ChartSpec]:
    """The charts of every kind compared, each once (by chart id, first kind wins)."""
    specs: dict[str, ChartSpec] = {}
    for kind in kinds:
        for spec in CHARTS.get(kind, ()):
            specs.setdefault(spec.id, spec)
    return list(specs.values())


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape,q", "back", "Runs"),
        Binding("r", "refresh", "Refresh"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, run_dirs: list[Path]):
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.labels = {d.name: string.ascii_uppercase[i % 26] for i, d in enumerate(self.run_dirs)}
        self.kinds = [str(RunReader(d).info().get("kind", "?")) for d in self.run_dirs]
        self.sources = {d.name: ChartSource(d) for d in self.run_dirs}
        self.poller: Poller | None = None
        self.snaps: dict[str, ChartSnapshot] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        # each run's letter in the colour of its lines (charts.run_color)
        key = "  ".join(
            f"[b {run_color(i)}]{self.labels[d.name]}[/] {d.name} ({k})"
            for i, (d, k) in enumerate(zip(self.run_dirs, self.kinds, strict=True))
        )
        yield Static(key, id="compare-key")
        with VerticalScroll(id="compare-scroll"):
            yield ChartsPanel(compare_specs(self.kinds), id="compare-charts")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "ztb · compare"
        self.sub_title = f"{len(self.run_dirs)} runs"
        self._fit(self.size.height or 24)
        self.poller = Poller(self, "compare", self._poll, self.apply, context(self).refresh_s).start()
        self.query_one("#compare-scroll").focus()

    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        self.query_one("#compare-charts", ChartsPanel).set_chart_height(max(8, (height - 6) // 2))

    def _poll(self) -> dict[str, ChartSnapshot]:
        return {self.labels[name]: src.poll() for name, src in self.sources.items()}

    def apply(self, snaps: dict[str, ChartSnapshot]) -> None:
        versions = {k: s.version for k, s in snaps.items()}
        if versions == {k: s.version for k, s in self.snaps.items()}:
            return
        self.snaps = snaps
        self.query_one("#compare-charts", ChartsPanel).show_runs(snaps)

    def on_screen_resume(self) -> None:
        if self.poller is not None:
            self.poller.poll_now()

    def on_unmount(self) -> None:
        if self.poller is not None:
            self.poller.stop()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_refresh(self) -> None:
        if self.poller is not None:
            self.poller.poll_now()
