"""The launch dialog: job kind, config file, overrides, steps, optional run id. Nothing starts
until the overrides pass the same typed config the command loads (checked in a worker thread:
the config models import the data stack)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ztb_core.errors import ZtbError

from ..launching import JOB_KINDS, configs_for, parse_overrides


@dataclass(frozen=True)
class LaunchRequest:
    kind: str
    config: Path | None
    overrides: list[str]
    run_id: str | None


class LaunchScreen(ModalScreen[LaunchRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+l", "launch", "Launch")]

    def __init__(self, configs_root: Path | None = None, global_stop: Path | None = None, kind: str = "train"):
        super().__init__()
        self.configs_root = configs_root
        self.configs = configs_for(kind, configs_root)
        self.global_stop = global_stop
        self.initial_kind = kind
        self.checking = False

    def compose(self) -> ComposeResult:
        # The form scrolls and the buttons are docked to the dialog's bottom edge: error lines (each
        # with its "did you mean") and the kill-file warning can outgrow a 24-line terminal, and
        # Launch/Cancel must stay on screen whatever the form holds.
        with VerticalScroll(id="dialog", classes="dialog launch-dialog"):
            yield Label("[b]Launch a run[/] · detached: survives the console and SSH", id="launch-title")
            if self.global_stop is not None:
                yield Static(
                    f"[b yellow]global kill-file present:[/] {self.global_stop} — new runs stop at once; "
                    "clear it from the command palette first",
                    id="global-warning",
                )
            with Horizontal(classes="field"):
                yield Label("job")
                yield Select(
                    [(k.label, key) for key, k in JOB_KINDS.items()],
                    value=self.initial_kind,
                    allow_blank=False,
                    id="kind",
                )
            with Horizontal(classes="field"):
                yield Label("config")
                yield Select(self._config_options(), prompt="built-in defaults", id="config")
            with Horizontal(classes="field"):
                yield Label("overrides")
                yield Input(placeholder=self._example(self.initial_kind), id="overrides")
            with Horizontal(classes="field"):
                yield Label("steps")
                yield Input(placeholder="from the config", id="steps", restrict=r"[0-9_,]*")
            with Horizontal(classes="field"):
                yield Label("run id")
                yield Input(placeholder="automatic", id="run-id")
            yield Static("", id="launch-error")
            with Horizontal(classes="buttons"):
                yield Button("Launch (ctrl+l)", id="launch", variant="success")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self._pick_config(self.initial_kind)
        self.query_one("#kind", Select).focus()

    def _config_options(self) -> list[tuple[str, str]]:
        return [(f"{p.parent.name}/{p.name}" if p.parent.name == "presets" else p.name, str(p)) for p in self.configs]

    def _pick_config(self, kind: str) -> None:
        default = JOB_KINDS[kind].config
        for p in self.configs:
            if p.name == default:
                self.query_one("#config", Select).value = str(p)
                return

    @staticmethod
    def _example(kind: str) -> str:
        return f"key=value ... e.g. {JOB_KINDS[kind].example}"

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "kind" and isinstance(event.value, str):
            self.configs = configs_for(event.value, self.configs_root)
            self.query_one("#config", Select).set_options(self._config_options())
            self._pick_config(event.value)
            self.query_one("#overrides", Input).placeholder = self._example(event.value)
            steps = self.query_one("#steps", Input)
            key = JOB_KINDS[event.value].steps_key
            steps.disabled = key is None
            steps.placeholder = f"from the config ({key})" if key else "n/a for this job"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "launch":
            self.action_launch()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_launch()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_launch(self) -> None:
        if self.checking:
            return
        kind = str(self.query_one("#kind", Select).value)
        value = self.query_one("#config", Select).value
        config = Path(str(value)) if isinstance(value, str) else None
        try:
            overrides = parse_overrides(self.query_one("#overrides", Input).value)
        except ZtbError as exc:
            self._error(str(exc))
            return
        run_id = self.query_one("#run-id", Input).value.strip() or None
        if run_id and not run_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
            self._error("run id: use letters, digits, '-', '_' and '.'")
            return
        self.checking = True
        self.query_one("#launch-error", Static).update("[dim]checking the config…[/]")
        self._check(kind, config, overrides, self.query_one("#steps", Input).value, run_id)

    def _error(self, text: str) -> None:
        error = self.query_one("#launch-error", Static)
        error.update(Text(text, style="red"))
        self.call_after_refresh(error.scroll_visible, animate=False)

    @work(thread=True, exclusive=True, group="launch-check")
    def _check(self, kind: str, config: Path | None, overrides: list[str], steps: str, run_id: str | None) -> None:
        # imported here, in the worker: pydantic and the config models stay off the first paint
        from ..launch_check import validate_launch

        try:
            final = validate_launch(kind, config, overrides, steps)
            result: LaunchRequest | str = LaunchRequest(kind, config, final, run_id)
        except ZtbError as exc:
            result = str(exc)
        except Exception as exc:  # a config model that fails to import is shown, not raised
            result = f"cannot check the config: {exc.__class__.__name__}: {exc}"
        self.app.call_from_thread(self._checked, result)

    def _checked(self, result: LaunchRequest | str) -> None:
        self.checking = False
        if isinstance(result, str):
            self._error(result)
        else:
            self.dismiss(result)
