"""The run view: status + progress + the big red STOP, then tabs for curves and resources,
checkpoints, logs, events and the resolved config. Every panel is fed by its own poller."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Log, ProgressBar, RichLog, Static, TabbedContent, TabPane

from ztb_core.runs import FINAL_STATES, RunReader

from ..fmt import STATE_STYLE, clock_time, duration, num, size, steps
from ..launching import launch_output
from ..poller import Poller
from ..sources import (
    CheckpointRow,
    CheckpointsSource,
    EventsSource,
    LogsSource,
    MetricsSnapshot,
    MetricsSource,
    RunRow,
    TailLines,
    event_severity,
    event_text,
)
from ..widgets import cursor_key, set_display, set_text
from ..widgets.metrics import MetricPanel, curve_keys
from ..widgets.resources import HostBar, ResourcesPanel

TABS = ("tab-overview", "tab-checkpoints", "tab-logs", "tab-events", "tab-config")
CKPT_COLUMNS = (
    ("step", "step", 9),
    ("saved (UTC)", "time", 19),
    ("size", "size", 9),
    ("ratio", "ratio", 5),
    ("checksum", "check", 12),
    ("file", "file", None),
)
SEVERITY_STYLE = {"alert": "bold red", "notice": "yellow", "info": ""}


class RunScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Runs"),
        Binding("s", "stop", "STOP"),
        Binding("1", "show_tab('tab-overview')", "Curves", show=False),
        Binding("2", "show_tab('tab-checkpoints')", "Ckpts", show=False),
        Binding("3", "show_tab('tab-logs')", "Logs", show=False),
        Binding("4", "show_tab('tab-events')", "Events", show=False),
        Binding("5", "show_tab('tab-config')", "Config", show=False),
        Binding("v", "verify", "Verify"),
        Binding("r", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
    ]

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.reader = RunReader(self.run_dir)
        self.kind = str(self.reader.info().get("kind", "?"))
        self.row: RunRow | None = None
        self.metrics = MetricsSource(self.run_dir)
        self.checkpoints = CheckpointsSource(self.run_dir)
        self.logs = LogsSource(self.run_dir, launch_output(self.app_artifacts(), self.run_dir.name))
        self.events = EventsSource(self.run_dir)
        self.snapshot: MetricsSnapshot | None = None
        self.ckpt_rows: dict[str, CheckpointRow] = {}
        self.verified: dict[str, tuple[bool, str]] = {}
        self.pollers: list[Poller] = []
        self.alerts = 0
        self.painted_at: float | None = None

    def app_artifacts(self) -> Path:
        # the run folder is <artifacts>/runs/<run_id>
        return self.run_dir.parent.parent

    # ---- layout -----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runbar"):
            with Vertical(id="runinfo"):
                yield Static(self.run_dir.name, id="run-title")
                with Horizontal(id="progress-line"):
                    yield ProgressBar(total=1, show_eta=False, id="progress")
                    yield Static("", id="eta")
            yield Button("■ STOP", id="stop", variant="error")
        with TabbedContent(id="tabs"):
            with TabPane("1 Curves", id="tab-overview"):
                with Horizontal(id="overview"):
                    yield MetricPanel("training curves", "no training metrics yet", id="curves")
                    with Vertical(id="res-col"):
                        yield HostBar(id="host")
                        yield ResourcesPanel(id="resources")
            with TabPane("2 Checkpoints", id="tab-checkpoints"):
                table: DataTable = DataTable(id="checkpoints", cursor_type="row")
                for label, key, width in CKPT_COLUMNS:
                    table.add_column(label, key=key, width=width)
                yield table
                yield Static("no checkpoints yet", id="ckpt-empty")
            with TabPane("3 Logs", id="tab-logs"):
                yield Log(id="log", max_lines=5000)
            with TabPane("4 Events", id="tab-events"):
                yield RichLog(id="events", max_lines=2000, wrap=True, markup=False)
            with TabPane("5 Config", id="tab-config"):
                with VerticalScroll():
                    yield Static(Text(self.reader.config_text() or "(no config.yaml)"), id="config")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        self.title = f"ztb · {self.kind}"
        self.sub_title = self.run_dir.name
        if app.readonly:  # type: ignore[attr-defined]
            self.query_one("#stop", Button).display = False
        self.query_one("#checkpoints", DataTable).display = False
        self._layout_for(self.size.width)
        every = app.refresh_s  # type: ignore[attr-defined]
        err = self._poll_error
        self.pollers = [
            Poller(self, "status", lambda: app.runs_source.one(self.run_dir), self.apply_status, every, err),  # type: ignore[attr-defined]
            Poller(self, "metrics", self.metrics.poll, self.apply_metrics, every, err),
            Poller(self, "checkpoints", self.checkpoints.poll, self.apply_checkpoints, every, err),
            Poller(self, "logs", self.logs.poll, self.apply_logs, every, err),
            Poller(self, "events", self.events.poll, self.apply_events, every, err),
        ]
        for p in self.pollers:
            p.start()

    def on_screen_resume(self) -> None:
        for p in self.pollers:
            p.poll_now()

    def on_unmount(self) -> None:
        for p in self.pollers:
            p.stop()
        self.logs.close()

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        # side by side when there is room, stacked on an 80-column terminal
        self.query_one("#overview").set_class(width >= 120, "-wide")

    def _poll_error(self, exc: BaseException) -> None:
        self.notify(f"{self.run_dir.name}: {exc.__class__.__name__}: {exc}", severity="error", timeout=5)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "resume", "delete") and self.app.readonly:  # type: ignore[attr-defined]
            return False
        if action in ("verify", "resume", "delete"):
            try:
                on_ckpts = self.query_one("#tabs", TabbedContent).active == "tab-checkpoints"
            except Exception:
                return False
            return True if on_ckpts else None
        return True

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()

    # ---- pollers ----------------------------------------------------------------------
    def apply_status(self, row: RunRow) -> None:
        if row == self.row:
            return
        self.row = row
        style = STATE_STYLE.get(row.liveness, "")
        pid = (
            f"pid {row.pid}" + ("" if row.pid_alive else " (gone)" if row.pid_alive is False else " (other host)")
            if row.pid
            else "no pid"
        )
        msg = f" · {row.message}" if row.message else ""
        set_text(
            self.query_one("#run-title", Static),
            f"[b]{row.run_id}[/] · {row.kind} · [{style}]{row.liveness}[/] · {pid}{msg}"
            if style
            else f"[b]{row.run_id}[/] · {row.kind} · {row.liveness} · {pid}{msg}",
            layout=False,
        )
        bar = self.query_one("#progress", ProgressBar)
        # live runs have no total: no bar, just the step
        set_display(bar, bool(row.total_steps))
        if row.total_steps:
            bar.update(total=row.total_steps, progress=min(row.step, row.total_steps))
        total = f"/{steps(row.total_steps)}" if row.total_steps else ""
        eta = f" · ETA {duration(row.eta_s)}" if row.eta_s is not None else ""
        fps = f" · {num(row.fps)} steps/s" if row.fps else ""
        set_text(self.query_one("#eta", Static), f"{steps(row.step)}{total}{fps}{eta}", layout=False)
        button = self.query_one("#stop", Button)
        final = row.state in FINAL_STATES or row.liveness == "dead"
        if button.disabled != final:
            button.disabled = final
            button.label = "■ STOP" if not final else row.liveness

    def apply_metrics(self, snap: MetricsSnapshot) -> None:
        if self.snapshot is not None and not snap.reset and snap.rows_read == self.snapshot.rows_read:
            return  # nothing new
        self.snapshot = snap
        curves = self.query_one("#curves", MetricPanel)
        if snap.reset:
            curves.clear_rows()
        curves.ensure_rows(curve_keys(self.kind, snap))
        curves.show(snap)
        self.query_one("#resources", ResourcesPanel).update_from(snap)
        if self.painted_at is None:
            self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        import time

        self.painted_at = time.time()
        self.app.mark_painted(f"run:{self.run_dir.name}")  # type: ignore[attr-defined]

    def apply_checkpoints(self, rows: list[CheckpointRow]) -> None:
        new = {r.file: r for r in rows}
        table = self.query_one("#checkpoints", DataTable)
        set_display(self.query_one("#ckpt-empty", Static), not rows)
        set_display(table, bool(rows))
        if list(new) != list(self.ckpt_rows) or any(new[k] != self.ckpt_rows[k] for k in new):
            selected = self.selected_checkpoint()
            table.clear()
            for r in rows:
                table.add_row(*self._ckpt_cells(r), key=r.file)
            if selected is not None and selected.file in new:
                table.move_cursor(row=table.get_row_index(selected.file), animate=False)
        self.ckpt_rows = new

    def _ckpt_cells(self, r: CheckpointRow) -> list:
        return [
            f"{r.step:,}" + (" ★" if r.best else ""),
            clock_time(r.created_at),
            size(r.size),
            f"{r.ratio:.2f}" if isinstance(r.ratio, (int, float)) else "-",
            self._check_text(r.file),
            r.file,
        ]

    def _check_text(self, file: str) -> Text:
        state = self.verified.get(file)
        if state is None:
            return Text("unverified", style="dim")
        ok, reason = state
        return Text("ok", style="green") if ok else Text(f"BAD: {reason}", style="bold red")

    def apply_logs(self, got: TailLines) -> None:
        log = self.query_one("#log", Log)
        if got.reset:
            log.write_line("— log truncated; following it from the top —")
        if got.lines:
            log.write_lines(got.lines)

    def apply_events(self, got: tuple[list[dict], bool]) -> None:
        records, reset = got
        if not records and not reset:
            return
        view = self.query_one("#events", RichLog)
        if reset:
            view.clear()
        for rec in records:
            sev = event_severity(rec)
            if sev == "alert":
                self.alerts += 1
            t = rec.get("time")
            stamp = clock_time(t)[11:] if isinstance(t, (int, float)) else "--:--:--"
            line = Text(f"{stamp} ", style="dim")
            line.append(("⚠ " if sev == "alert" else "") + event_text(rec), style=SEVERITY_STYLE[sev])
            view.write(line)
        if self.alerts:
            self.query_one("#tabs", TabbedContent).get_tab("tab-events").label = f"4 Events [red]⚠{self.alerts}[/]"

    # ---- actions ----------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        if tab == "tab-checkpoints":
            self.query_one("#checkpoints", DataTable).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            event.stop()
            self.action_stop()

    def action_stop(self) -> None:
        self.app.confirm_stop(self.run_dir, on_done=lambda _: self.pollers[0].poll_now())  # type: ignore[attr-defined]

    def selected_checkpoint(self) -> CheckpointRow | None:
        key = cursor_key(self.query_one("#checkpoints", DataTable))
        return self.ckpt_rows.get(key) if key is not None else None

    def _need_checkpoint(self) -> CheckpointRow | None:
        row = self.selected_checkpoint()
        if row is None:
            self.notify("no checkpoint selected (tab 2)", severity="warning")
        return row

    def action_verify(self) -> None:
        row = self._need_checkpoint()
        if row is not None:
            self.notify(f"verifying {row.file}…")
            self._verify(row)

    @work(thread=True, group="verify")
    def _verify(self, row: CheckpointRow) -> None:
        result = self.checkpoints.verify(row)
        self.app.call_from_thread(self._verified, row, result)

    def _verified(self, row: CheckpointRow, result: tuple[bool, str]) -> None:
        self.verified[row.file] = result
        ok, reason = result
        try:
            self.query_one("#checkpoints", DataTable).update_cell(row.file, "check", self._check_text(row.file))
        except Exception:
            pass  # the row went away meanwhile
        self.notify(
            f"{row.file}: {'checksum ok' if ok else 'BAD — ' + reason}", severity="information" if ok else "error"
        )

    def action_resume(self) -> None:
        row = self._need_checkpoint()
        if row is None:
            return
        from .confirm import ConfirmScreen

        def go(yes: bool | None) -> None:
            if yes:
                self.app.resume_run(self.kind, self.run_dir, self.checkpoints.manifest.dir / row.file)  # type: ignore[attr-defined]

        detail = f"starts `ztb {self.kind} --headless --resume {row.file}` detached"
        self.app.push_screen(
            ConfirmScreen(f"Resume {self.run_dir.name} from step {row.step:,}?", detail, yes="Resume", danger=False), go
        )

    def action_delete(self) -> None:
        row = self._need_checkpoint()
        if row is None:
            return
        from .confirm import ConfirmScreen

        def go(yes: bool | None) -> None:
            if yes:
                self.checkpoints.remove(row)
                self.verified.pop(row.file, None)
                self.notify(f"deleted {row.file}")
                self.pollers[2].poll_now()

        active = self.row is not None and self.row.active
        self.app.push_screen(
            ConfirmScreen(
                f"Delete checkpoint {row.file} (step {row.step:,})?",
                "The file and its manifest entry are removed; this cannot be undone."
                + ("\n[b yellow]The run is still active.[/]" if active else ""),
                yes="Delete",
            ),
            go,
        )
