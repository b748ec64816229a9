"""The `?` help screen: every key of the console, grouped by where it works. Esc, `?` or `q`
closes it (the command palette's "Keys" entry opens this same screen)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "everywhere",
        (
            ("?", "this help"),
            ("ctrl+p", "command palette (open a run, launch, stop all, clear the global kill-file)"),
            ("r", "refresh now (the same in every view)"),
            ("ctrl+q", "quit"),
        ),
    ),
    (
        "runs list",
        (
            ("⏎", "open the run under the cursor"),
            ("j / k, ↓ / ↑", "next / previous run"),
            ("g / G", "first / last run"),
            ("/", "filter by id, kind or state (esc clears)"),
            ("o / O", "sort by the next column / reverse (or click a column header)"),
            ("space", "mark a run for compare; c compares the marked runs (2 or more)"),
            ("n", "launch a run"),
            ("s / S", "STOP the run / stop all runs"),
            ("X", "remove the global kill-file (asks first)"),
            ("q", "quit (asks first; ctrl+q quits at once)"),
        ),
    ),
    (
        "run view",
        (
            ("q, esc", "back to the runs list"),
            (
                "1-6",
                "tabs: curves, checkpoints, logs, events, config; 6 is the run's own view "
                "(eval report, tune trials, live trading), where those runs open",
            ),
            ("s", "STOP this run"),
            ("PgUp/PgDn, Home/End", "scroll the tab (everything is reachable on small terminals)"),
            (
                "⚠ lines",
                "what is going wrong (never deciding, bad learning rate, loss jump, NaN, "
                "step rate collapse, stall, evaluation drop) and what would fix it",
            ),
        ),
    ),
    (
        "charts (tab to a chart, or click it)",
        (
            ("f", "fill the screen with the chart; f or esc restores it"),
            ("+ / -, mouse wheel", "zoom the steps axis in / out (zoom in keeps the newest half)"),
            ("← / →", "pan along the steps"),
            ("0", "the whole run again"),
        ),
    ),
    (
        "tune trials (tab 6)",
        (("⏎", "open the trial's own training run (the running trial too)"),),
    ),
    (
        "compare (c on the runs list)",
        (("q, esc", "back; the runs' curves are drawn on shared axes, one colour per run"),),
    ),
    (
        "mouse",
        (
            ("click", "select a row, a tab, a button (STOP asks first); a column header sorts"),
            ("wheel", "scroll a list or a tab; over a focused chart it zooms"),
        ),
    ),
    (
        "checkpoints tab",
        (
            ("j / k, g / G", "move between checkpoints"),
            ("v", "verify the checksum (kept in reports/verify.json; in memory only with --readonly)"),
            ("R", "resume from the checkpoint (verifies it first; r is refresh)"),
            ("d", "delete the checkpoint (asks first)"),
        ),
    ),
    (
        "live run",
        (("B", "reset the circuit breakers (asks first; not with --readonly)"),),
    ),
    (
        "--readonly",
        (("n s S X R d B", "refused with a one-line notice; nothing is written (READONLY in the title)"),),
    ),
)


def help_text() -> str:
    """Plain text of every key (tests, and the wide layout's source)."""
    lines: list[str] = []
    for title, keys in SECTIONS:
        lines.append(title)
        lines.extend(f"  {key:<20} {what}" for key, what in keys)
        lines.append("")
    return "\n".join(lines).rstrip()


def help_table() -> Table:
    """Two columns, the description wrapping inside its own column (at 80 columns too)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, style="b cyan", max_width=20)
    table.add_column(ratio=1)
    for n, (title, keys) in enumerate(SECTIONS):
        if n:
            table.add_row("", "")
        table.add_row(Text(title, style="bold default"), "")
        for key, what in keys:
            table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent 60%; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as scroll:
            scroll.border_title = "keys · esc closes"
            yield Static(help_table(), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help").focus()

    def action_close(self) -> None:
        self.dismiss(None)
