"""`ztb pretrain-eval`: model vs naive baselines on the fixed test masks, as JSON + Markdown + PNG.

The table puts the model beside linear interpolation, last-value carry and the window mean, per
timeframe, on exactly the same masked positions. The verdict per timeframe is plain: the model
"beats linear interpolation" only if its masked MSE is lower *and* its return correlation higher.
For a T5 run the report adds the ablation (no T5 / random-init T5 / language-model T5 when local
weights exist), each trained with the same budget and scored on the same masks.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from ..atomic import atomic_write_json, atomic_write_text
from ..errors import CheckpointError
from .baselines import BASELINES, fill
from .config import PretrainConfig
from .metrics import ReconstructionMetrics
from .module import PretrainDataModule, PretrainModule, inputs

log = logging.getLogger("ztb.pretrain")
METHODS = ("model",) + BASELINES
COLUMNS = ("mse", "mae", "mse_price", "mae_price", "corr_level", "corr_return", "consistency", "log_spectrum_error")


@torch.no_grad()
def evaluate_module(
    module: PretrainModule, prepared, cfg: PretrainConfig, split: str = "test", batch_size: int = 256
) -> dict:
    dm = PretrainDataModule(cfg, prepared)
    if len(prepared.split_positions(split)) == 0:
        raise CheckpointError(f"pretrain-eval: the {split} split holds no whole window for this data/config")
    loader = dm.fixed_loader(split, batch_size)
    module = module.eval().cpu()
    tfs = module.timeframes
    acc = ReconstructionMetrics(tfs, cfg.loss.consistency_tol)
    for batch in loader:
        recon, _ = module.model(inputs(batch, tfs))
        acc.update("model", {tf: r.float() for tf, r in recon.items()}, batch)
        for kind in BASELINES:
            acc.update(kind, {tf: fill(kind, batch[f"y:{tf}"], batch[f"mask:{tf}"]) for tf in tfs}, batch)
    return acc.compute()


def _json_safe(obj):
    """NaN/inf -> None (JSON has neither), recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def verdicts(results: dict) -> dict[str, str]:
    out = {}
    for tf, m in results["model"].items():
        lin = results["linear"][tf]
        better_mse = m["mse"] < lin["mse"]
        better_corr = (m["corr_return"] or -1) > (lin["corr_return"] or -1)
        if better_mse and better_corr:
            out[tf] = "beats linear interpolation (lower masked MSE and higher return correlation)"
        elif better_mse or better_corr:
            out[tf] = (
                "mixed: "
                + ("lower MSE" if better_mse else "higher return correlation")
                + " than linear interpolation, not both"
            )
        else:
            out[tf] = "does NOT beat linear interpolation"
    return out


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}"


def markdown_table(results: dict, timeframes: list[str]) -> str:
    lines = ["| tf | method | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for tf in timeframes:
        for method in METHODS:
            r = results[method][tf]
            lines.append(f"| {tf} | {method} | " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _plot(results: dict, timeframes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(timeframes))
    w = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        corr = [results[method][tf]["corr_return"] for tf in timeframes]
        mse = [results[method][tf]["mse"] for tf in timeframes]
        axes[0].bar(x + i * w, [c if c is not None and math.isfinite(c) else 0 for c in corr], w, label=method)
        axes[1].bar(x + i * w, mse, w, label=method)
    for ax, title in zip(
        axes, ("return correlation on masked spans (higher is better)", "masked MSE, normalised (lower is better)")
    ):
        ax.set_xticks(x + w * (len(METHODS) - 1) / 2, timeframes)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def write_report(
    module: PretrainModule,
    prepared,
    cfg: PretrainConfig,
    out_dir: Path,
    split: str = "test",
    ablation: dict | None = None,
    source: str | None = None,
) -> Path:
    """Write pretrain-eval.{json,md,png} into `out_dir`; returns the JSON path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = evaluate_module(module, prepared, cfg, split)
    tfs = module.timeframes
    report = {
        "kind": "pretrain-eval",
        "split": split,
        "source": source,
        "masked_windows": cfg.mask.val_samples,
        "mask_seed": cfg.mask.val_seed,
        "timeframes": tfs,
        "results": results,
        "verdict": verdicts(results),
        "ablation": ablation,
        "backbone": cfg.model.backbone,
    }
    atomic_write_json(out_dir / "pretrain-eval.json", _json_safe(report))
    md = [
        f"# Pretraining evaluation ({split} split)",
        "",
        f"Source: {source or 'end of run'}. Fixed masks (seed {cfg.mask.val_seed}); every method is scored on the "
        "same masked positions. mse/mae are in normalised units, *_price in price units. corr_level is no target "
        "(linear interpolation scores ~0.95 on a random walk); corr_return is the honest one.",
        "",
        markdown_table(results, tfs),
        "",
        "## Verdict",
        "",
    ]
    md += [f"- **{tf}**: {v}" for tf, v in report["verdict"].items()]
    if ablation:
        md += [
            "",
            "## T5 ablation (same budget, same masks)",
            "",
            "| variant | tf | mse | corr_return |",
            "|---|---|---|---|",
        ]
        for name, res in ablation.get("variants", {}).items():
            for tf in tfs:
                md.append(f"| {name} | {tf} | {_fmt(res[tf]['mse'])} | {_fmt(res[tf]['corr_return'])} |")
        for name, why in ablation.get("skipped", {}).items():
            md.append(f"\n- {name}: skipped ({why})")
    md += ["", "![model vs baselines](pretrain-eval.png)", ""]
    atomic_write_text(out_dir / "pretrain-eval.md", "\n".join(md))
    _plot(results, tfs, out_dir / "pretrain-eval.png")
    return out_dir / "pretrain-eval.json"


def run_ablation(cfg: PretrainConfig, prepared, split: str = "test") -> dict:
    """Train the T5 ablation variants with the run's budget and score them on the same masks."""
    import lightning as L

    from ..config import config_to_dict
    from ..errors import ConfigError

    variants = {
        "no-t5 (transformer)": {"model.backbone": "transformer"},
        "t5 random init": {"model.backbone": "t5", "model.t5.init": "random"},
        "t5 language-model init": {"model.backbone": "t5", "model.t5.init": "pretrained"},
    }
    out: dict = {"variants": {}, "skipped": {}, "steps": cfg.trainer.max_steps}
    for name, changes in variants.items():
        data = config_to_dict(cfg)
        for key, value in changes.items():
            node = data
            parts = key.split(".")
            for p in parts[:-1]:
                node = node[p]
            node[parts[-1]] = value
        vcfg = PretrainConfig.model_validate(data)
        try:
            module = PretrainModule(config_to_dict(vcfg), prepared.arrays.lengths, prepared.stats.to_dict())
        except ConfigError as exc:
            out["skipped"][name] = str(exc).split(";")[0]
            continue
        L.seed_everything(cfg.seed, verbose=False)
        trainer = L.Trainer(
            max_steps=vcfg.trainer.max_steps,
            max_epochs=-1,
            limit_train_batches=vcfg.trainer.epoch_steps,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            precision=vcfg.trainer.precision,
            gradient_clip_val=vcfg.optim.grad_clip or None,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
        )
        trainer.fit(module, datamodule=PretrainDataModule(vcfg, prepared))
        res = evaluate_module(module, prepared, vcfg, split)
        out["variants"][name] = {
            tf: {"mse": r["mse"], "corr_return": r["corr_return"]} for tf, r in res["model"].items()
        }
        log.info("ablation %s done", name)
    return out


def evaluate_checkpoint(
    path: str | Path, split: str = "test", ablation: bool = True, out_dir: Path | None = None
) -> Path:
    """Evaluate a Lightning checkpoint (or a run directory: its last.ckpt); report into the run's reports/."""
    from ..manifest import MANIFEST
    from ..runs import find_run
    from .prepare import prepare
    from .runner import verified_checkpoint

    path = Path(path)
    if not path.exists() and path.suffix != ".ckpt":
        path = find_run(str(path))  # a run id (or unique prefix), like every other command takes
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if (path.parent / MANIFEST).exists():
        verified_checkpoint(path)  # never load a file that fails its checksum
    try:
        module = PretrainModule.load_from_checkpoint(str(path), map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable pretrain checkpoint ({exc.__class__.__name__}: {exc})") from None
    cfg = module.cfg
    prepared = prepare(cfg)
    abl = run_ablation(cfg, prepared, split) if (ablation and cfg.model.backbone == "t5") else None
    if out_dir is None:
        out_dir = path.parent.parent / "reports" if path.parent.name == "checkpoints" else path.parent / "reports"
    return write_report(module, prepared, cfg, out_dir, split, ablation=abl, source=str(path))
