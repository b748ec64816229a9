"""How every command prints its help: click's plain formatter, which wraps descriptions under
whole option names. Typer's rich panels cut long option names ("--enable-streami…") and their
descriptions on an 80-column terminal; the plain layout reads at any width."""

from __future__ import annotations

from typing import Any

#: what `--set` takes, as its help shows it (typer would print the Python type, `<list[str]>`)
SET_METAVAR = "KEY=VALUE"
#: widest the help text grows on a wide terminal (click wraps to the terminal below this)
MAX_HELP_WIDTH = 120


def help_settings(**context: Any) -> dict[str, Any]:
    """Keyword arguments for every `typer.Typer(...)` of the CLI (a fresh dict each call)."""
    return {
        "rich_markup_mode": None,
        "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": MAX_HELP_WIDTH, **context},
    }
