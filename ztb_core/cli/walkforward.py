"""`ztb walkforward`: rolling or expanding retraining, each fold scored out of sample (ztb_core.rl.walkforward)."""

from __future__ import annotations

from pathlib import Path

import typer

from .help import SET_METAVAR


def register(app: typer.Typer) -> None:
    app.command("walkforward")(walkforward)


def walkforward(
    folds: int | None = typer.Option(None, "--folds", min=1, help="Out-of-sample windows (default: config)."),
    scheme: str | None = typer.Option(None, "--scheme", help="expanding or rolling training windows."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Walk-forward config YAML (default configs/walkforward.yaml)."
    ),
    sets: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a walk-forward config key, e.g. --set select=latest."
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the walk-forward run (default: generated)."),
) -> None:
    """Train fold after fold on growing or sliding windows, each a normal train run, and score each on
    the next window only; writes reports/walkforward.{json,md,png} (concatenated out-of-sample equity,
    per-fold table against the strongest baseline, DSR over folds)."""
    import signal
    import sys

    from rich.console import Console

    from ..config import resolve_config
    from ..logs import setup_logging
    from ..rl.walkforward import WalkForwardConfig, plan_walkforward, run_walkforward
    from ..runtime.killfile import KillSwitch
    from ..runtime.run_writer import create_run

    resolved = resolve_config(
        WalkForwardConfig, config, sets, {"folds": ("--folds", folds), "scheme": ("--scheme", scheme)}
    )
    cfg = resolved.config
    console = Console()
    with console.status("loading data and planning folds"):
        plan = plan_walkforward(cfg)  # bad config or too little data fails before a run directory exists
    writer = create_run(
        "walkforward", config=cfg, run_id=run_id, argv=sys.argv, total_steps=cfg.folds, config_sources=resolved.chosen()
    )
    setup_logging(writer.dir, console=False)
    kill = KillSwitch(writer.dir)
    signal.signal(signal.SIGTERM, lambda *_: kill.trip("SIGTERM"))
    with writer:
        writer.start_heartbeat()
        doc = run_walkforward(cfg, writer, kill, say=lambda m: console.print(m, highlight=False), plan=plan)
        state = "completed" if doc["complete"] else "stopped"
        writer.close(state, message=f"{len(doc['folds'])}/{cfg.folds} folds scored out of sample")
    a = doc["aggregate"]
    sharpe = "n/a" if a["sharpe"] is None else f"{a['sharpe']:.2f}"
    dsr = "n/a" if a["dsr"] is None else f"{a['dsr']:.3f}"
    console.print(
        f"out of sample: Sharpe {sharpe} vs strongest baseline {a['strongest_baseline']} "
        f"{a['strongest_baseline_sharpe']:.2f}; DSR over {a['dsr_trials']} fold(s) {dsr}"
    )
    console.print(f"report: {writer.reports_dir / 'walkforward.md'}")
