"""What the console's screens and widgets ask of the app, as Textual messages.

A screen posts one of these (`self.post_message(OpenRun(run_dir))`); it bubbles up the DOM to the
app (`ZtbApp.on_open_run` ...), which owns navigation, launching and stopping. So screens never
import or call the app: the app imports the screens, and nothing imports the app back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.message import Message


class OpenRun(Message):
    """Show one run's view."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class OpenCompare(Message):
    """Compare two or more runs."""

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs


class LaunchRequested(Message):
    """Open the launch dialog."""


class StopRequested(Message):
    """Confirm, then STOP one run; `on_done` gets the stop outcomes when the dialog closes."""

    def __init__(self, run_dir: Path, on_done: Callable[[Any], None] | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.on_done = on_done


class StopAllRequested(Message):
    """Confirm, then stop every active run (the global kill-file)."""


class ClearGlobalStopRequested(Message):
    """Confirm, then remove the global kill-file."""


class ResumeRequested(Message):
    """Resume a run from a verified checkpoint, detached."""

    def __init__(self, kind: str, run_dir: Path, checkpoint: Path) -> None:
        super().__init__()
        self.kind = kind
        self.run_dir = run_dir
        self.checkpoint = checkpoint


class RunsListed(Message):
    """The runs list read every run (the command palette offers to open each)."""

    def __init__(self, rows: list[Any]) -> None:
        super().__init__()
        self.rows = rows


class Painted(Message):
    """A screen first showed its data (`what`) at wall time `at` (benchmarks and tests time this)."""

    def __init__(self, what: str, at: float) -> None:
        super().__init__()
        self.what = what
        self.at = at
