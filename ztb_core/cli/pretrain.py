"""`ztb pretrain` and `ztb pretrain-eval` (Stage-1 masked-reconstruction encoder)."""

from __future__ import annotations

from pathlib import Path

import typer

from .help import SET_METAVAR


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
        [], "--set", metavar=SET_METAVAR, help="Override a key, e.g. --set trainer.max_steps=2000 (repeatable)."
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
    probe: str = typer.Option(
        "recon",
        "--probe",
        help="recon: masked reconstruction vs the naive fillers; vol: volatility probe (realised variance of "
        "the next 60/240 M1 returns vs HAR-RV + seasonality, EWMA and random encoders).",
    ),
    stride: int = typer.Option(10, "--stride", help="vol: sample every n-th M1 bar.", min=1),
    seeds: int = typer.Option(3, "--random-seeds", help="vol: random encoders of the same shape.", min=1),
    holdout_from: str | None = typer.Option(
        None,
        "--holdout-from",
        help="vol: score on the bars from this time on (a held-out period after the encoder's data; "
        "give --data-end too) instead of the test split; fitting stays on train/val.",
    ),
    data_end: str | None = typer.Option(
        None, "--data-end", help="vol: extend the encoder's bars to this time (exclusive) for --holdout-from."
    ),
) -> None:
    """Model vs the strongest naive filler (open-aware bridge, cross-timeframe fill, linear
    interpolation, last-value carry, window mean) per timeframe on fixed masks, interior and
    boundary returns apart, with bootstrap intervals: JSON + Markdown + PNG in the run's reports/.
    With --probe vol: the volatility probe (docs/stage1-experiments.md) into the same folder."""
    from ..errors import ZtbError
    from ..logs import setup_logging

    if probe not in ("recon", "vol"):
        raise ZtbError(f"--probe {probe!r}: expected recon or vol")
    if split not in ("val", "test"):
        raise ZtbError(f"--split {split!r}: expected val or test")
    setup_logging(None, console=True)
    if probe == "vol":
        _vol_probe(checkpoint, out, stride, seeds, holdout_from, data_end)
        return
    from ..pretrain.evaluate import evaluate_checkpoint

    path = evaluate_checkpoint(checkpoint, split=split, ablation=ablation, out_dir=out)
    typer.echo(f"report: {path} (+ .md, .png)")
    typer.echo(path.with_suffix(".md").read_text())


def _vol_probe(
    checkpoint: Path, out: Path | None, stride: int, seeds: int, holdout_from: str | None, data_end: str | None
) -> None:
    import pandas as pd

    from ..errors import ZtbError
    from ..pretrain.export import load_encoder
    from ..pretrain.vol_probe import encoder_rows, load_probe_bars, resolve_reports_dir, run_probe
    from ..pretrain.vol_report import write_vol_report
    from ..runs import find_run

    if (holdout_from is None) != (data_end is None):
        raise ZtbError("--holdout-from and --data-end go together (the held-out bars lie after the encoder's data)")
    path = checkpoint if checkpoint.exists() else find_run(str(checkpoint))
    bundle = load_encoder(path)
    start = None if holdout_from is None else pd.Timestamp(holdout_from, tz="UTC")
    m1 = load_probe_bars(bundle, data_end)
    res = run_probe(bundle, m1, encoder_rows(bundle), stride=stride, seeds=tuple(range(seeds)), holdout_from=start)
    name = "vol-probe" if start is None else "vol-probe-holdout"
    title = "Volatility probe" + ("" if start is None else f" (held out from {start})")
    report = write_vol_report(res, out or resolve_reports_dir(path), name, title)
    typer.echo(f"report: {report} (+ .md, .png)")
    typer.echo(report.with_suffix(".md").read_text())
