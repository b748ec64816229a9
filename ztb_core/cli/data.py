"""`ztb data import|info|validate`: the market-data store from the command line.

`data_app` is module-level so other areas can add commands to it (e.g. `fetch`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .help import SET_METAVAR, help_settings

data_app = typer.Typer(
    name="data",
    help="Import, inspect and validate market data (the parquet store).",
    no_args_is_help=True,
    **help_settings(),
)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _load_cfg(config: Path | None, overrides: list[str], data_dir: Path | None, column_map: str | None = None):
    from ..config import resolve_config
    from ..data.ingest import DataConfig

    flags = {"data_dir": ("--data-dir", str(data_dir) if data_dir is not None else None), **_column_flags(column_map)}
    return resolve_config(DataConfig, config, overrides, flags).config


def _column_flags(text: str | None) -> dict:
    """`time=Date,open=Open` -> the csv.* keys it sets (unknown keys are errors, naming --column-map)."""
    from ..config import NULL
    from ..errors import ConfigError

    flags: dict = {}
    for part in text.split(",") if text else []:
        if "=" not in part:
            raise ConfigError(
                f"--column-map {text!r}: expected KEY=COLUMN pairs separated by commas, e.g. time=Date,open=Open"
            )
        key, value = part.split("=", 1)
        key = key.strip()
        column = [v for v in value.split("+")] if key == "time" and "+" in value else (value or NULL)
        flags[f"csv.{key}"] = ("--column-map", column)
    return flags


def _print_report(lines: list[str], ok: bool) -> None:
    from rich.console import Console

    con = Console()
    con.print(("[green]OK[/] " if ok else "[yellow]ATTENTION[/] ") + lines[0], highlight=False)
    for line in lines[1:]:
        con.print(line, highlight=False, markup=False)


@data_app.command("import")
def import_cmd(
    paths: list[Path] = typer.Argument(..., metavar="FILE...", help="Files to import (.gz read directly)."),
    fmt: str = typer.Option(..., "--format", "-f", help="histdata | csv | parquet | bitflyer-trades"),
    symbol: str = typer.Option(..., "--symbol", "-s", help="Store symbol, e.g. USDJPY or BTC_JPY."),
    tz: str | None = typer.Option(
        None, "--tz", help="Time zone of naive timestamps (histdata: UTC-5; csv/parquet: UTC)."
    ),
    market: str | None = typer.Option(
        None, "--market", help="fx | crypto (default from the format or the stored symbol)."
    ),
    column_map: str | None = typer.Option(
        None, "--column-map", help="csv: KEY=COLUMN,..., e.g. time=Date+Time,open=Open"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Data config (default configs/data.yaml)."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a config key, e.g. --set validation.gaps=error"
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Store folder (default $ZTB_DATA or artifacts/data)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Validate files and merge them into the store (nothing is written if anything fails)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ..data.ingest import import_files
    from ..data.schema import check_market

    cfg = _load_cfg(config, overrides, data_dir, column_map)
    if market is not None:
        market = check_market(market)
    with Progress(
        TextColumn("reading {task.description}"), BarColumn(), MofNCompleteColumn(), transient=True, disable=json_out
    ) as bar:
        task = bar.add_task("files", total=len(paths))
        result = import_files(
            paths,
            fmt,
            symbol,
            market,
            tz,
            cfg,
            progress=lambda i, n, p: bar.update(task, completed=i, description=p.name),
        )
    m = result.merge
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "symbol": result.symbol,
                    "market": result.market,
                    "report": result.report.to_dict(),
                    "store": {
                        "path": str(m.path),
                        "rows_before": m.rows_before,
                        "rows_added": m.rows_added,
                        "rows_replaced": m.rows_replaced,
                        "rows_after": m.rows_after,
                    },
                    "timeframes": result.timeframes,
                },
                indent=2,
                default=str,
            )
        )
        return
    _print_report(result.report.lines(), result.report.gaps_unexpected == 0 and result.report.jumps_total == 0)
    typer.echo(
        f"stored {result.symbol} M1: {m.rows_before} -> {m.rows_after} bars (+{m.rows_added} new, "
        f"{m.rows_replaced} replaced) at {m.path}"
    )
    if result.timeframes:
        typer.echo("rebuilt: " + ", ".join(f"{tf} {n}" for tf, n in result.timeframes.items()))


@data_app.command("info")
def info_cmd(
    symbol: str = typer.Argument(..., help="Stored symbol."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Data config (default configs/data.yaml)."),
    overrides: list[str] = typer.Option([], "--set", metavar=SET_METAVAR, help="Override a config key."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Store folder."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
    plot: str | None = typer.Option(
        None,
        "--plot",
        metavar="PATH.png|auto",
        help="Also draw close price with gaps marked and daily volatility to this PNG "
        "('auto': <store>/<SYMBOL>/M1.png).",
    ),
) -> None:
    """Ranges, row counts and the gap summary of a stored symbol."""
    from rich.console import Console
    from rich.table import Table

    from ..data.ingest import dataset_info

    cfg = _load_cfg(config, overrides, data_dir)
    info = dataset_info(symbol, cfg)
    if plot is not None:
        info["plot"] = str(_plot(info, cfg, plot))
    if json_out:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    table = Table(title=f"{info['symbol']} ({info['market']})")
    for col in ("timeframe", "rows", "first", "last", "partial"):
        table.add_column(col)
    for tf, e in info["timeframes"].items():
        table.add_row(tf, str(e["rows"]), str(e["first"]), str(e["last"]), str(e.get("partial_bars", "-")))
    con = Console()
    con.print(table)
    g = info["timeframes"]["M1"]["gaps"]
    con.print(
        f"M1 gaps: {g['total']} = {g['quiet']} quiet + {g['market_closed']} market closed + "
        f"{g['unexpected']} unexpected; {g['missing_open_minutes']} open-market minutes without a bar",
        highlight=False,
    )
    for gap in g["unexpected_list"]:
        con.print(f"  unexpected: {gap['start']} -> {gap['end']} ({gap['minutes']} min)", highlight=False)
    con.print(f"sources: {len(info['sources'])} file(s); last import {info['imported_at']}", highlight=False)
    if plot is not None:
        con.print(f"plot: {info['plot']}", highlight=False)


def _plot(info: dict, cfg, target: str) -> Path:
    from ..data import store
    from ..data.plot import plot_dataset
    from ..errors import DataError

    symbol, market = info["symbol"], info["market"]
    path = store.dataset_path(symbol, "M1", cfg.data_dir).with_suffix(".png") if target == "auto" else Path(target)
    if path.suffix.lower() != ".png":
        raise DataError(f"--plot {target}: the picture is a PNG; give a path ending in .png (or 'auto')")
    bars = store.read_bars(symbol, "M1", data_dir=cfg.data_dir)
    fx = market == "fx"
    return plot_dataset(
        bars,
        path,
        symbol=symbol,
        market=market,
        cfg=cfg.validation,
        day_close=cfg.fx_day_close if fx else None,
        day_tz=cfg.fx_day_tz if fx else None,
    )


@data_app.command("validate")
def validate_cmd(
    targets: list[str] = typer.Argument(
        ..., help="A stored symbol, or files to check without importing (with --format)."
    ),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="Check files of this format instead of a stored symbol."
    ),
    tz: str | None = typer.Option(None, "--tz", help="Time zone of naive timestamps in files."),
    market: str | None = typer.Option(None, "--market", help="fx | crypto (files only)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Data config (default configs/data.yaml)."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a config key, e.g. --set validation.max_jump=0.05"
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Store folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run the validation checks and print the report; exit 2 when a check fails."""
    from ..data.ingest import DEFAULT_MARKET, read_and_validate, validate_stored
    from ..errors import DataError

    cfg = _load_cfg(config, overrides, data_dir)
    if fmt is None:
        if len(targets) != 1:
            raise DataError("validate: give one stored symbol, or files together with --format")
        report = validate_stored(targets[0], cfg)
    else:
        _, report = read_and_validate([Path(t) for t in targets], fmt, market or DEFAULT_MARKET.get(fmt, "fx"), cfg, tz)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print_report(report.lines(), report.gaps_unexpected == 0 and report.jumps_total == 0)
