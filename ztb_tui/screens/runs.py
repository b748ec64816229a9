"""The runs list: every run under the artifacts folder, refreshed in place; sortable, filterable,
with columns chosen for the terminal's width (the rest is in the detail line below)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from ztb_core.runs import RunSummary

from ..context import context
from ..fmt import STATE_STYLE, age, bar, duration, num, steps
from ..health import Flag, summary_text
from ..messages import (
    ClearGlobalStopRequested,
    LaunchRequested,
    OpenCompare,
    OpenRun,
    Painted,
    RunsListed,
    StopAllRequested,
    StopRequested,
)
from ..poller import Poller
from ..prefs import PrefsError, RunsListPrefs
from ..prefs import load as load_prefs
from ..prefs import save as save_prefs
from ..widgets import NavTable, cursor_key, set_display, set_text
from ..widgets.resources import HostBar
from .confirm import ConfirmScreen


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    min_terminal: int  # shown from this terminal width up


# Fixed widths: columns never jump as values change (no flicker). Narrow terminals drop the
# right-hand columns (their values are in the detail line); the run id is never cut.
COLUMNS = (
    Column("run", "run", 29, 0),
    Column("kind", "kind", 8, 72),
    Column("state", "state", 9, 0),
    Column("progress", "progress", 12, 0),
    Column("fps", "fps", 6, 80),
    Column("beat", "beat", 4, 80),
    Column("eta", "ETA", 8, 100),
    Column("message", "message", 30, 130),
)
#: seconds after the first paint before the list reads its runs' metrics for warnings
HEALTH_DELAY_S = 2.0
SORT_KEYS = ("created", "run", "kind", "state", "progress", "fps", "beat", "eta")


def state_text(row: RunSummary) -> Text:
    label = row.liveness
    return Text(label, style=STATE_STYLE.get(label, ""))


def completed_early(row: RunSummary) -> bool:
    """A run that completed before its planned total (a pretrain fast-dev-run: one batch of 300)."""
    return row.state == "completed" and bool(row.total_steps) and row.step < (row.total_steps or 0)


def progress_text(row: RunSummary) -> Text:
    if completed_early(row):
        return Text(f"{'done ' + steps(row.step):>12}", style="cyan")
    frac = row.progress
    if frac is None:
        return Text(f"{steps(row.step):>12}", style="dim")
    return Text(f"{bar(frac, 7)} {frac * 100:3.0f}%")


def cell(row: RunSummary, key: str) -> str | Text:
    if key == "run":
        return row.run_id
    if key == "kind":
        return row.kind
    if key == "state":
        return state_text(row)
    if key == "progress":
        return progress_text(row)
    if key == "fps":
        return num(row.fps) if row.fps is not None else "-"
    if key == "beat":
        return age(row.heartbeat_age_s)
    if key == "eta":
        return duration(row.eta_s) if row.eta_s is not None else "-"
    if key == "message":
        return row.message or ""
    raise KeyError(key)


def cells(row: RunSummary) -> list:
    """The cells of the 80-column layout (kept for tests and callers that want every column)."""
    return [cell(row, c.key) for c in COLUMNS if c.min_terminal <= 80]


def sort_value(row: RunSummary, key: str) -> tuple:
    if key == "created":
        return (row.created_at or "", row.run_id)
    if key == "progress":
        return (row.progress if row.progress is not None else -1.0, row.step)
    if key in ("fps", "beat", "eta"):
        value = {"fps": row.fps, "beat": row.heartbeat_age_s, "eta": row.eta_s}[key]
        return (value is not None, value or 0.0)
    if key == "state":
        return (row.liveness,)
    return (str(getattr(row, "run_id" if key == "run" else key)),)


def matches(row: RunSummary, text: str) -> bool:
    text = text.strip().lower()
    return not text or any(text in v.lower() for v in (row.run_id, row.kind, row.liveness, row.message or ""))


def detail_text(row: RunSummary | None) -> str:
    if row is None:
        return ""
    total = f"/{row.total_steps:,}" if row.total_steps else ""
    pid = "-"
    if row.pid:
        pid = f"{row.pid} " + ("alive" if row.pid_alive else "gone" if row.pid_alive is False else "other host")
    eta = f" · ETA {duration(row.eta_s)}" if row.eta_s is not None else ""
    fps = f" · {num(row.fps)} steps/s" if row.fps is not None else ""
    msg = f" · {row.message}" if row.message else ""
    return f"[b]{row.run_id}[/] {row.kind} · step {row.step:,}{total}{fps}{eta} · pid {pid}{msg}"


def global_stop_text(path: Path | None) -> str:
    if path is None:
        return ""
    return (
        f"[b]⚠ global kill-file present[/] {path}: every run stops, and a new run stops at step 0 · [b]X[/] removes it"
    )


class RunsTable(NavTable):
    # The table's own enter binding is hidden in Textual; this one keeps "⏎ Open" in the footer.
    BINDINGS = [Binding("enter", "select_cursor", "Open")]


class RunsScreen(Screen):
    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("question_mark", "app.help", "Help"),  # early: the footer is cut at 80 columns
        Binding("n", "launch", "Launch"),
        Binding("s", "stop", "STOP"),
        Binding("S", "stop_all", "Stop all"),
        Binding("r", "refresh", "Refresh"),
        Binding("slash", "filter", "Filter"),
        Binding("o", "sort", "Sort"),
        Binding("O", "sort_reverse", "Reverse", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("c", "compare", "Compare", show=False),
        Binding("X", "clear_global_stop", "Clear kill-file", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, RunSummary] = {}  # shown, in order
        self.all_rows: list[RunSummary] = []
        self.poller: Poller | None = None
        self.health_poller: Poller | None = None
        self.health_started = False
        self.filter_text = ""
        self.sort_key = "created"
        self.sort_reverse = True  # newest first
        self.marked: set[str] = set()
        self.flags: dict[str, tuple[Flag, ...]] = {}  # run id -> its warnings (health.HealthSource)
        self.global_stop: Path | None = None
        self._columns: tuple[Column, ...] = ()
        self._painted = False

    def compose(self) -> ComposeResult:
        yield Header()
        hidden = [
            Static("", id="global-stop"),
            Input(placeholder="filter: id, kind or state · enter keeps it · esc clears", id="filter"),
            Static("", id="empty"),
        ]
        for widget in hidden:
            widget.display = False
            yield widget
        yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-detail")
        yield HostBar(id="host")
        yield Footer()

    def on_mount(self) -> None:
        app = context(self)
        self.title = app.badge("ztb")
        self.sub_title = f"runs in {app.artifacts_label}"
        self._recall()
        self._set_columns(self.size.width or 80)
        source = app.runs_source
        self.poller = Poller(
            self,
            "runs",
            lambda: (source.poll(), source.global_stop()),
            self.apply,
            app.refresh_s,
            on_error=lambda e: self.notify(f"reading runs failed: {e}", severity="error"),
        )
        self.poller.start()
        self.health_poller = Poller(
            self,
            "health",
            self._poll_health,
            self.apply_health,
            max(app.refresh_s, 2.0),
            on_error=lambda e: self.notify(f"reading run health failed: {e}", severity="error"),
        )

    # ---- remembered between starts (prefs.py says where and why) ------------------------
    def _recall(self) -> None:
        app = context(self)
        try:
            saved = load_prefs(app.prefs_path, app.artifacts, SORT_KEYS)
        except PrefsError as exc:
            saved = RunsListPrefs()
            self.notify(f"console preferences ignored: {exc}", severity="warning", timeout=8)
        self.sort_key, self.sort_reverse, self.marked = saved.sort_key, saved.sort_reverse, set(saved.marked)

    def _remember(self) -> None:
        app = context(self)
        if app.readonly:
            return  # a read-only console writes nothing at all
        try:
            save_prefs(
                app.prefs_path, app.artifacts, RunsListPrefs(self.sort_key, self.sort_reverse, frozenset(self.marked))
            )
        except OSError as exc:
            self.notify(f"cannot save console preferences: {exc}", severity="warning", timeout=6)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("launch", "stop", "stop_all", "clear_global_stop") and context(self).readonly:
            return False
        return True

    # ---- layout -----------------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        self._set_columns(event.size.width)

    def _set_columns(self, width: int) -> None:
        cols = tuple(c for c in COLUMNS if c.min_terminal <= width)
        if cols == self._columns:
            return
        self._columns = cols
        table = self.query_one("#runs", DataTable)
        selected = self.selected_id()  # rebuilding the columns drops the cursor: keep the run under it
        table.clear(columns=True)
        for c in cols:
            table.add_column(self._label(c), key=c.key, width=c.width)
        self.rows = {}
        self._render_rows()
        if selected in self.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
            self._show_detail()

    def _label(self, c: Column) -> str:
        if c.key == self.sort_key:
            return f"{c.label} {'▼' if self.sort_reverse else '▲'}"
        return c.label

    # ---- data -------------------------------------------------------------------------
    def apply(self, result: tuple[list[RunSummary], Path | None]) -> None:
        rows, global_stop = result
        app = context(self)
        self.all_rows = rows
        if rows:
            self.marked &= {r.run_id for r in rows}  # a remembered mark of a run since removed
        self.global_stop = global_stop
        banner = self.query_one("#global-stop", Static)
        set_text(banner, global_stop_text(global_stop))
        set_display(banner, global_stop is not None)
        empty = self.query_one("#empty", Static)
        if not rows:
            set_text(
                empty,
                f"[b]No runs yet[/] under {app.artifacts_label}.\n\n"
                + (
                    "Press [b]n[/] to launch one here, or start one from a shell:\n"
                    if not app.readonly
                    else "Start one from a shell:\n"
                )
                + "  ztb train --headless            PPO agent (configs/train.yaml)\n"
                "  ztb pretrain --headless         Stage 1 encoder\n"
                "  ztb live --dry-run              paper trading\n"
                "New runs appear here by themselves.",
            )
        set_display(empty, not rows)
        set_display(self.query_one("#runs", DataTable), bool(rows))
        self._render_rows()
        if not self._painted:
            self._painted = True
            self.call_after_refresh(lambda: self.post_message(Painted("runs", time.time())))
        if self.health_poller is not None and not self.health_started:
            # the warnings read each run's recent metrics: after the list is on screen, not before it
            self.health_started = True
            # a few seconds later still: a run opened right away reads its own files first
            self.health_poller.start(delay=HEALTH_DELAY_S)
        self.post_message(RunsListed(rows))

    def _poll_health(self) -> dict[str, tuple[Flag, ...]]:
        return context(self).runs_source.health(list(self.all_rows))

    def apply_health(self, flags: dict[str, tuple[Flag, ...]]) -> None:
        if flags == self.flags:
            return
        self.flags = flags
        self.rows = {}  # the marks changed: redraw every row
        self._render_rows()

    def visible_rows(self) -> list[RunSummary]:
        shown = [r for r in self.all_rows if matches(r, self.filter_text)]
        return sorted(shown, key=lambda r: sort_value(r, self.sort_key), reverse=self.sort_reverse)

    def _row_cells(self, r: RunSummary) -> list:
        out = [cell(r, c.key) for c in self._columns]
        warn = r.run_id in self.flags
        if r.run_id in self.marked or warn:
            prefix = ("● " if r.run_id in self.marked else "") + ("⚠ " if warn else "")
            out[0] = Text(prefix + r.run_id, style="bold yellow" if warn else "bold")
        return out

    def _render_rows(self) -> None:
        table = self.query_one("#runs", DataTable)
        rows = self.visible_rows()
        new = {r.run_id: r for r in rows}
        if list(new) != list(self.rows):
            selected = self.selected_id()
            table.clear()
            for r in rows:
                table.add_row(*self._row_cells(r), key=r.run_id)
            if selected in new:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        else:
            for r in rows:
                if r != self.rows[r.run_id]:
                    for c, value in zip(self._columns, self._row_cells(r), strict=True):
                        table.update_cell(r.run_id, c.key, value)
        self.rows = new
        self._show_detail()

    def selected_id(self) -> str | None:
        return cursor_key(self.query_one("#runs", DataTable))

    def selected(self) -> RunSummary | None:
        rid = self.selected_id()
        return self.rows.get(rid) if rid else None

    def _show_detail(self) -> None:
        extra = (
            f"  [dim]filter: {self.filter_text!r} ({len(self.rows)}/{len(self.all_rows)})[/]"
            if self.filter_text
            else ""
        )
        marked = f"  [b]{len(self.marked)} marked[/] (c compares)" if self.marked else ""
        row = self.selected()
        warn = summary_text(self.flags.get(row.run_id, ())) if row is not None else ""
        warn = f"\n[yellow]{escape(warn)}[/]" if warn else ""
        set_text(self.query_one("#run-detail", Static), detail_text(row) + extra + marked + warn)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORT_KEYS:
            self._sort_by(key, not self.sort_reverse if key == self.sort_key else key in ("created", "progress"))

    def on_screen_resume(self) -> None:
        if self.poller is not None:
            self.poller.poll_now()
        if self.health_poller is not None and self.health_started:
            self.health_poller.poll_now()

    # ---- filter -----------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value
            self._render_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            set_display(event.input, bool(self.filter_text))
            self.query_one("#runs", DataTable).focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display or self.filter_text:
            box.value = ""
            self.filter_text = ""
            box.display = False
            self.query_one("#runs", DataTable).focus()
            self._render_rows()

    # ---- sorting ----------------------------------------------------------------------
    def _sort_by(self, key: str, reverse: bool) -> None:
        self.sort_key, self.sort_reverse = key, reverse
        self._columns = ()  # rebuilt with the ▲/▼ on the sorted column
        self._set_columns(self.size.width or 80)
        self._remember()
        self.notify(f"sorted by {key} {'descending' if reverse else 'ascending'}", timeout=2)

    def action_sort(self) -> None:
        keys = [k for k in SORT_KEYS if k == "created" or any(c.key == k for c in self._columns)]
        nxt = keys[(keys.index(self.sort_key) + 1) % len(keys)] if self.sort_key in keys else keys[0]
        self._sort_by(nxt, nxt in ("created", "progress"))

    def action_sort_reverse(self) -> None:
        self._sort_by(self.sort_key, not self.sort_reverse)

    # ---- actions ----------------------------------------------------------------------
    def action_open(self) -> None:
        row = self.selected()
        if row is not None:
            self.post_message(OpenRun(row.dir))

    def action_launch(self) -> None:
        self.post_message(LaunchRequested())

    def action_quit(self) -> None:
        """`q` asks (one stray key must not close the console); ctrl+q quits at once."""

        def go(yes: bool | None) -> None:
            if yes:
                self.app.exit()

        self.app.push_screen(
            ConfirmScreen(
                "Quit the console?",
                "Runs keep going; `ztb tui` attaches again. (ctrl+q quits without asking.)",
                yes="Quit",
                danger=False,
            ),
            go,
        )

    def action_stop(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no run selected", severity="warning")
            return
        self.post_message(StopRequested(row.dir))

    def action_stop_all(self) -> None:
        self.post_message(StopAllRequested())

    def action_clear_global_stop(self) -> None:
        self.post_message(ClearGlobalStopRequested())

    def action_refresh(self) -> None:
        if self.poller is not None:
            self.poller.poll_now()

    def action_mark(self) -> None:
        rid = self.selected_id()
        if rid is None:
            return
        self.marked ^= {rid}
        if rid in self.rows:
            self.query_one("#runs", DataTable).update_cell(rid, "run", self._row_cells(self.rows[rid])[0])
        self._show_detail()
        self._remember()

    def action_compare(self) -> None:
        chosen = [r.dir for r in self.all_rows if r.run_id in self.marked]
        if len(chosen) < 2:
            self.notify("mark two or more runs with space, then press c", severity="warning")
            return
        self.post_message(OpenCompare(chosen))
