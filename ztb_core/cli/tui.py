"""`ztb tui`: the operations console. Textual and ztb_tui are imported inside the command only,
so the rest of the CLI (and ztb_core) never loads them."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("tui")(tui)


def tui(
    artifacts: Path | None = typer.Option(
        None, "--artifacts", help="Artifacts folder (default $ZTB_ARTIFACTS or ./artifacts)."
    ),
    readonly: bool = typer.Option(
        False, "--readonly", help="Watch only: no launch, stop, resume, delete, kill-file clearing or breaker reset."
    ),
    refresh: float = typer.Option(1.0, "--refresh", min=0.1, max=60.0, help="Seconds between polls."),
    stop_timeout: float = typer.Option(
        30.0, "--stop-timeout", min=0.0, help="STOP: seconds to wait for a safe stop before SIGTERM."
    ),
    kill_timeout: float = typer.Option(
        10.0, "--kill-timeout", min=0.0, help="STOP: seconds between SIGTERM and SIGKILL."
    ),
    stale_after: float = typer.Option(
        30.0, "--stale-after", min=1.0, help="Heartbeat age (s) after which an active run shows stale/dead."
    ),
    run: str | None = typer.Option(None, "--run", help="Open this run id at start."),
) -> None:
    """Open the operations console: runs, charts, resources, checkpoints, logs, launch and STOP (? lists the keys)."""
    from ..paths import artifacts_dir
    from ..runs import find_run

    root = (artifacts or artifacts_dir()).expanduser().resolve()
    run_id = find_run(run, root).name if run else None
    from ztb_tui.app import ZtbApp

    ZtbApp(
        root,
        readonly=readonly,
        refresh_s=refresh,
        stop_timeout_s=stop_timeout,
        kill_timeout_s=kill_timeout,
        stale_after_s=stale_after,
        open_run=run_id,
    ).run()
