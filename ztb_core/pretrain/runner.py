"""`ztb pretrain`: one run directory, a Lightning fit, a safe stop, exact resume, encoder export.

Scale-out is Lightning's: `trainer.devices` / `trainer.num_nodes` with `trainer.strategy: ddp`,
launched with `torchrun` (or SLURM's `srun`) on each node; every rank draws the same batch order and
takes every world_size-th batch, so no sample is trained twice per step.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pandas as pd

from ..config import Resolved, changed_keys, config_to_dict, read_yaml, resolve_config, validate_config
from ..data.store import dataset_path, list_datasets
from ..errors import ConfigError, DataError, RunError, ZtbError
from ..logs import setup_logging
from ..manifest import verified_checkpoint
from ..paths import runs_dir
from ..runs import RunWriter
from ..runs import resolve_resume as resolve_run_resume
from ..runtime.killfile import clear_run_stop
from ..runtime.run_writer import create_run, open_run
from ..runtime.telemetry import TelemetryThread
from ..tensorboard import require_tensorboard, tensorboard_dir
from .config import PretrainConfig
from .t5 import check_t5_source

log = logging.getLogger("ztb.pretrain")


class _NoAdverts(logging.Filter):
    """Lightning logs a product advert at every Trainer start; headless logs are for the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdverts())


def resolve_pretrain_resume(resume: str | None, run_id: str | None = None) -> tuple[Path | None, Path | None]:
    """`runs.resolve_resume` for pretrain runs (None as the file means "its last.ckpt")."""
    return resolve_run_resume(resume, run_id, kind="pretrain")


#: what a fast-dev-run leaves behind (status message and the command's output)
FAST_DEV_RUN_DONE = (
    "fast-dev-run passed: encoder exported after one training batch (a smoke test, not a trained "
    "encoder); no checkpoint and no test report written"
)

#: rank 0 tells the processes Lightning launches for DDP which run folder they belong to
RUN_DIR_ENV = "ZTB_PRETRAIN_RUN_DIR"


def launch_rank(devices: int | str = 1) -> int:
    """Global rank of this process as its launcher set it before anything ran: torchrun and SLURM
    set RANK / SLURM_PROCID; Lightning's own DDP launcher starts ranks > 0 with LOCAL_RANK (and
    NODE_RANK) while the process the user started has neither. 0 owns the run folder."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key])
    if "LOCAL_RANK" in os.environ:
        per_node = devices if isinstance(devices, int) and devices > 0 else 1
        return int(os.environ.get("NODE_RANK", 0)) * per_node + int(os.environ["LOCAL_RANK"])
    return 0


class RankWriter:
    """What a DDP rank other than 0 holds instead of a `RunWriter`: the run folder's paths (the
    kill-file, the checkpoint folder Lightning shares) and writes that do nothing, so only rank 0
    ever writes to the run directory."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.run_id = self.dir.name
        self.checkpoints_dir = self.dir / "checkpoints"
        self.reports_dir = self.dir / "reports"

    def __enter__(self) -> RankWriter:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def rewind_metrics(self, step: int) -> int:
        return 0

    def event(self, *args, **kwargs) -> None:
        return None

    set_status = metric = heartbeat = start_heartbeat = discard = event


def _rank_run_dir(run_dir: Path | None, run_id: str | None, rank: int) -> Path:
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    if run_dir is not None:
        return run_dir
    if run_id:
        return runs_dir() / run_id
    raise RunError(
        f"DDP rank {rank}: no run folder to join; with torchrun/SLURM pass the same --run-id to every process"
    )


def verified_last_checkpoint(run_dir: Path) -> Path | None:
    """last.ckpt of a run, verified against the manifest's sha256 (None if the run never saved)."""
    # callbacks imports lightning, which this module leaves for after the cheap checks (see run_pretrain)
    from .callbacks import LAST

    path = run_dir / "checkpoints" / LAST
    return verified_checkpoint(path) if path.exists() else None


def preflight(cfg: PretrainConfig) -> None:
    """Config errors that show without loading data or building the model, checked before any
    run folder exists (a run that could never start leaves nothing behind)."""
    d = cfg.data
    start, end = (None if t is None else _as_utc(pd.Timestamp(t)) for t in (d.start, d.end))
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"data.end {end} must be after data.start {start}")
    if d.kind == "store":
        path = dataset_path(d.symbol, "M1", d.data_dir)
        if not path.exists():
            have = list_datasets(d.data_dir)
            hint = f"; stored: {', '.join(f'{s}/{tf}' for s, tf in have)}" if have else "; the store is empty"
            raise DataError(f"data.symbol={d.symbol!r}: no M1 data at {path}{hint} (import with `ztb data import`)")
    if cfg.model.backbone == "t5":
        check_t5_source(cfg.model.t5)


def run_pretrain(
    config_path: str | None = None,
    overrides: list[str] | None = None,
    *,
    headless: bool = True,
    fast_dev_run: bool = False,
    resume: str | None = None,
    run_id: str | None = None,
    argv: list[str] | None = None,
) -> Path:
    """Run (or resume) a pretraining; returns the run directory. A kill-file stop returns normally.

    `run_id` names a new run, or with `resume="latest"` picks the run to continue. Config errors
    that can be seen up front raise before a run folder is created or touched."""
    overrides = list(overrides or [])
    ckpt_path: Path | None = None
    resolved: Resolved[PretrainConfig] | None = None  # a new run's config and where its keys came from
    run_dir, ckpt_file = resolve_pretrain_resume(resume, run_id)  # (None, None): a new run
    if run_dir is not None:
        if run_id and run_dir.name != run_id and resume != "latest":
            raise RunError(f"--run-id {run_id} and --resume {resume} name different runs ({run_dir.name})")
        stored = validate_config(
            PretrainConfig, _read_yaml(run_dir / "config.yaml"), source=str(run_dir / "config.yaml")
        )
        cfg = resolve_config(PretrainConfig, run_dir / "config.yaml", overrides).config if overrides else stored
        bad = [k for k in changed_keys(config_to_dict(stored), config_to_dict(cfg)) if not k.startswith("trainer.")]
        if bad:
            raise ConfigError(f"--resume keeps the run's config; only trainer.* may change, not {', '.join(bad)}")
        preflight(cfg)
        ckpt_path = verified_checkpoint(ckpt_file) if ckpt_file is not None else verified_last_checkpoint(run_dir)
    else:
        resolved = resolve_config(PretrainConfig, config_path, overrides)
        cfg = resolved.config
        preflight(cfg)
    # heavy imports (torch, lightning and the modules built on them) only after the cheap checks: a bad config
    # fails in a second, and t5._offline() has set HF_HUB_OFFLINE before huggingface_hub is first imported
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    from .callbacks import FreeingCheckpointIO, KillFileCallback, ManifestCallback, ProgressLog, RunWriterLogger
    from .evaluate import write_pretrain_report
    from .export import save_encoder
    from .module import PretrainDataModule, PretrainModule
    from .prepare import prepare

    rank = launch_rank(cfg.trainer.devices)
    writer: RunWriter | RankWriter
    if rank > 0:
        writer = RankWriter(_rank_run_dir(run_dir, run_id, rank))
    elif run_dir is not None:
        writer = open_run(run_dir)
        clear_run_stop(run_dir)
    else:
        writer = create_run(
            "pretrain",
            cfg,
            run_id=run_id,
            argv=argv if argv is not None else sys.argv,
            seeds={"seed": cfg.seed},
            total_steps=cfg.trainer.max_steps,
            config_sources=resolved.chosen() if resolved is not None else None,
        )
    setup_logging(writer.dir if rank == 0 else None, console=True)
    os.environ[RUN_DIR_ENV] = str(writer.dir)  # inherited by the ranks Lightning's DDP launcher starts
    with writer:
        start_step = 0
        if ckpt_path is not None:
            start_step = int(torch.load(ckpt_path, map_location="cpu", weights_only=False).get("global_step", 0))
            removed = writer.rewind_metrics(start_step)
            writer.event("resumed", step=start_step, checkpoint=ckpt_path.name, metrics_rows_dropped=removed)
            log.info("resuming %s from step %d", writer.run_id, start_step)
        writer.set_status("starting", step=start_step, total_steps=cfg.trainer.max_steps, message="preparing data")
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        try:
            prepared = prepare(cfg)
        except ZtbError:
            if run_dir is None:  # a new run whose data is unusable: leave nothing behind
                writer.discard()
            raise
        writer.event(
            "data_ready",
            windows_train=len(prepared.split_positions("train")),
            windows_val=len(prepared.split_positions("val")),
            windows_test=len(prepared.split_positions("test")),
            index_key=prepared.index_key,
            index_cached=prepared.index_cached,
            **{k: round(v, 3) for k, v in prepared.timings.items()},
        )
        module = PretrainModule(
            config_to_dict(cfg),
            prepared.arrays.lengths,
            prepared.stats.to_dict(),
            data_info={"market": prepared.market, "index_key": prepared.index_key},
        )
        dm = PretrainDataModule(cfg, prepared)
        t = cfg.trainer
        manifest = ManifestCallback(writer.checkpoints_dir, writer)
        kill = KillFileCallback(writer.dir, writer.checkpoints_dir, writer, manifest, cfg.optim.accumulate)
        callbacks: list = [kill, manifest, ProgressLog(log, t.max_steps, t.log_every)]
        if not fast_dev_run:
            callbacks.insert(
                0,
                ModelCheckpoint(
                    dirpath=writer.checkpoints_dir,
                    filename="best-{step}-{val_loss:.4f}",
                    monitor="val_loss",
                    mode="min",
                    save_top_k=t.save_top_k,
                    save_last=True,
                    every_n_epochs=1,
                    auto_insert_metric_name=True,
                ),
            )
        if not headless:
            callbacks.append(RichProgressBar())
        trainer = L.Trainer(
            max_steps=t.max_steps,
            max_epochs=-1,
            limit_train_batches=t.epoch_steps * cfg.optim.accumulate,
            limit_val_batches=t.val_batches,
            accumulate_grad_batches=cfg.optim.accumulate,
            gradient_clip_val=cfg.optim.grad_clip or None,
            precision=t.precision,
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            logger=[RunWriterLogger(writer), *tensorboard_loggers(cfg, writer.dir)],
            callbacks=callbacks,
            plugins=[FreeingCheckpointIO(writer.checkpoints_dir, writer)],
            log_every_n_steps=t.log_every,
            num_sanity_val_steps=0,
            enable_progress_bar=not headless,
            enable_model_summary=False,
            default_root_dir=writer.dir,
            fast_dev_run=fast_dev_run,
            use_distributed_sampler=False,
            deterministic=False,
        )
        writer.set_status("running", step=start_step, message="fast-dev-run" if fast_dev_run else "training")
        writer.event("started", resumed=ckpt_path is not None, fast_dev_run=fast_dev_run)
        telemetry = TelemetryThread(writer, interval_s=5.0).start() if rank == 0 else None
        writer.start_heartbeat()
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
        finally:
            if telemetry is not None:
                telemetry.stop()
        if trainer.is_global_zero:
            manifest.sync()
        step = trainer.global_step
        if kill.stopped_at is not None:
            writer.set_status(
                "stopped",
                step=step,
                message=f"stopped safely at step {step}; resume with `ztb pretrain --resume {writer.run_id}`",
            )
            writer.event("stopped", step=step)
            log.info("stopped safely at step %d (checkpoint saved)", step)
            return writer.dir
        if trainer.is_global_zero:
            # a fast-dev-run exports too (so the pipeline after it, e.g. the probes, can be smoke-tested),
            # but Lightning writes no checkpoint then, and the test report is skipped
            enc = save_encoder(module, writer.dir / "encoder")
            writer.event("encoder_exported", path=str(enc), fast_dev_run=fast_dev_run)
            if not fast_dev_run:
                writer.set_status("running", step=step, message="evaluating on the test split")
                report = write_pretrain_report(module, prepared, cfg, writer.reports_dir, split="test")
                writer.event("report_written", path=str(report))
        writer.set_status("completed", step=step, message=FAST_DEV_RUN_DONE if fast_dev_run else "completed")
        writer.event("completed", step=step)
    return writer.dir


def _as_utc(t):  # naive times in configs mean UTC (as in DataSourceConfig)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _read_yaml(path: Path) -> dict:
    return read_yaml(path)


def tensorboard_loggers(cfg: PretrainConfig, run_dir: Path) -> list:
    """Lightning's own TensorBoard writer beside the run-directory logger, when asked for."""
    if not cfg.logging.tensorboard:
        return []
    require_tensorboard()
    # lightning stays out of this module's import: see run_pretrain (cheap checks first)
    from lightning.pytorch.loggers import TensorBoardLogger

    return [TensorBoardLogger(save_dir=str(tensorboard_dir(run_dir)), name="", version="")]
