"""`ztb tune`: hyperparameter search on Optuna, each trial a normal train run (ztb_core.rl.tune)."""

from __future__ import annotations

from pathlib import Path

import typer

from .help import SET_METAVAR


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)


def tune(
    trials: int | None = typer.Option(None, "--trials", "-n", min=1, help="Trials this worker runs (default: config)."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage shared by workers: sqlite:///study.db, journal:///study.log, postgresql://..., "
        "mysql://... (default: a SQLite file in this tune run).",
    ),
    study: str | None = typer.Option(None, "--study", help="Study name (default: this run's id); reused if it exists."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Tune config YAML (default configs/tune.yaml)."),
    sets: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a tune config key, e.g. --set pruner=none."
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the tune run directory (default: generated)."),
) -> None:
    """Search PPO/env hyperparameters: an Optuna study whose trials are `ztb train --headless` runs,
    pruned on their periodic evaluation; writes reports/trials.json for the console."""
    import signal
    import sys

    from rich.console import Console

    from ..config import resolve_config
    from ..logs import setup_logging
    from ..rl.tune import TuneConfig, check_space, open_storage, redact_url, run_study
    from ..runtime.killfile import KillSwitch
    from ..runtime.run_writer import create_run

    flags = {"trials": ("--trials", trials), "storage": ("--storage", storage), "study": ("--study", study)}
    resolved = resolve_config(TuneConfig, config, sets, flags)
    cfg = resolved.config
    check_space(cfg)  # a bad knob or base config fails before the study or any run exists
    if cfg.storage:
        open_storage(cfg.storage)  # likewise an unusable storage URL
    console = Console()
    writer = create_run(
        "tune", config=cfg, run_id=run_id, argv=sys.argv, total_steps=cfg.trials, config_sources=resolved.chosen()
    )
    setup_logging(writer.dir, console=False)
    kill = KillSwitch(writer.dir)
    signal.signal(signal.SIGTERM, lambda *_: kill.trip("SIGTERM"))
    with writer:
        writer.start_heartbeat()
        writer.set_status("running", step=0, message=f"study {cfg.study or writer.run_id}")
        doc = run_study(cfg, writer, kill, say=lambda m: console.print(m, highlight=False))
        done = sum(t["state"] in ("complete", "pruned") for t in doc["trials"])
        state = "stopped" if kill.requested() else "completed"
        writer.close(state, message=f"{done} trials finished in study {doc['study']}")
    best = [t for t in doc["trials"] if t["state"] == "complete" and t["value"] is not None]
    console.print(f"study [bold]{doc['study']}[/] ({redact_url(doc['storage'])}): {len(doc['trials'])} trials")
    if best:
        top = max(best, key=lambda t: t["value"])
        console.print(f"best: trial {top['number']} value {top['value']:.3f} run {top['run_id']} {top['params']}")
        console.print(f"evaluate it: ztb eval --model {top['run_id']}  (its DSR counts every trial of the study)")
    console.print(f"run directory: {writer.dir}")
