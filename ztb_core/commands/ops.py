"""Operations commands: notify (test the notification setup), janitor, errors, report weekly, smoke."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("notify")(notify_cmd)


def notify_cmd(
    message: str = typer.Argument("ztb notification test", help="Text to send."),
) -> None:
    """Send MESSAGE to every target in DISCORD_WEBHOOK / ZTB_NOTIFY now and say which worked (tokens redacted)."""
    from rich.console import Console

    from ..config import load_config
    from ..errors import ConfigError
    from ..ops.notify import NotifyConfig, env_secrets, redact, targets_from_env

    console = Console()
    cfg = load_config(NotifyConfig)
    secrets = env_secrets()
    try:
        targets = targets_from_env()
    except ConfigError as exc:
        raise ConfigError(redact(str(exc), secrets)) from None
    if not targets:
        raise ConfigError("no notification target: set DISCORD_WEBHOOK and/or ZTB_NOTIFY (see configs/notify.yaml)")
    failed = 0
    for target in targets:
        try:
            target.send("ztb", message, cfg.timeout_s)
            console.print(f"[green]sent[/] {target.name}", highlight=False)
        except Exception as exc:  # noqa: BLE001 - report each target's outcome
            failed += 1
            console.print(f"[red]failed[/] {target.name}: {redact(f'{type(exc).__name__}: {exc}', secrets)}")
    if failed:
        raise typer.Exit(1)
