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

Every arm and every baseline is scored on the same bars: an encoder's longer warm-up drops more
rows before the chronological split, which moves the split boundaries, so each split is cut to the
bars all arms share (`common_bars`). Each training seed gets its own random encoder (the control
is not one lucky or unlucky draw), and `paired_differences` reports each arm's mean difference
from technical-66 over the seeds with a t interval.

`benchmarks/bench_stage1_ablation.py` runs it and prints the table `docs/stage1-experiments.md` quotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import t as student_t

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


def common_bars(indexes: list[pd.DatetimeIndex]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last bar every index covers: [latest start, earliest end]. Each split is a
    contiguous run of valid bars, so this range holds the same bars in every arm."""
    start = max(ix[0] for ix in indexes)
    end = min(ix[-1] for ix in indexes)
    if start > end:
        raise RunError(f"the arms share no bars: latest start {start} is after earliest end {end}")
    return start, end


def on_bars(m: MarketSlice, span: tuple[pd.Timestamp, pd.Timestamp]) -> MarketSlice:
    """The rows of `m` inside `span` (inclusive)."""
    return m.slice(int(m.index.searchsorted(span[0])), int(m.index.searchsorted(span[1], side="right")))


def paired_differences(arms: list[ArmResult], reference: str = ARMS[0], split: str = "test") -> dict[str, dict]:
    """Per arm other than `reference`: the mean over seeds of (arm Sharpe - reference Sharpe) on the
    same seed, its standard error and 95 % t interval (seeds are the independent draws; the bars
    are the same in every arm, so their noise is shared and cancels in the difference)."""
    by_seed = {a.seed: getattr(a, split)["sharpe"] for a in arms if a.arm == reference}
    out: dict[str, dict] = {}
    for arm in dict.fromkeys(a.arm for a in arms if a.arm != reference):
        d = np.array(
            [getattr(a, split)["sharpe"] - by_seed[a.seed] for a in arms if a.arm == arm and a.seed in by_seed]
        )
        if d.size < 2:
            out[arm] = {"n": int(d.size), "mean": round(float(d.mean()), 2) if d.size else None}
            continue
        se = float(d.std(ddof=1)) / math.sqrt(d.size)
        half = float(student_t.ppf(0.975, d.size - 1)) * se
        out[arm] = {
            "n": int(d.size),
            "mean": round(float(d.mean()), 2),
            "se": round(se, 2),
            "ci95": [round(float(d.mean()) - half, 2), round(float(d.mean()) + half, 2)],
        }
    return out


def run_ablation(
    base: TrainConfig, encoder_path: str | Path, seeds: list[int], work_dir: Path, label: str = "ablation"
) -> dict:
    """Train every arm for every seed and score them all on the bars they share. Returns
    {"baselines": {split: {...}}, "arms": [ArmResult...], "differences": {arm: {...}},
    "bars": {split: [first, last, count]}, "ridge": {...}}."""
    work_dir = Path(work_dir)

    def arm_config(seed: int, path: str | None) -> TrainConfig:
        data = config_to_dict(base)
        data["seed"] = seed
        data["encoder"]["path"] = path
        data["encoder"]["mode"] = "frozen"
        return validate_config(TrainConfig, data, source=f"ablation seed {seed}, encoder {path or 'none'}")

    randoms = {
        seed: str(random_encoder_like(encoder_path, work_dir / f"random-encoder-s{seed}", seed=seed)) for seed in seeds
    }
    plain = prepare_splits(base)
    # the pretrained and a random encoder have the same window, so the same warm-up: one of each
    # kind is enough to find the bars every arm keeps (prepare_splits also refuses an encoder
    # pretrained into the val/test periods)
    coded = prepare_splits(arm_config(seeds[0], str(encoder_path)))
    spans = {split: common_bars([plain[split].index, coded[split].index]) for split in ("val", "test")}
    ppy = periods_per_year("M1", base.data.market)
    rate = base.env.costs.rate
    tr, va = plain["train"], on_bars(plain["val"], spans["val"])
    ridge = fit_ridge_baseline(tr.features, tr.open, tr.close, va.features, va.open, va.close, base.env.costs)
    scored = {split: on_bars(plain[split], spans[split]) for split in spans}
    baselines = {
        split: {
            "buy-and-hold": score(buy_and_hold(len(m)), m, rate, ppy),
            "SMA 20/100": score(sma_crossover(m.close, 20, 100), m, rate, ppy),
            "ridge + hysteresis": score(ridge.positions(m.features), m, rate, ppy),
        }
        for split, m in scored.items()
    }
    results: list[ArmResult] = []
    for seed in seeds:
        for arm, path in {ARMS[0]: None, ARMS[1]: str(encoder_path), ARMS[2]: randoms[seed]}.items():
            cfg = arm_config(seed, path)
            splits = prepare_splits(cfg)
            run_id = f"{label}-{ARMS.index(arm)}-s{seed}"
            out = run_training(cfg, run_id=run_id, progress=False)
            if out.checkpoint is None:
                raise RunError(
                    f"ablation arm {arm}, seed {seed}: run {run_id} left no checkpoint to score ({out.message})"
                )
            agent = load_agent(out.checkpoint)
            test, val = (on_bars(splits[split], spans[split]) for split in ("test", "val"))
            if not (test.index.equals(scored["test"].index) and val.index.equals(scored["val"].index)):
                raise RunError(f"ablation arm {arm}, seed {seed}: its bars differ from the other arms'")
            results.append(
                ArmResult(
                    arm=arm,
                    seed=seed,
                    run_id=run_id,
                    steps=out.step,
                    fps=round(out.fps, 1),
                    test=score(agent.positions(test.features), test, rate, ppy),
                    val=score(agent.positions(val.features), val, rate, ppy),
                )
            )
    return {
        "baselines": baselines,
        "arms": results,
        "differences": paired_differences(results),
        "bars": {split: [str(m.index[0]), str(m.index[-1]), len(m)] for split, m in scored.items()},
        "ridge": {"alpha": ridge.alpha, "band": ridge.band},
    }


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
    first, last, count = res["bars"]["test"]
    lines += [
        "",
        f"Every row is scored on the same {count:,} test bars, {first} to {last}.",
        "",
        f"| arm | test Sharpe minus {ARMS[0]}, mean over seeds | SE | 95 % interval | seeds |",
        "|---|---|---|---|---|",
    ]
    for arm, d in res["differences"].items():
        interval = f"[{d['ci95'][0]}, {d['ci95'][1]}]" if "ci95" in d else "-"
        lines.append(f"| {arm} | {d['mean']} | {d.get('se', '-')} | {interval} | {d['n']} |")
    return "\n".join(lines)
