"""The `?` help screen: every key of the console, grouped by where it works. Esc, `?` or `q`
closes it (the command palette's "Keys" entry opens this same screen)."""

from __future__ import annotations

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
            ("q", "quit"),
        ),
    ),
    (
        "run view",
        (
            ("q, esc", "back to the runs list"),
            ("1-5", "tabs: curves, checkpoints, logs, events, config (more for eval/tune/live)"),
            ("s", "STOP this run"),
            ("PgUp/PgDn, Home/End", "scroll the tab (everything is reachable on small terminals)"),
        ),
    ),
    (
        "checkpoints tab",
        (
            ("j / k, g / G", "move between checkpoints"),
            ("v", "verify the checksum (the result is kept in reports/verify.json)"),
            ("R", "resume from the checkpoint (verifies it first; r is refresh)"),
            ("d", "delete the checkpoint (asks first)"),
        ),
    ),
    (
        "live run",
        (("B", "reset the circuit breakers (asks first; not with --readonly)"),),
    ),
)


def help_text() -> str:
    lines: list[str] = []
    for title, keys in SECTIONS:
        lines.append(f"[b]{title}[/]")
        lines.extend(f"  [b cyan]{key:<20}[/] {what}" for key, what in keys)
        lines.append("")
    return "\n".join(lines).rstrip()


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
            yield Static(help_text(), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help").focus()

    def action_close(self) -> None:
        self.dismiss(None)
