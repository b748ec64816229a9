"""Does Stage 1 help the agent? PPO three ways on the same splits and seeds, scored on the test
split after costs beside the simple baselines.

    technical-66            PPO on the technical features only
    + stage-1 (frozen)      the same plus the frozen embeddings of a pretrained encoder
    + random encoder        the same plus the embeddings of an encoder of the SAME shape with
                            random weights (the control: extra columns that carry no pretraining)

"On" follows the train config: with the defaults the policy sees a ridge forecast fitted on those
columns (so the arms differ in what the forecast is fitted on); with
configs/presets/features-policy.yaml it sees the columns themselves.

Baselines on the same test bars and costs: buy-and-hold, SMA 20/100 crossover and ridge on the
technical features with a hysteresis band (fit on train, alpha and band chosen on validation).
The encoder must have been pretrained on data that ends before the PPO validation/test periods:
`rl.market.prepare_splits` refuses it otherwise (`check_encoder_period`).

`benchmarks/bench_stage1_ablation.py` runs it and prints the table `docs/stage1-experiments.md` quotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import config_to_dict, validate_config
from ..errors import RunError
from ..evaluation.baselines import buy_and_hold, fit_ridge_baseline, sma_crossover
from ..evaluation.calendar import periods_per_year
from ..pnl import bar_returns, position_returns
from ..pretrain.config import PretrainConfig
from ..pretrain.export import read_payload, save_payload
from ..pretrain.model import MultiTimeframeAutoencoder
from .agent import load_agent
from .config import TrainConfig
from .market import MarketSlice, prepare_splits
from .trainer import run_training

ARMS: tuple[str, ...] = ("technical-66", "+ stage-1 (frozen)", "+ random encoder")


def random_encoder_like(encoder_path: str | Path, out_dir: Path, seed: int) -> Path:
    """An encoder file with the architecture, window config and statistics of `encoder_path` and
    freshly initialised weights (seeded): the control arm."""
    payload = read_payload(Path(encoder_path))
    cfg = PretrainConfig.model_validate(payload["config"])
    torch.manual_seed(seed)
    model = MultiTimeframeAutoencoder(cfg.window.timeframes, payload["lengths"], cfg.model)
    payload = {**payload, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    payload["embedding_dim"] = model.embedding_dim
    return save_payload(payload, Path(out_dir))


def sharpe(r: np.ndarray, ppy: float) -> tuple[float, float]:
    """(annualised Sharpe, its i.i.d. standard error)."""
    sd = float(r.std())
    if sd == 0 or r.size < 2:
        return 0.0, math.sqrt(ppy / max(r.size, 1))
    s = float(r.mean()) / sd
    return s * math.sqrt(ppy), math.sqrt((1 + 0.5 * s * s) / r.size) * math.sqrt(ppy)


def score(positions: np.ndarray, m: MarketSlice, rate: float, ppy: float) -> dict:
    net, _ = position_returns(positions, bar_returns(m.open, m.close), rate)
    s, se = sharpe(net, ppy)
    return {
        "sharpe": round(s, 2),
        "se": round(se, 2),
        "total_return": round(float(np.expm1(np.log1p(net).sum())), 4),
        "flips": int(np.count_nonzero(np.diff(positions))),
        "bars": len(positions),
    }


@dataclass
class ArmResult:
    arm: str
    seed: int
    run_id: str
    steps: int
    fps: float
    test: dict
    val: dict


def run_ablation(
    base: TrainConfig, encoder_path: str | Path, seeds: list[int], work_dir: Path, label: str = "ablation"
) -> dict:
    """Train every arm for every seed; returns {"baselines": {split: {...}}, "arms": [ArmResult...]}."""
    work_dir = Path(work_dir)
    random_path = random_encoder_like(encoder_path, work_dir / "random-encoder", seed=seeds[0])
    arms = {ARMS[0]: None, ARMS[1]: str(encoder_path), ARMS[2]: str(random_path)}
    plain = prepare_splits(base)
    ppy = periods_per_year("M1", base.data.market)
    rate = base.env.costs.rate
    tr, va = plain["train"], plain["val"]
    ridge = fit_ridge_baseline(tr.features, tr.open, tr.close, va.features, va.open, va.close, base.env.costs)
    baselines = {
        split: {
            "buy-and-hold": score(buy_and_hold(len(plain[split])), plain[split], rate, ppy),
            "SMA 20/100": score(sma_crossover(plain[split].close, 20, 100), plain[split], rate, ppy),
            "ridge + hysteresis": score(ridge.positions(plain[split].features), plain[split], rate, ppy),
        }
        for split in ("val", "test")
    }
    results: list[ArmResult] = []
    for seed in seeds:
        for arm, path in arms.items():
            data = config_to_dict(base)
            data["seed"] = seed
            data["encoder"]["path"] = path
            data["encoder"]["mode"] = "frozen"
            cfg = validate_config(TrainConfig, data, source=f"ablation arm {arm}")
            splits = prepare_splits(cfg)  # refuses an encoder pretrained into the val/test periods
            run_id = f"{label}-{ARMS.index(arm)}-s{seed}"
            out = run_training(cfg, run_id=run_id, progress=False)
            if out.checkpoint is None:
                raise RunError(
                    f"ablation arm {arm}, seed {seed}: run {run_id} left no checkpoint to score ({out.message})"
                )
            agent = load_agent(out.checkpoint)
            results.append(
                ArmResult(
                    arm=arm,
                    seed=seed,
                    run_id=run_id,
                    steps=out.step,
                    fps=round(out.fps, 1),
                    test=score(agent.positions(splits["test"].features), splits["test"], rate, ppy),
                    val=score(agent.positions(splits["val"].features), splits["val"], rate, ppy),
                )
            )
    return {"baselines": baselines, "arms": results, "ridge": {"alpha": ridge.alpha, "band": ridge.band}}


def ablation_markdown(res: dict) -> str:
    lines = [
        "| method | seed | test Sharpe (net, annualised) ± SE | test total return | flips | val Sharpe |",
        "|---|---|---|---|---|---|",
    ]
    for a in res["arms"]:
        lines.append(
            f"| PPO {a.arm} | {a.seed} | {a.test['sharpe']} ± {a.test['se']} | {a.test['total_return']:.2%} | "
            f"{a.test['flips']} | {a.val['sharpe']} |"
        )
    for name, t in res["baselines"]["test"].items():
        v = res["baselines"]["val"][name]
        lines.append(
            f"| {name} | - | {t['sharpe']} ± {t['se']} | {t['total_return']:.2%} | {t['flips']} | {v['sharpe']} |"
        )
    return "\n".join(lines)
