"""The PPO agent against the simple baselines, on the same bars and costs (issue 12's targets).

For each seed: train a fresh run with the given config overrides, then score on the validation
and test splits the final checkpoint and the best-by-validation one, next to buy-and-hold, an SMA
crossover (20/100) and ridge on the same features with a hysteresis band (fit on train, alpha and
band chosen on val; `ztb_core.evaluation.baselines.fit_ridge_baseline`). Also reported from the
run's own metrics: the periodic validation Sharpe curve (best vs final, one standard error) and the
turnover trend over the last half of training; on the test split, a paired block bootstrap of
the final agent's Sharpe minus SMA's and minus ridge's (95% interval). One JSON line per seed goes to --out.

    .venv/bin/python benchmarks/bench_agent_vs_baselines.py --label default --steps 1000000 --seeds 0 1 2
    .venv/bin/python benchmarks/bench_agent_vs_baselines.py --label g09 --steps 300000 --set ppo.gamma=0.9

Sharpe figures are annualised (M1 FX: 374,400 bars a year); SE is the i.i.d. standard error of
the annualised Sharpe, sqrt((1 + SR_bar^2 / 2) / T) * sqrt(bars per year). Runs go to a temporary
artifacts folder unless ZTB_ARTIFACTS is set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sharpe_stats(r: np.ndarray, ppy: float) -> tuple[float, float]:
    """(annualised Sharpe, its standard error)."""
    sd = float(r.std())
    if sd == 0 or r.size < 2:
        return 0.0, math.sqrt(ppy / max(r.size, 1))
    s = float(r.mean()) / sd
    return s * math.sqrt(ppy), math.sqrt((1 + 0.5 * s * s) / r.size) * math.sqrt(ppy)


def score(positions: np.ndarray, m, rate: float, ppy: float) -> dict:
    from ztb_core.pnl import bar_returns, position_returns

    rets = bar_returns(m.open, m.close)
    net, _ = position_returns(positions, rets, rate)
    gross, _ = position_returns(positions, rets, 0.0)
    s_net, se = sharpe_stats(net, ppy)
    s_gross, _ = sharpe_stats(gross, ppy)
    return {
        "net": round(s_net, 2),
        "gross": round(s_gross, 2),
        "se": round(se, 2),
        "flips": int(np.count_nonzero(np.diff(positions))),
        "bars": len(positions),
        "psr": round(psr(net), 4),
    }


def paired_bootstrap(agent: np.ndarray, others: dict[str, np.ndarray], m, rate: float, ppy: float, seed: int) -> dict:
    """95% interval of Sharpe(agent) - Sharpe(baseline), net of costs, from a stationary block
    bootstrap that resamples the same bars for both (paired), 2,000 resamples."""
    from ztb_core.evaluation.bootstrap import bootstrap_statistics, percentile_interval
    from ztb_core.pnl import bar_returns, position_returns

    rets = bar_returns(m.open, m.close)
    cols = [position_returns(agent, rets, rate)[0]] + [position_returns(p, rets, rate)[0] for p in others.values()]
    stats, block = bootstrap_statistics(
        np.column_stack(cols), ppy, n_resamples=2000, seed=seed, which=("sharpe",), drawdown_columns=[]
    )
    sharpe = stats["sharpe"]
    out: dict = {"block_length": round(block, 1)}
    for k, name in enumerate(others, start=1):
        diff = sharpe[:, 0] - sharpe[:, k]
        lo, hi = percentile_interval(diff, 0.95)
        out[name] = {"diff_ci95": [round(lo, 2), round(hi, 2)], "p_diff_le_0": round(float(np.mean(diff <= 0)), 3)}
    return out


def psr(r: np.ndarray) -> float:
    """P(true Sharpe > 0) for these returns (Bailey & Lopez de Prado, with skew and kurtosis)."""
    from ztb_core.evaluation.sharpe_stats import probabilistic_sharpe_ratio

    sd = float(r.std())
    if sd == 0 or r.size < 3:
        return 0.5
    z = (r - r.mean()) / sd
    return probabilistic_sharpe_ratio(float(r.mean()) / sd, r.size, float((z**3).mean()), float((z**4).mean()))


def deflated(test_sharpe_ann: float, n_obs: int, trial_sharpes_ann: list[float], ppy: float) -> dict:
    """DSR of the test Sharpe against the best of the trials run to choose it (the periodic
    validation evaluations and the baselines), with their Sharpe variance; per-period inside."""
    from ztb_core.evaluation.sharpe_stats import deflated_sharpe_ratio

    per = [s / math.sqrt(ppy) for s in trial_sharpes_ann]
    var = float(np.var(per, ddof=1)) if len(per) > 1 else 0.0
    out = deflated_sharpe_ratio(test_sharpe_ann / math.sqrt(ppy), n_obs, max(len(per), 1), var)
    return {"dsr": round(out["dsr"], 4), "trials": len(per), "trial_sharpe_var_per_bar": var}


def price_filter_reference(cfg, splits: dict, rate: float, ppy: float) -> dict | None:
    """Synthetic market only: the Kalman filter of past prices with the market's true parameters
    (`price_filter_forecasts`), traded through the form and hysteresis band best on val, scored on
    val and test, and its paired interval against SMA on test: how far above SMA the best
    possible model of these bars gets on this test window."""
    from ztb_core.data.synthetic import price_filter_forecasts
    from ztb_core.evaluation.baselines import hysteresis, sma_crossover

    if cfg.data.kind != "synthetic" or cfg.data.synthetic.signal_strength == 0:
        return None
    forecasts = price_filter_forecasts(cfg.data.synthetic.model_copy(update={"market": cfg.data.market}))
    z: dict = {}
    for split in ("val", "test"):
        f = forecasts.reindex(splits[split].index)
        z[split] = {form: (f[form] / f[form].std()).to_numpy() for form in f.columns}
    choices = [(form, b) for form in forecasts.columns for b in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)]
    val = {c: score(hysteresis(z["val"][c[0]], c[1]), splits["val"], rate, ppy) for c in choices}
    form, band = max(choices, key=lambda c: val[c]["net"])
    test_pos = hysteresis(z["test"][form], band)
    test = splits["test"]
    vs_sma = paired_bootstrap(test_pos, {"sma_20_100": sma_crossover(test.close, 20, 100)}, test, rate, ppy, 0)
    return {
        "chosen_on_val": {"forecast": form, "band_sd": band, "of": len(choices)},
        "val": val[(form, band)],
        "test": score(test_pos, test, rate, ppy),
        "test_minus_sma": vs_sma["sma_20_100"],
        "test_positions": test_pos,
    }


def curve(run_dir: Path, split: str) -> dict:
    """Best vs final periodic-evaluation Sharpe and the turnover trend of the last half."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    ev = [r for r in rows if r.get("split") == split and r.get("sharpe") is not None]
    train = [r for r in rows if r.get("split") == "train" and "ep_turnover_mean" in r]
    out: dict = {"eval_steps": [r["step"] for r in ev], "eval_sharpe": [round(r["sharpe"], 2) for r in ev]}
    if ev:
        best = max(ev, key=lambda r: r["sharpe"])
        out.update(
            best_step=best["step"], best_sharpe=round(best["sharpe"], 2), final_sharpe=round(ev[-1]["sharpe"], 2)
        )
        out["eval_turnover"] = [round(r.get("turnover", float("nan")), 4) for r in ev]
    if train:
        last = train[-1]["step"]
        half = [r for r in train if r["step"] >= last / 2]
        if len(half) >= 2:
            x = np.array([r["step"] for r in half], dtype=float)
            y = np.array([r["ep_turnover_mean"] for r in half], dtype=float)
            slope = float(np.polyfit(x, y, 1)[0])
            out["train_turnover_first_last_half"] = [
                round(float(y[: len(y) // 4 or 1].mean()), 2),
                round(float(y[-(len(y) // 4 or 1) :].mean()), 2),
            ]
            out["train_turnover_slope_per_100k"] = round(slope * 1e5, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help="name of the candidate (for the record)")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_vs_baselines.jsonl"))
    ap.add_argument(
        "--run", type=Path, help="score this existing run (its newest and best checkpoints) instead of training"
    )
    args = ap.parse_args()
    os.environ.setdefault("ZTB_ARTIFACTS", tempfile.mkdtemp(prefix="ztb-bench-agent-"))

    from ztb_core.config import load_config
    from ztb_core.evaluation.baselines import buy_and_hold, fit_ridge_baseline, sma_crossover
    from ztb_core.evaluation.calendar import periods_per_year
    from ztb_core.manifest import Manifest
    from ztb_core.rl.agent import load_agent
    from ztb_core.rl.config import TrainConfig, load_recorded_config
    from ztb_core.rl.market import prepare_splits
    from ztb_core.rl.trainer import run_training

    if args.run is not None:
        base = load_recorded_config(args.run / "config.yaml", args.sets)
        args.seeds = [base.seed]
    else:
        base = load_config(TrainConfig, None, [*args.sets, f"total_timesteps={args.steps}"])
    splits = prepare_splits(base)
    ppy = periods_per_year("M1", base.data.market)
    rate = base.env.costs.rate
    tr, va = splits["train"], splits["val"]
    ridge = fit_ridge_baseline(tr.features, tr.open, tr.close, va.features, va.open, va.close, base.env.costs)
    baselines = {}
    for split in ("val", "test"):
        m = splits[split]
        baselines[split] = {
            "buy_and_hold": score(buy_and_hold(len(m)), m, rate, ppy),
            "sma_20_100": score(sma_crossover(m.close, 20, 100), m, rate, ppy),
            "ridge_hysteresis": score(ridge.positions(m.features), m, rate, ppy),
        }
    reference = price_filter_reference(base, splits, rate, ppy)
    shown = None if reference is None else {k: v for k, v in reference.items() if k != "test_positions"}
    print(f"[{args.label}] baselines (ridge alpha {ridge.alpha}, band {ridge.band} sd): {json.dumps(baselines)}")
    if shown is not None:
        print(f"[{args.label}] reference, the best filter of past prices (knows the market): {json.dumps(shown)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        cfg = base.model_copy(update={"seed": seed})
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        if args.run is not None:
            run_dir, fps = args.run, float("nan")
        else:
            out = run_training(cfg, run_id=f"{args.label}-s{seed}-{int(time.time())}", progress=False)
            run_dir, fps = out.run_dir, out.fps
        wall = time.perf_counter() - t0
        entries = Manifest(run_dir / "checkpoints").entries()
        best = next((e for e in entries if e.get("best")), entries[-1])
        agents = {"final": load_agent(run_dir / "checkpoints" / entries[-1]["file"])}
        agents["best"] = load_agent(run_dir / "checkpoints" / best["file"])
        scores = {
            split: {
                name: score(a.positions(splits[split].features), splits[split], rate, ppy) for name, a in agents.items()
            }
            for split in ("val", "test")
        }
        trials = curve(run_dir, cfg.eval.split).get("eval_sharpe", []) + [b["net"] for b in baselines["val"].values()]
        for t in scores["test"].values():
            t["deflated"] = deflated(t["net"], t["bars"], trials, ppy)
        test = splits["test"]
        others = {"sma_20_100": sma_crossover(test.close, 20, 100), "ridge_hysteresis": ridge.positions(test.features)}
        if reference is not None:
            others["price_filter"] = reference["test_positions"]
        for name, agent in agents.items():  # final, and best-by-val (what `ztb eval --model RUN` scores)
            scores["test"][name]["paired_bootstrap"] = paired_bootstrap(
                agent.positions(test.features), others, test, rate, ppy, seed
            )
        rec = {
            "label": args.label,
            "sets": args.sets,
            "seed": seed,
            "steps": agents["final"].step,
            "best_ckpt_step": best["step"],
            "wall_s": round(wall, 1),
            "fps": round(fps, 1),
            "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "agent": scores,
            "baselines": baselines,
            "price_filter": shown,
            "curve": curve(run_dir, cfg.eval.split),
        }
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
