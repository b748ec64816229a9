"""`ztb pretrain` and `ztb pretrain-eval` (Stage-1 masked-reconstruction encoder)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
    app.command("pretrain-eval")(pretrain_eval)


def pretrain(
    config: Path | None = typer.Option(None, "--config", "-c", help="Config YAML (default configs/pretrain.yaml)."),
    headless: bool = typer.Option(
        False, "--headless", help="No progress bar; plain log lines (for supervisors and SSH)."
    ),
    fast_dev_run: bool = typer.Option(
        False, "--fast-dev-run", help="One training and one validation batch, then stop."
    ),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="Continue a run: 'latest' (newest checkpoint of --run-id "
        "or of the newest pretrain run), a run id/dir (its last checkpoint) or a "
        "checkpoint file in a run's checkpoints/.",
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the run (new) or the run to resume."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a key, e.g. --set trainer.max_steps=2000 (repeatable)."
    ),
) -> None:
    """Self-supervised multi-timeframe masked-reconstruction pretraining. Drop ztb.stop into the
    run folder (or `ztb stop RUN`) to stop safely; `--resume latest` continues exactly."""
    import sys

    from ..pretrain.runner import FAST_DEV_RUN_DONE, run_pretrain

    run_dir = run_pretrain(
        str(config) if config else None,
        overrides,
        headless=headless,
        fast_dev_run=fast_dev_run,
        resume=resume,
        run_id=run_id,
        argv=sys.argv,
    )
    if fast_dev_run:
        typer.echo(FAST_DEV_RUN_DONE)
    typer.echo(f"run directory: {run_dir}")


def pretrain_eval(
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", help="A pretrain .ckpt, or a run directory (uses its last.ckpt)."
    ),
    split: str = typer.Option("test", "--split", help="val or test."),
    ablation: bool = typer.Option(
        True, "--ablation/--no-ablation", help="T5 runs: train and score the ablation variants."
    ),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default: the run's reports/)."),
) -> None:
    """Model vs the strongest naive filler (open-aware bridge, cross-timeframe fill, linear
    interpolation, last-value carry, window mean) per timeframe on fixed masks, interior and
    boundary returns apart, with bootstrap intervals: JSON + Markdown + PNG in the run's reports/."""
    from ..errors import ZtbError
    from ..logs import setup_logging
    from ..pretrain.evaluate import evaluate_checkpoint

    if split not in ("val", "test"):
        raise ZtbError(f"--split {split!r}: expected val or test")
    setup_logging(None, console=True)
    path = evaluate_checkpoint(checkpoint, split=split, ablation=ablation, out_dir=out)
    typer.echo(f"report: {path} (+ .md, .png)")
    typer.echo(path.with_suffix(".md").read_text())
