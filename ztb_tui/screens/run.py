"""The run view: status + progress + the big red STOP, then tabs for curves and resources,
checkpoints, logs, events and the resolved config, plus the run kind's own view (evaluation
report, tuning trials, live trading state). Every panel is fed by its own poller."""

from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, ProgressBar, RichLog, Static, TabbedContent, TabPane

from ztb_core.runs import FINAL_STATES, RunReader, RunSummary

from ..context import context
from ..fmt import STATE_STYLE, clock_time, duration, num, size, steps
from ..health import Flag, HealthSource
from ..launching import launch_output
from ..messages import Painted, ResumeRequested, StopRequested
from ..poller import Poller
from ..sources import (
    ChartSnapshot,
    ChartSource,
    CheckpointRow,
    CheckpointsSource,
    EventsSource,
    LogsSource,
    MetricsSnapshot,
    MetricsSource,
    TailLines,
    Verdict,
    event_severity,
    event_text,
)
from ..verdict import VerdictSource
from ..widgets import NavTable, cursor_key, set_display, set_text, set_wrapping_text
from ..widgets.charts import CHARTS, Chart, ChartsPanel
from ..widgets.metrics import MetricPanel, curve_keys
from ..widgets.resources import HostBar, ResourcesPanel
from .confirm import ConfirmScreen
from .runs import completed_early, global_stop_text
from .views import KIND_VIEWS

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
#: the curves panel's title per run kind: live metrics are not training curves
PANEL_TITLES = {"train": "training curves", "pretrain": "pretraining curves", "live": "live metrics"}
#: run kinds that write checkpoints (the others have none to verify, resume or delete)
CHECKPOINT_KINDS = frozenset({"train", "pretrain"})
WIDE = 120
#: pollers started once the run's numbers are on screen (their first read is the expensive one)
AFTER_PAINT = frozenset({"charts", "health"})  # from this width the curves and the resources sit side by side


class RunScreen(Screen):
    AUTO_FOCUS = "#overview-scroll"
    BINDINGS = [
        Binding("escape,q", "back", "Runs"),
        Binding("s", "stop", "STOP"),
        Binding("r", "refresh", "Refresh"),
        Binding("1", "show_tab('tab-overview')", "Curves", show=False),
        Binding("2", "show_tab('tab-checkpoints')", "Ckpts", show=False),
        Binding("3", "show_tab('tab-logs')", "Logs", show=False),
        Binding("4", "show_tab('tab-events')", "Events", show=False),
        Binding("5", "show_tab('tab-config')", "Config", show=False),
        Binding("6", "show_tab('tab-kind')", "View", show=False),
        Binding("v", "verify", "Verify"),
        Binding("R", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.reader = RunReader(self.run_dir)
        self.kind = str(self.reader.info().get("kind", "?"))
        self.row: RunSummary | None = None
        self.metrics = MetricsSource(self.run_dir)
        self.charts = ChartSource(self.run_dir)
        self.checkpoints = CheckpointsSource(self.run_dir, record=not context(self).readonly)
        artifacts = self.run_dir.parent.parent  # <artifacts>/runs/<run_id>
        # re-listed each poll: a resume launched while this view is open adds an output file
        self.logs = LogsSource(self.run_dir, lambda: launch_output(artifacts, self.run_dir.name))
        self.events = EventsSource(self.run_dir)
        self.health = HealthSource(self.run_dir, self.kind, now=context(self).now)
        self.flags: tuple[Flag, ...] = ()
        self.snapshot: MetricsSnapshot | None = None
        self.ckpt_rows: dict[str, CheckpointRow] = {}
        #: the checkpoint under the cursor when the manifest dropped it: kept (marked pruned) so an
        #: action never silently lands on the neighbour that took its row
        self.ghost: CheckpointRow | None = None
        self.verified: dict[str, Verdict] = {}
        self.pollers: list[Poller] = []
        self.alerts = 0
        self.painted_at: float | None = None
        self.charts_painted_at: float | None = None
        self.kind_view = KIND_VIEWS[self.kind](self.run_dir) if self.kind in KIND_VIEWS else None
        #: a training run's end-of-run verdict (its last evaluation), shown once the run has ended
        self.verdict = VerdictSource(self.run_dir) if self.kind == "train" else None

    # ---- layout -----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        banner = Static("", id="global-stop")
        banner.display = False
        yield banner
        health = Static("", id="health")
        health.display = False
        yield health
        with Horizontal(id="runbar"):
            with Vertical(id="runinfo"):
                yield Static(self.run_dir.name, id="run-title")
                with Horizontal(id="progress-line"):
                    yield ProgressBar(total=1, show_eta=False, id="progress")
                    yield Static("", id="eta")
            yield Button("■ STOP", id="stop", variant="error")
        with TabbedContent(id="tabs"):
            with TabPane("1 Curves", id="tab-overview"):
                with VerticalScroll(id="overview-scroll"):
                    verdict = Static("", id="verdict")
                    verdict.display = False
                    yield verdict
                    with Horizontal(id="overview"):
                        with Vertical(id="chart-col"):
                            yield ChartsPanel(CHARTS.get(self.kind, ()), id="charts")
                            title = PANEL_TITLES.get(self.kind, "metrics")
                            yield MetricPanel(title, f"no {title} yet", id="curves")
                        with Vertical(id="res-col"):
                            yield HostBar(id="host")
                            yield ResourcesPanel(id="resources")
            with TabPane("2 Checkpoints", id="tab-checkpoints"):
                table = NavTable(id="checkpoints", cursor_type="row")
                for label, key, width in CKPT_COLUMNS:
                    table.add_column(label, key=key, width=width)
                yield table
                yield Static("no checkpoints yet", id="ckpt-empty")
            with TabPane("3 Logs", id="tab-logs"):
                # wrapped, not cut: a traceback line is read whole
                yield RichLog(id="log", max_lines=5000, wrap=True, markup=False, highlight=False)
            with TabPane("4 Events", id="tab-events"):
                yield RichLog(id="events", max_lines=2000, wrap=True, markup=False)
            with TabPane("5 Config", id="tab-config"):
                with VerticalScroll():
                    yield Static(Text(self.reader.config_text() or "(no config.yaml)"), id="config")
            if self.kind_view is not None:
                with TabPane(f"6 {self.kind_view.TAB}", id="tab-kind"):
                    yield self.kind_view
        yield Footer()

    def on_mount(self) -> None:
        app = context(self)
        self.title = app.badge(f"ztb · {self.kind}")
        self.sub_title = self.run_dir.name
        if app.readonly:
            self.query_one("#stop", Button).display = False
        self.query_one("#checkpoints", DataTable).display = False
        self._layout_for(self.size.width or 80, self.size.height or 24)
        every = app.refresh_s
        err = self._poll_error
        source = app.runs_source
        self.pollers = [
            Poller(self, "status", self._poll_status, self.apply_status, every, err),
            Poller(self, "metrics", self.metrics.poll, self.apply_metrics, every, err),
            Poller(self, "charts", self.charts.poll, self.apply_charts, every, err),
            Poller(self, "checkpoints", self._poll_checkpoints, self.apply_checkpoints, every, err),
            Poller(self, "logs", self.logs.poll, self.apply_logs, every, err),
            Poller(self, "events", self.events.poll, self.apply_events, every, err),
            Poller(self, "health", lambda: self.health.poll(source.one(self.run_dir)), self.apply_health, every, err),
        ]
        if self.kind_view is not None:
            self.pollers.append(Poller(self, "kind", self.kind_view.fetch, self.kind_view.apply, every, err))
        for p in self.pollers:
            # the charts' whole-history read and the warnings' tail read wait for the first paint
            if p.name not in AFTER_PAINT:
                p.start()
        if self.kind_view is not None:  # an eval, tune or live run opens on its own view
            self.query_one("#tabs", TabbedContent).active = "tab-kind"
            self.call_after_refresh(self.kind_view.focus_main)
        else:
            self.query_one("#overview-scroll").focus()

    def on_screen_resume(self) -> None:
        for p in self.pollers:
            p.poll_now()

    def on_unmount(self) -> None:
        for p in self.pollers:
            p.stop()
        self.logs.close()

    def on_resize(self, event: Resize) -> None:
        self._layout_for(event.size.width, event.size.height)

    def _layout_for(self, width: int, height: int) -> None:
        # side by side when there is room, stacked (and scrolled) on an 80-column terminal;
        # charts grow with the terminal so a tall one is not left empty
        wide = width >= WIDE
        self.query_one("#overview").set_class(wide, "-wide")
        self.query_one("#overview").set_class(not wide, "-narrow")
        free = max(8, height - 9)
        self.query_one("#charts", ChartsPanel).set_chart_height(max(8, free // 2) if wide else max(8, min(14, free)))

    def _poll_error(self, exc: BaseException) -> None:
        self.notify(f"{self.run_dir.name}: {exc.__class__.__name__}: {exc}", severity="error", timeout=5)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "resume", "delete") and context(self).readonly:
            return False
        if action in ("verify", "resume", "delete"):
            if self.kind not in CHECKPOINT_KINDS or (not self.ckpt_rows and self.ghost is None):
                return False  # nothing to act on: the keys are not offered
            try:
                on_ckpts = self.query_one("#tabs", TabbedContent).active == "tab-checkpoints"
            except Exception:
                return False
            return on_ckpts
        if action == "show_tab" and parameters == ("tab-kind",) and self.kind_view is None:
            return False
        return True

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()

    # ---- pollers ----------------------------------------------------------------------
    def _poll_status(self) -> tuple[RunSummary, Path | None, list[str] | None]:
        source = context(self).runs_source
        row = source.one(self.run_dir)
        ended = row.state in FINAL_STATES or row.liveness == "dead"
        verdict = self.verdict.poll() if self.verdict is not None and ended else None
        return row, source.global_stop(), verdict

    def apply_status(self, result: tuple[RunSummary, Path | None, list[str] | None]) -> None:
        row, global_stop, verdict = result
        banner = self.query_one("#global-stop", Static)
        set_text(banner, global_stop_text(global_stop))
        set_display(banner, global_stop is not None)
        box = self.query_one("#verdict", Static)
        set_text(box, "\n".join(verdict or ()))  # changes once or twice in a run's life: re-layout is fine
        set_display(box, bool(verdict))
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
        # the title wraps to a second line on a narrow terminal when the message grows: re-layout then
        set_wrapping_text(
            self.query_one("#run-title", Static),
            f"[b]{row.run_id}[/] · {row.kind} · [{style}]{row.liveness}[/] · {pid}{msg}"
            if style
            else f"[b]{row.run_id}[/] · {row.kind} · {row.liveness} · {pid}{msg}",
        )
        bar = self.query_one("#progress", ProgressBar)
        # live runs have no total: no bar, just the step
        set_display(bar, bool(row.total_steps))
        early = completed_early(row)
        if row.total_steps:
            # a run that completed before its planned total (a fast-dev-run) is done, not at 0 %
            done_at = max(row.step, 1) if early else row.total_steps
            bar.update(total=done_at, progress=min(row.step, done_at))
        total = f"/{steps(row.total_steps)}" if row.total_steps and not early else ""
        if early:
            total = f" steps, completed ({steps(row.total_steps)} planned)"
        eta = f" · ETA {duration(row.eta_s)}" if row.eta_s is not None else ""
        fps = f" · {num(row.fps)} steps/s" if row.fps else ""
        stalled = " · [magenta]no progress: rate unknown[/]" if row.liveness in ("stale", "dead") else ""
        # the ETA before the rate: on a narrow terminal the end of the line is what wraps
        set_wrapping_text(self.query_one("#eta", Static), f"{steps(row.step)}{total}{eta}{fps}{stalled}")
        button = self.query_one("#stop", Button)
        final = row.state in FINAL_STATES or row.liveness == "dead"
        if button.disabled != final:
            button.disabled = final
            button.label = "■ STOP" if not final else row.liveness

    def apply_health(self, flags: tuple[Flag, ...]) -> None:
        """The run's warnings above the tabs, each with what would fix it (health.HealthSource)."""
        if flags == self.flags:
            return
        self.flags = flags
        banner = self.query_one("#health", Static)
        # a live run's Trading tab spells out the fix: above the tabs the reason alone
        own = self.kind == "live"
        set_text(banner, "\n".join(f"[b yellow]⚠[/] {escape(f.text if own else f.line())}" for f in flags))
        set_display(banner, bool(flags))

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

    def apply_charts(self, snap: ChartSnapshot) -> None:
        self.query_one("#charts", ChartsPanel).show(snap)
        size = self.charts.tail.path.stat().st_size if self.charts.tail.path.exists() else 0
        if self.charts_painted_at is None and snap.counts and self.charts.tail.offset >= size:
            # the whole history is drawn (a big file is read over several polls): benchmarks time this
            self.charts_painted_at = time.time()
            points = max(snap.counts.values())
            what = f"charts:{self.run_dir.name}:{points}"
            self.call_after_refresh(lambda: self.post_message(Painted(what, time.time())))

    def _painted(self) -> None:
        self.painted_at = time.time()
        self.post_message(Painted(f"run:{self.run_dir.name}", self.painted_at))
        self._start_charts()

    def _start_charts(self) -> None:
        """Charts read the run's whole history (seconds for a 1M-line file): started once the
        numbers are on screen, so that read does not compete with the first paint."""
        for p in self.pollers:
            if p.name in AFTER_PAINT and p.polls == 0 and not p.in_flight:
                p.start()

    def _poll_checkpoints(self) -> tuple[list[CheckpointRow], dict[str, Verdict]]:
        return self.checkpoints.poll(), self.checkpoints.verdicts()

    def apply_checkpoints(self, result: tuple[list[CheckpointRow], dict[str, Verdict]]) -> None:
        rows, verdicts = result
        for file, verdict in verdicts.items():  # recorded by this or an earlier console
            if self.verified.get(file) != verdict:
                self.verified[file] = verdict
                self._show_check(file)
        new = {r.file: r for r in rows}
        table = self.query_one("#checkpoints", DataTable)
        set_display(self.query_one("#ckpt-empty", Static), not rows and self.ghost is None)
        set_display(table, bool(rows) or self.ghost is not None)
        selected = self.selected_checkpoint()
        ghost_left = self.ghost is not None and (selected is None or selected.file != self.ghost.file)
        if list(new) == list(self.ckpt_rows) and all(new[k] == self.ckpt_rows[k] for k in new) and not ghost_left:
            return
        if selected is not None and selected.file not in new:
            self.ghost = selected  # pruned under the cursor: keep it visible and selected
        elif ghost_left:
            self.ghost = None
        shown = sorted([*rows, *([self.ghost] if self.ghost is not None else [])], key=lambda r: r.step)
        if bool(new) != bool(self.ckpt_rows):
            self.call_after_refresh(self.refresh_bindings)  # v/R/d appear with the first checkpoint
        self.ckpt_rows = new
        table.clear()
        for r in shown:
            table.add_row(*self._ckpt_cells(r), key=r.file)
        if selected is not None and (selected.file in new or self.ghost is not None):
            table.move_cursor(row=table.get_row_index(selected.file), animate=False)
        set_display(table, bool(shown))

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
        if self.ghost is not None and self.ghost.file == file and file not in self.ckpt_rows:
            return Text("pruned", style="magenta")
        verdict = self.verified.get(file)
        if verdict is None:
            return Text("unverified", style="dim")
        return Text("ok", style="green") if verdict.ok else Text(f"BAD: {verdict.reason}", style="bold red")

    def _show_check(self, file: str) -> None:
        try:
            self.query_one("#checkpoints", DataTable).update_cell(file, "check", self._check_text(file))
        except Exception:
            pass  # the row is not (or no longer) in the table

    def apply_logs(self, got: TailLines) -> None:
        log = self.query_one("#log", RichLog)
        if got.reset:
            log.write("— log truncated; following it from the top —")
        if got.lines:
            log.write(Text("\n".join(got.lines)))

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
        if self.maximized is not None:  # a chart filling the screen: escape restores the view first
            shown = self.maximized
            self.minimize()
            if isinstance(shown, Chart):
                shown.restore_height()
            return
        self.app.pop_screen()

    def action_refresh(self) -> None:
        for p in self.pollers:
            p.poll_now()

    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        if tab == "tab-kind" and self.kind_view is None:
            return
        tabs.active = tab
        focus = {
            "tab-overview": "#overview-scroll",
            "tab-checkpoints": "#checkpoints",
            "tab-logs": "#log",
            "tab-events": "#events",
        }.get(tab)
        if focus:
            self.query_one(focus).focus()
        elif tab == "tab-kind" and self.kind_view is not None:
            self.kind_view.focus_main()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            event.stop()
            self.action_stop()

    def action_stop(self) -> None:
        self.post_message(StopRequested(self.run_dir, on_done=lambda _: self.pollers[0].poll_now()))

    def selected_checkpoint(self) -> CheckpointRow | None:
        key = cursor_key(self.query_one("#checkpoints", DataTable))
        if key is None:
            return None
        if key in self.ckpt_rows:
            return self.ckpt_rows[key]
        return self.ghost if self.ghost is not None and self.ghost.file == key else None

    def _need_checkpoint(self) -> CheckpointRow | None:
        row = self.selected_checkpoint()
        if row is None:
            self.notify("no checkpoint selected (tab 2)", severity="warning")
        return row

    def action_verify(self) -> None:
        row = self._need_checkpoint()
        if row is not None:
            self.notify(f"verifying step {row.step:,} ({row.file})…")
            self._verify(row, then_resume=False)

    @work(thread=True, group="verify")
    def _verify(self, row: CheckpointRow, then_resume: bool) -> None:
        verdict = self.checkpoints.verify(row)
        self.app.call_from_thread(self._verified, row, verdict, then_resume)

    def _verified(self, row: CheckpointRow, verdict: Verdict, then_resume: bool) -> None:
        what = f"checkpoint step {row.step:,} ({row.file})"
        if verdict.pruned:
            self.notify(
                f"{what} was pruned: nothing to {'resume from' if then_resume else 'verify'}", severity="warning"
            )
            self.pollers[3].poll_now()
            return
        self.verified[row.file] = verdict
        self._show_check(row.file)
        if not verdict.ok:
            self.notify(
                f"{what}: BAD — {verdict.reason}" + ("; not resuming from it" if then_resume else ""), severity="error"
            )
            return
        if then_resume:
            self._confirm_resume(row)
        else:
            self.notify(f"{what}: checksum ok")

    def action_resume(self) -> None:
        """Resume verifies the checkpoint first: a bad or pruned one is refused before asking."""
        row = self._need_checkpoint()
        if row is not None:
            self.notify(f"verifying step {row.step:,} before resuming…")
            self._verify(row, then_resume=True)

    def _confirm_resume(self, row: CheckpointRow) -> None:
        def go(yes: bool | None) -> None:
            if yes:
                self.post_message(ResumeRequested(self.kind, self.run_dir, self.checkpoints.manifest.dir / row.file))

        detail = f"checksum verified; starts `ztb {self.kind} --headless --resume {row.file}` detached"
        self.app.push_screen(
            ConfirmScreen(f"Resume {self.run_dir.name} from step {row.step:,}?", detail, yes="Resume", danger=False), go
        )

    def action_delete(self) -> None:
        row = self._need_checkpoint()
        if row is None:
            return
        if row.file not in self.ckpt_rows:
            self.notify(f"checkpoint step {row.step:,} ({row.file}) was pruned already", severity="warning")
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.checkpoints.remove(row)
                self.verified.pop(row.file, None)
                # gone by the person's own hand: drop the row now (no "pruned" placeholder)
                self.ckpt_rows.pop(row.file, None)
                self.query_one("#checkpoints", DataTable).remove_row(row.file)
                self.notify(f"deleted {row.file}")
                self.pollers[3].poll_now()

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
