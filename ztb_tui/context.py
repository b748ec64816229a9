"""What every screen may read of the running console: its artifacts folder, whether it is
read-only, how often to poll, its clock, the runs source and where its preferences live.

The app builds one `ConsoleContext` at start and screens read it through `context(self)`; what
they want *done* they ask with a message (`messages.py`). Neither needs the app's class, so the
screens and widgets do not import the app module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sources import RunsSource


@dataclass(frozen=True)
class ConsoleContext:
    artifacts: Path
    artifacts_label: str  # the folder as the title shows it (relative to where the console started)
    readonly: bool
    refresh_s: float
    now: Callable[[], float]
    runs_source: RunsSource
    prefs_path: Path

    def badge(self, title: str) -> str:
        """A screen's title, marked READONLY when nothing may be changed."""
        return f"{title} · READONLY" if self.readonly else title


def context(node: Any) -> ConsoleContext:
    """The console's context, from any mounted screen or widget (the app sets `console_context`)."""
    ctx = getattr(node.app, "console_context", None)
    if not isinstance(ctx, ConsoleContext):
        raise RuntimeError(f"{type(node).__name__} is not running inside the ztb console")
    return ctx
