"""The `ztb` typer app and its entry point. Each area adds its commands from `ztb_core/cli/<area>.py`
(a `register(app)` function); heavy libraries are imported inside the commands so `ztb --help`
stays fast. Only the `tui` command imports the console, lazily."""

from __future__ import annotations

import importlib

import click
import typer
from rich.console import Console

from .. import __version__
from ..errors import ZtbError
from .help import help_settings

#: modules whose `register(app)` adds commands; a command appears here only once it works.
COMMAND_MODULES = [
    "ztb_core.cli.data",
    "ztb_core.cli.core",
    "ztb_core.cli.config",
    "ztb_core.cli.pretrain",
    "ztb_core.cli.tui",
    "ztb_core.cli.exchange",
    "ztb_core.cli.live",
    "ztb_core.cli.eval",
    "ztb_core.cli.train",
    "ztb_core.cli.tune",
    "ztb_core.cli.walkforward",
    "ztb_core.cli.ops",
]

app = typer.Typer(
    name="ztb",
    help="ztb: pretrain, train, evaluate and trade ML trading agents, and supervise it all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    **help_settings(),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ztb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """ztb: an operations console and headless core for ML trading research."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user-facing errors print one clear line and exit non-zero, no traceback."""
    try:
        # with standalone_mode=False click returns (not raises) a command's typer.Exit code
        result = app(args=argv, prog_name="ztb", standalone_mode=False)
    except ZtbError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        Console(stderr=True).print("aborted")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # click usage errors carry their own exit code
        # typer 0.2x raises its own copy of click's exceptions (typer._click): matched by their API
        if isinstance(exc, click.exceptions.ClickException) or (
            callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)
        ):
            exc.show()  # type: ignore[attr-defined]
            return exc.exit_code  # type: ignore[attr-defined]
        raise
    return result if isinstance(result, int) else 0
