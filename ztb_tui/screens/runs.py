"""The runs list: every run under the artifacts folder, newest first, refreshed in place."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..fmt import STATE_STYLE, age, bar, duration, num, steps
from ..poller import Poller
from ..sources import RunRow
from ..widgets import cursor_key, set_display, set_text
from ..widgets.resources import HostBar

# fixed widths: columns never jump as values change (no flicker), and fit 80 columns
COLUMNS = (
    ("run", "run", 29),
    ("kind", "kind", 8),
    ("state", "state", 9),
    ("progress", "progress", 12),
    ("fps", "fps", 6),
    ("beat", "beat", 4),
)


def state_text(row: RunRow) -> Text:
    label = row.liveness
    return Text(label, style=STATE_STYLE.get(label, ""))


def progress_text(row: RunRow) -> Text:
    frac = row.progress
    if frac is None:
        return Text(f"{steps(row.step):>12}", style="dim")
    return Text(f"{bar(frac, 7)} {frac * 100:3.0f}%")


def cells(row: RunRow) -> list:
    fps = num(row.fps) if row.fps is not None else "-"
    return [row.run_id, row.kind, state_text(row), progress_text(row), fps, age(row.heartbeat_age_s)]


def detail_text(row: RunRow | None) -> str:
    if row is None:
        return ""
    total = f"/{row.total_steps:,}" if row.total_steps else ""
    pid = "-"
    if row.pid:
        pid = f"{row.pid} " + ("alive" if row.pid_alive else "gone" if row.pid_alive is False else "other host")
    eta = f" · ETA {duration(row.eta_s)}" if row.eta_s is not None else ""
    msg = f" · {row.message}" if row.message else ""
    return f"[b]{row.run_id}[/] step {row.step:,}{total}{eta} · pid {pid}{msg}"


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open", priority=False),
        Binding("n", "launch", "Launch"),
        Binding("s", "stop", "STOP"),
        Binding("S", "stop_all", "Stop all"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, RunRow] = {}
        self.poller: Poller | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="empty")
        table: DataTable = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static("", id="run-detail")
        yield HostBar(id="host")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        self.title = "ztb"
        self.sub_title = f"runs in {app.artifacts_label}"  # type: ignore[attr-defined]
        self.query_one("#empty", Static).display = False
        self.poller = Poller(
            self,
            "runs",
            app.runs_source.poll,
            self.apply,
            app.refresh_s,  # type: ignore[attr-defined]
            on_error=lambda e: self.notify(f"reading runs failed: {e}", severity="error"),
        )
        self.poller.start()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("launch", "stop", "stop_all") and self.app.readonly:  # type: ignore[attr-defined]
            return False
        return True

    # ---- data -------------------------------------------------------------------------
    def apply(self, rows: list[RunRow]) -> None:
        table = self.query_one("#runs", DataTable)
        new = {r.run_id: r for r in rows}
        empty = self.query_one("#empty", Static)
        if not rows:
            set_text(
                empty,
                f"[b]No runs yet[/] under {self.app.artifacts_label}.\n\n"  # type: ignore[attr-defined]
                + (
                    "Press [b]n[/] to launch one here, or start one from a shell:\n"
                    if not self.app.readonly  # type: ignore[attr-defined]
                    else "Start one from a shell:\n"
                )
                + "  ztb train --headless            PPO agent (configs/train.yaml)\n"
                "  ztb pretrain --headless         Stage 1 encoder\n"
                "  ztb live --dry-run              paper trading\n"
                "New runs appear here by themselves.",
            )
        set_display(empty, not rows)
        set_display(table, bool(rows))
        order_same = list(new) == list(self.rows)
        if not order_same:
            selected = self.selected_id()
            table.clear()
            for r in rows:
                table.add_row(*cells(r), key=r.run_id)
            if selected in new:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        else:
            for r in rows:
                if r != self.rows[r.run_id]:
                    for (_, key, _w), value in zip(COLUMNS, cells(r)):
                        table.update_cell(r.run_id, key, value)
        self.rows = new
        self._show_detail()
        if self.app.first_paint_at is None:  # type: ignore[attr-defined]
            self.call_after_refresh(self.app.mark_painted, "runs")  # type: ignore[attr-defined]
        self.app.runs_snapshot = rows  # type: ignore[attr-defined]

    def selected_id(self) -> str | None:
        return cursor_key(self.query_one("#runs", DataTable))

    def selected(self) -> RunRow | None:
        rid = self.selected_id()
        return self.rows.get(rid) if rid else None

    def _show_detail(self) -> None:
        set_text(self.query_one("#run-detail", Static), detail_text(self.selected()))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def on_screen_resume(self) -> None:
        if self.poller is not None:
            self.poller.poll_now()

    # ---- actions ----------------------------------------------------------------------
    def action_open(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.open_run(row.dir)  # type: ignore[attr-defined]

    def action_launch(self) -> None:
        self.app.action_launch()  # type: ignore[attr-defined]

    def action_stop(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no run selected", severity="warning")
            return
        self.app.confirm_stop(row.dir)  # type: ignore[attr-defined]

    def action_stop_all(self) -> None:
        self.app.action_stop_all()  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        if self.poller is not None:
            self.poller.poll_now()
