"""`ztb config schema [NAME]`: the JSON Schema of each typed config, for editors (YAML language
servers validate and complete `configs/*.yaml` from it)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..atomic import atomic_write_text
from ..config_models import CONFIG_MODELS, config_model
from .help import help_settings

config_app = typer.Typer(help="Configuration helpers.", no_args_is_help=True, **help_settings())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("schema")
def schema(
    name: str | None = typer.Argument(None, help=f"one of: {', '.join(sorted(CONFIG_MODELS))} (default: all)"),
    out: Path | None = typer.Option(
        None, "--out", help="write NAME.schema.json files into this folder instead of printing"
    ),
) -> None:
    """Print (or write) the JSON Schema of a config model: keys, types, defaults and descriptions."""
    names = [name.removesuffix(".yaml")] if name else sorted(CONFIG_MODELS)
    schemas = {n: config_model(n).model_json_schema() for n in names}
    if out is None:
        typer.echo(json.dumps(schemas[names[0]] if name else schemas, indent=2))
        return
    out.mkdir(parents=True, exist_ok=True)
    for n, body in schemas.items():
        atomic_write_text(out / f"{n}.schema.json", json.dumps(body, indent=2) + "\n")
        typer.echo(f"wrote {out / f'{n}.schema.json'}")
