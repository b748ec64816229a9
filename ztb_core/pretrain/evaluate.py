"""`ztb pretrain-eval`: model vs naive baselines on the fixed test masks, as JSON + Markdown + PNG.

Every method is scored on exactly the same masked positions: the model, channel-wise linear
interpolation, last-value carry, the window mean, the open-aware bridge and the cross-timeframe
fill (`baselines.py`). Returns are split into INTERIOR (both ends masked: what a filler had to
invent) and BOUNDARY (one end masked: the step into or out of a gap, which the next visible open
largely gives away). The verdict per timeframe compares the model with the STRONGEST baseline on
interior returns (correlation and MSE), with paired bootstrap intervals over windows, and says
plainly when the model does not beat it. Level correlation is reported and never a target.
For a T5 run the report adds the ablation (no T5 / random-init T5 / language-model T5 when local
weights exist), each trained with the same budget and scored on the same masks.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_write_json, atomic_write_text
from ..config import config_to_dict, set_dotted, validate_config
from ..errors import CheckpointError, ConfigError
from ..manifest import MANIFEST, verified_checkpoint
from ..runs import find_run
from .baselines import BASELINES, fill_all
from .config import PretrainConfig
from .metrics import TARGETS, ReconstructionMetrics
from .module import PretrainDataModule, PretrainModule, inputs
from .prepare import prepare

log = logging.getLogger("ztb.pretrain")
METHODS = ("model",) + BASELINES
COLUMNS = (
    "corr_return_interior",
    "mse_return_interior",
    "corr_return_boundary",
    "mse_return_boundary",
    "corr_return",
    "mse",
    "mae_price",
    "corr_level",
    "consistency",
    "log_spectrum_error",
)
COMPARED = TARGETS + ("corr_return_boundary", "mse_return_boundary")


@torch.no_grad()
def bare_trainer(cfg: PretrainConfig) -> L.Trainer:
    """A CPU trainer for `cfg.trainer.max_steps` steps with no validation, logging, checkpoints or
    progress bar: for short in-process trainings (ablations, tests) that score the module afterwards."""
    return L.Trainer(
        max_steps=cfg.trainer.max_steps,
        max_epochs=-1,
        limit_train_batches=cfg.trainer.epoch_steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        precision=cfg.trainer.precision,
        gradient_clip_val=cfg.optim.grad_clip or None,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )


def score_module(
    module: PretrainModule, prepared, cfg: PretrainConfig, split: str = "test", batch_size: int = 256
) -> ReconstructionMetrics:
    """The model and every baseline accumulated over the fixed-mask set of `split`."""
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
        for kind, rec in fill_all(batch, tfs).items():
            acc.update(kind, rec, batch)
    return acc


def evaluate_module(
    module: PretrainModule, prepared, cfg: PretrainConfig, split: str = "test", batch_size: int = 256
) -> dict:
    """{method: {tf: {metric: value}}} point estimates (see `metrics.py` for the metric names)."""
    return score_module(module, prepared, cfg, split, batch_size).compute()


def _json_safe(obj):
    """NaN/inf -> None (JSON has neither), recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def verdicts(comparison: dict) -> dict[str, str]:
    """Plain words per timeframe: the model against the strongest baseline on interior returns."""
    out = {}
    for tf, per in comparison.items():
        words = []
        for metric in TARGETS:
            c = per[metric]
            lo, hi = c["diff_interval"]
            state = "beats" if c["beats"] else ("is WORSE than" if c["worse"] else "does NOT beat")
            words.append(
                f"{metric}: model {_fmt(c['model'])} {state} {c['baseline']} {_fmt(c['baseline_value'])} "
                f"(difference {_fmt(c['diff'])}, 95% interval [{_fmt(lo)}, {_fmt(hi)}])"
            )
        won = all(per[m]["beats"] for m in TARGETS)
        head = "BEATS the strongest baseline on interior returns" if won else "does NOT beat the strongest baseline"
        out[tf] = head + ": " + "; ".join(words)
    return out


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}"


def methods_markdown_table(results: dict, timeframes: list[str]) -> str:
    lines = ["| tf | method | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for tf in timeframes:
        for method in METHODS:
            r = results[method][tf]
            lines.append(f"| {tf} | {method} | " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _ci(iv) -> str:
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]"


def comparison_table(comparison: dict, timeframes: list[str]) -> str:
    """Model vs the strongest baseline per timeframe and metric, with 95% bootstrap intervals."""
    lines = [
        "| tf | metric | model [95%] | strongest baseline | baseline [95%] | model - baseline [95%] | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for tf in timeframes:
        for metric, c in comparison[tf].items():
            verdict = "beats" if c["beats"] else ("WORSE" if c["worse"] else "no better")
            lines.append(
                f"| {tf} | {metric} | {_fmt(c['model'])} {_ci(c['model_interval'])} | {c['baseline']} | "
                f"{_fmt(c['baseline_value'])} {_ci(c['baseline_interval'])} | {_fmt(c['diff'])} "
                f"{_ci(c['diff_interval'])} | {verdict} |"
            )
    return "\n".join(lines)


def _plot(results: dict, timeframes: list[str], path: Path) -> None:
    # matplotlib's object API on the Agg canvas (no pyplot global state), as evaluation/plots.py
    fig = Figure(figsize=(12, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    x = np.arange(len(timeframes))
    w = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        corr = [results[method][tf]["corr_return_interior"] for tf in timeframes]
        mse = [results[method][tf]["mse_return_interior"] for tf in timeframes]
        axes[0].bar(x + i * w, [c if math.isfinite(c) else 0 for c in corr], w, label=method)
        axes[1].bar(x + i * w, [m if math.isfinite(m) else 0 for m in mse], w, label=method)
    titles = (
        "interior return correlation (both ends masked; higher is better)",
        "interior return MSE, normalised (lower is better)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xticks(x + w * (len(METHODS) - 1) / 2, timeframes)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def build_report(
    module: PretrainModule, prepared, cfg: PretrainConfig, split: str = "test", n_boot: int = 1000
) -> dict:
    """The report dict: point estimates of every method, the comparison with the strongest
    baseline (paired bootstrap over windows) and the verdicts."""
    acc = score_module(module, prepared, cfg, split)
    results = acc.compute()
    comparison = acc.compare("model", BASELINES, COMPARED, n_boot=n_boot, seed=cfg.mask.val_seed)
    return {
        "kind": "pretrain-eval",
        "split": split,
        "masked_windows": len(acc.window_stats("model", module.timeframes[0], "return")),
        "mask_seed": cfg.mask.val_seed,
        "timeframes": list(module.timeframes),
        "baselines": list(BASELINES),
        "results": results,
        "comparison": comparison,
        "verdict": verdicts(comparison),
        "backbone": cfg.model.backbone,
    }


def write_pretrain_report(
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
    report = build_report(module, prepared, cfg, split)
    report.update(source=source, ablation=ablation)
    results, tfs = report["results"], report["timeframes"]
    atomic_write_json(out_dir / "pretrain-eval.json", _json_safe(report))
    losers = [tf for tf, v in report["verdict"].items() if not v.startswith("BEATS")]
    md = [
        f"# Pretraining evaluation ({split} split)",
        "",
        f"Source: {source or 'end of run'}. Fixed masks (seed {cfg.mask.val_seed}, {report['masked_windows']} "
        "windows); every method is scored on the same masked positions. Interior returns have both ends masked "
        "(the target); boundary returns have one end masked (the next visible open gives most of them away). "
        "Intervals: 95% bootstrap over windows, paired between the model and the baseline. corr_level is "
        "reported, never a target.",
        "",
        "## Model vs the strongest baseline",
        "",
        comparison_table(report["comparison"], tfs),
        "",
        "## Verdict",
        "",
    ]
    if losers:
        md.append(f"**The model does NOT beat the strongest baseline on interior returns at: {', '.join(losers)}.**")
        md.append("")
    md += [f"- **{tf}**: {v}" for tf, v in report["verdict"].items()]
    md += ["", "## Every method", "", methods_markdown_table(results, tfs)]
    if ablation:
        md += [
            "",
            "## T5 ablation (same budget, same masks)",
            "",
            "| variant | tf | mse | corr_return_interior |",
            "|---|---|---|---|",
        ]
        for name, res in ablation.get("variants", {}).items():
            for tf in tfs:
                md.append(f"| {name} | {tf} | {_fmt(res[tf]['mse'])} | {_fmt(res[tf]['corr_return_interior'])} |")
        for name, why in ablation.get("skipped", {}).items():
            md.append(f"\n- {name}: skipped ({why})")
    md += ["", "![model vs baselines](pretrain-eval.png)", ""]
    atomic_write_text(out_dir / "pretrain-eval.md", "\n".join(md))
    _plot(results, tfs, out_dir / "pretrain-eval.png")
    return out_dir / "pretrain-eval.json"


def run_t5_ablation(cfg: PretrainConfig, prepared, split: str = "test") -> dict:
    """Train the T5 ablation variants with the run's budget and score them on the same masks."""
    variants = {
        "no-t5 (transformer)": {"model.backbone": "transformer"},
        "t5 random init": {"model.backbone": "t5", "model.t5.init": "random"},
        "t5 language-model init": {"model.backbone": "t5", "model.t5.init": "pretrained"},
    }
    out: dict = {"variants": {}, "skipped": {}, "steps": cfg.trainer.max_steps}
    for name, changes in variants.items():
        data = config_to_dict(cfg)
        for key, value in changes.items():
            set_dotted(data, key, value, source=f"ablation {name}")
        vcfg = validate_config(PretrainConfig, data, source=f"ablation {name}")
        try:
            module = PretrainModule(config_to_dict(vcfg), prepared.arrays.lengths, prepared.stats.to_dict())
        except ConfigError as exc:
            out["skipped"][name] = str(exc).split(";")[0]
            continue
        L.seed_everything(cfg.seed, verbose=False)
        bare_trainer(vcfg).fit(module, datamodule=PretrainDataModule(vcfg, prepared))
        res = evaluate_module(module, prepared, vcfg, split)
        out["variants"][name] = {
            tf: {"mse": r["mse"], "corr_return_interior": r["corr_return_interior"]} for tf, r in res["model"].items()
        }
        log.info("ablation %s done", name)
    return out


def evaluate_checkpoint(
    path: str | Path, split: str = "test", ablation: bool = True, out_dir: Path | None = None
) -> Path:
    """Evaluate a Lightning checkpoint (or a run directory: its last.ckpt); report into the run's reports/."""
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
    abl = run_t5_ablation(cfg, prepared, split) if (ablation and cfg.model.backbone == "t5") else None
    if out_dir is None:
        out_dir = path.parent.parent / "reports" if path.parent.name == "checkpoints" else path.parent / "reports"
    return write_pretrain_report(module, prepared, cfg, out_dir, split, ablation=abl, source=str(path))
