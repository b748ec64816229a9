"""Exchange commands: `ztb emulator` (loopback Coincheck), `ztb exchange health`, and `ztb data fetch`
(added to the data command group). ccxt and the emulator are imported inside the commands."""

from __future__ import annotations

from pathlib import Path

import typer

from .help import SET_METAVAR, help_settings

exchange_app = typer.Typer(
    name="exchange",
    help="Check an exchange connection (ccxt).",
    no_args_is_help=True,
    add_completion=False,
    **help_settings(),
)


def _exchange_config(
    exchange: str, symbol: str, api_url: str | None, config: Path | None, overrides: list[str], timeout_ms: int | None
):
    from ..config import resolve_config
    from ..live.venue.exchange_config import ExchangeConfig

    flags = {
        "exchange": ("--exchange", exchange),
        "symbol": ("--symbol", symbol),
        "api_url": ("--api-url", api_url or None),
        "timeout_ms": ("--timeout-ms", timeout_ms or None),
    }
    return resolve_config(ExchangeConfig, config, overrides, flags).config


def emulator_cmd(
    port: int = typer.Option(8765, "--port", help="TCP port on 127.0.0.1 (0 = any free port)"),
    source: str = typer.Option("synthetic", "--source", help="Trade stream to replay: bitflyer | synthetic"),
    api_key: str = typer.Option("emulator-key", "--api-key", help="The API key the emulator accepts"),
    secret: str = typer.Option("emulator-secret", "--secret", help="Its signing secret"),
    speed: float | None = typer.Option(None, "--speed", help="Replay speed (tape s per wall s; 0 = frozen)"),
    config: Path | None = typer.Option(None, "--config", help="EmulatorConfig YAML (fault table etc.)"),
    set_: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a config key, e.g. --set spread_bps=5"
    ),
    ws_port: int = typer.Option(
        8766, "--ws-port", help="Public websocket (trades, order book) port on 127.0.0.1 (0 = any free, -1 = none)"
    ),
) -> None:
    """Run the loopback exchange emulator until Ctrl-C (point ccxt's urls.api.rest at the printed URL,
    and ccxt.pro's urls.api.ws at the websocket URL)."""
    import time

    from rich.console import Console

    from ..config import resolve_config
    from ..live.emulator import EmulatorConfig, EmulatorServer
    from ..live.emulator.ws import WsServer

    flags = {
        "port": ("--port", port),
        "source": ("--source", source),
        "api_key": ("--api-key", api_key),
        "secret": ("--secret", secret),
        "speed": ("--speed", speed),
    }
    cfg = resolve_config(EmulatorConfig, config, set_, flags).config
    console = Console()
    with console.status(f"loading the {cfg.source} trade tape..."):
        server = EmulatorServer(cfg)
    ws: WsServer | None = None
    # the URL is printed inside the try: a Ctrl-C the moment it appears (a script that read it and
    # is done) still stops the emulator cleanly, instead of a KeyboardInterrupt traceback and exit 130
    started = False
    try:
        url = server.start()
        started = True
        ws = WsServer(server.state, cfg.host, ws_port) if ws_port >= 0 else None
        ws_line = f"  websocket URL: [bold]{ws.start()}[/] (--set ws_url=... in ztb live)\n" if ws else ""
        console.print(
            f"[bold green]emulator[/] {server.tape.name}: {len(server.tape):,} trades, speed {cfg.speed:g}x, "
            f"{len(cfg.faults)} fault rule(s)\n  REST URL: [bold]{url}[/]\n{ws_line}"
            f"  try: ztb exchange health --exchange coincheck --symbol BTC/JPY --api-url {url}\n"
            "  Ctrl-C stops it."
        )
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        if ws is not None:
            ws.stop()
        if started:  # a port that cannot be bound is the error's to report, not a stop
            server.stop()
            console.print(f"emulator stopped; requests served: {sum(server.requests.values())}")


@exchange_app.command("health")
def health_cmd(
    exchange: str = typer.Option("coincheck", "--exchange", help="ccxt exchange id"),
    symbol: str = typer.Option("BTC/JPY", "--symbol", help="Market symbol"),
    api_url: str | None = typer.Option(None, "--api-url", help="REST base URL (e.g. the emulator's)"),
    samples: int = typer.Option(5, "--samples", min=1, help="Ticker calls used to measure latency and skew"),
    timeout_ms: int | None = typer.Option(None, "--timeout-ms", help="HTTP timeout per request"),
    config: Path | None = typer.Option(None, "--config", help="ExchangeConfig YAML"),
    set_: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a config key, e.g. --set retry.max_attempts=1"
    ),
) -> None:
    """Reachability, latency p50/p95, clock skew, rate-limit headroom and market limits. Exit 1 when
    the exchange is unreachable. Keys (if set) are used only to check that the private API answers."""
    from rich.console import Console
    from rich.table import Table

    from ..live.venue.factory import make_adapter
    from ..live.venue.health import check_health
    from ..live.venue.secrets import install_log_filter, load_credentials

    cfg = _exchange_config(exchange, symbol, api_url, config, set_, timeout_ms)
    creds = load_credentials(cfg, required=False)
    if creds is not None:
        install_log_filter(creds)
    report = check_health(make_adapter(cfg, creds), samples=samples)
    table = Table(title=f"exchange health: {cfg.exchange} {cfg.symbol}", show_header=False)
    table.add_column("check", style="bold")
    table.add_column("result")
    for name, value in report.rows():
        style = "red" if (name == "reachable" and not report.reachable) or value.startswith("failed") else None
        table.add_row(name, value, style=style)
    Console().print(table)
    if not report.reachable:
        raise typer.Exit(1)


def fetch_cmd(
    exchange: str = typer.Option("coincheck", "--exchange", help="ccxt exchange id"),
    symbol: str = typer.Option("BTC/JPY", "--symbol", help="Market symbol"),
    timeframe: str = typer.Option("1m", "--timeframe", help="Bar timeframe: 1m 5m 15m 30m 1h 4h 1d"),
    since: str = typer.Option(..., "--since", help="Start (UTC date or ISO time), e.g. 2024-01-01"),
    until: str | None = typer.Option(None, "--until", help="End, exclusive (default: now)"),
    api_url: str | None = typer.Option(None, "--api-url", help="REST base URL (e.g. the emulator's)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Store root (default $ZTB_DATA)"),
    config: Path | None = typer.Option(None, "--config", help="ExchangeConfig YAML"),
    set_: list[str] = typer.Option([], "--set", metavar=SET_METAVAR, help="Override a config key"),
) -> None:
    """Download history into the data store (paginated, rate-limited, resumable; bars are built from
    trades where the exchange has no OHLCV endpoint)."""
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..errors import ConfigError
    from ..live.market.fetch import fetch_history
    from ..live.venue.factory import make_adapter

    cfg = _exchange_config(exchange, symbol, api_url, config, set_, None)

    def ms(text: str, name: str) -> int:
        try:
            ts = pd.Timestamp(text)
        except ValueError:
            raise ConfigError(
                f"--{name} {text!r}: not a date or ISO time (e.g. 2024-01-01 or 2024-01-01T09:00)"
            ) from None
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.value // 1_000_000)

    since_ms = ms(since, "since")
    until_ms = ms(until, "until") if until else None
    if until_ms is not None and until_ms <= since_ms:
        raise ConfigError(f"--until {until} is not after --since {since}")
    adapter = make_adapter(cfg)
    console = Console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"fetch {cfg.exchange} {cfg.symbol} {timeframe}", total=None, info="")

        def on_page(pages: int, count: int, at_ms: int) -> None:
            at = pd.Timestamp(at_ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
            progress.update(task, info=f"{pages} pages, {count:,} rows, at {at}")

        result = fetch_history(adapter, timeframe, since_ms, until_ms, data_dir=data_dir, on_page=on_page)
    if result.path is None:
        console.print("nothing new: the store already holds every completed bar in that range")
        return
    console.print(
        f"{'resumed and ' if result.resumed else ''}stored {result.bars_written:,} bars "
        f"({result.first_bar} .. {result.last_bar}) from {result.trades_fetched:,} trades in "
        f"{result.pages} pages -> {result.path}"
    )


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator_cmd)
    app.add_typer(exchange_app, name="exchange")
    # `ztb data fetch` lives with the other exchange code; it joins the data group defined there
    from .data import data_app

    data_app.command("fetch")(fetch_cmd)
