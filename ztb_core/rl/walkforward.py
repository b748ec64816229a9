"""`ztb walkforward`: train on a window, score on the next one only, move on.

The valid rows of the training data (exactly what `ztb train` would use) are cut into a first
training window (`initial_train_fraction`) and `folds` equal out-of-sample windows after it. Fold
k trains a normal child run (`ztb train --headless`, its data cut to the training window by
`data.start`/`data.end`; the last `inner_val_fraction` of the window is its validation split,
used for periodic evaluation and checkpoint choice), then the parent scores the chosen checkpoint
on window k, which no part of fold k has seen. Windows grow (`expanding`) or slide with a fixed
length (`rolling`).

Each window is scored next to buy-and-hold, an SMA crossover, a ridge regression fitted on the
fold's training window (band chosen on its validation part) and random policies. The aggregate is
the out-of-sample record glued end to end (every fold starts flat): concatenated equity, a
per-fold table, and a DSR whose trials are the folds (their count and Sharpe variance). Written
as `reports/walkforward.{json,md,png}` of the parent run (kind `walkforward`), plus one `fold`
metrics row per fold.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ..atomic import atomic_write_json, atomic_write_text
from ..config import ZtbModel, load_config
from ..data.splits import SplitConfig
from ..errors import ConfigError, DataError, RunError
from ..evaluation import backtest, performance_metrics, quick_evaluation, sharpe_inference
from ..evaluation.baselines import buy_and_hold, sma_crossover
from ..evaluation.calendar import periods_per_year
from ..evaluation.config import BaselineConfig
from ..evaluation.plots import draw_walkforward
from ..evaluation.report import MIN_BARS, strongest_baseline
from ..evaluation.selection import choose_checkpoint
from ..evaluation.trials import TrialRegistry
from ..runs import RunWriter
from ..runtime.killfile import KillSwitch
from .agent import load_agent
from .child import ChildTrainRun
from .config import TrainConfig
from .evaluate import ridge_for, score_flat
from .market import MarketSlice, prepare_splits

log = logging.getLogger("ztb.rl.walkforward")
OOS_SPLIT = "walkforward_oos"


class WalkForwardConfig(ZtbModel):
    default_file: ClassVar[str] = "walkforward.yaml"

    folds: int = Field(4, ge=1, le=1000, description="out-of-sample windows, each scored once")
    scheme: Literal["expanding", "rolling"] = Field(
        "expanding", description="expanding: every fold trains from the start; rolling: a fixed-length window"
    )
    initial_train_fraction: float = Field(
        0.5, gt=0, lt=1, description="first training window, as a fraction of the valid rows (rolling: every window)"
    )
    inner_val_fraction: float = Field(
        0.2, gt=0, lt=1, description="last part of each training window: the child's validation split"
    )
    select: Literal["best", "latest"] = Field(
        "best", description="checkpoint of each fold scored out of sample: best by validation, or the last"
    )
    warm_start: bool = Field(
        False,
        description="each fold after the first starts from the policy weights of the previous fold's scored "
        "checkpoint (train config warm_start) instead of from scratch",
    )
    train_config: str | None = Field(None, description="train config YAML of every fold (none = configs/train.yaml)")
    train_overrides: list[str] = Field([], description="--set overrides of every fold, e.g. total_timesteps=200000")
    poll_s: float = Field(1.0, gt=0, le=60, description="seconds between reads of a fold run's metrics")
    stop_timeout_s: float = Field(
        120.0, gt=0, description="after a kill-file, wait this long for a fold run to save and exit"
    )
    curve_points: int = Field(2000, ge=10, le=100_000, description="points kept of the concatenated equity curves")


def fold_windows(n: int, cfg: WalkForwardConfig) -> list[tuple[slice, slice]]:
    """(train rows, test rows) per fold over `n` valid rows; the test windows tile the rows after the
    first training window, the last one taking the remainder."""
    initial = int(n * cfg.initial_train_fraction)
    width = (n - initial) // cfg.folds
    if initial < MIN_BARS or width < MIN_BARS:
        raise DataError(
            f"walk-forward: {n} valid rows give a first training window of {initial} and test windows of "
            f"{width} rows for {cfg.folds} folds (at least {MIN_BARS} each); use more data, fewer folds or "
            "another initial_train_fraction"
        )
    out = []
    for k in range(cfg.folds):
        start = initial + k * width
        end = n if k == cfg.folds - 1 else start + width
        train = slice(0, start) if cfg.scheme == "expanding" else slice(start - initial, start)
        out.append((train, slice(start, end)))
    return out


def _iso(t: Any) -> str:
    return t.isoformat()


def fold_overrides(base: TrainConfig, cfg: WalkForwardConfig, all_rows: MarketSlice, train: slice) -> list[str]:
    """The child's data window and inner split: bars [start, first test bar), no test split."""
    start = base.data.start if train.start == 0 else all_rows.index[train.start]
    end = all_rows.index[train.stop]  # exclusive: the first out-of-sample bar
    sets = [
        *cfg.train_overrides,
        f"data.end={_iso(end)}",
        f"splits.train={1.0 - cfg.inner_val_fraction}",
        f"splits.val={cfg.inner_val_fraction}",
        "splits.test=0.0",
    ]
    if start is not None:
        sets.append(f"data.start={_iso(start)}")
    return sets


def load_base(cfg: WalkForwardConfig) -> TrainConfig:
    path = Path(cfg.train_config) if cfg.train_config else None
    base = load_config(TrainConfig, path, cfg.train_overrides)
    if not base.eval.every_steps and cfg.select == "best":
        raise ConfigError("walkforward: select: best needs periodic evaluation (eval.every_steps > 0) in every fold")
    return base


def all_valid_rows(base: TrainConfig) -> MarketSlice:
    """Every valid row of the training data, as one slice (features computed over all of it)."""
    whole = base.model_copy(update={"splits": SplitConfig(train=1.0, val=0.0, test=0.0, embargo=0)})
    return replace(prepare_splits(whole, ("train",))["train"], split="all")


def _downsample(n: int, points: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(points, n)).astype(int))


def score_fold(base: TrainConfig, cfg: WalkForwardConfig, rows: MarketSlice, train: slice, test: slice, agent) -> dict:
    """Out-of-sample numbers of one fold: the agent and every baseline on the test window."""
    market = rows.slice(test.start, test.stop)
    cut = train.start + int((train.stop - train.start) * (1.0 - cfg.inner_val_fraction))
    ridge = ridge_for(base, rows.slice(train.start, cut), rows.slice(cut, train.stop))
    positions = agent.positions(market)
    bl = BaselineConfig()
    q = quick_evaluation(
        positions,
        market.open,
        market.close,
        base.env.costs,
        market.timeframe,
        market.market,
        sma_fast=bl.sma_fast,
        sma_slow=bl.sma_slow,
        extra_baselines={"ridge": ridge.positions(market.features)},
        seed=base.seed,
    )
    q = score_flat(q, positions)  # a fold the agent sat out scores 0, not NaN
    series = {
        "agent": positions,
        "buy_and_hold": buy_and_hold(len(market)),
        "sma_crossover": sma_crossover(market.close, bl.sma_fast, bl.sma_slow, bl.sma_allow_short),
        "ridge": ridge.positions(market.features),
    }
    returns = {k: backtest(p, market.open, market.close, base.env.costs).returns for k, p in series.items()}
    return {"q": q, "returns": returns, "market": market, "ridge": ridge.describe()}


def aggregate(folds: list[dict], ppy: float) -> dict:
    """The out-of-sample record end to end, and the DSR with the folds as its trials."""
    out: dict[str, Any] = {}
    for name in ("agent", "buy_and_hold", "sma_crossover", "ridge"):
        r = np.concatenate([f["returns"][name] for f in folds])
        m = performance_metrics(r, ppy, allow_constant=True)
        prefix = "" if name == "agent" else f"{name}_"
        out[f"{prefix}sharpe"], out[f"{prefix}total_return"] = m["sharpe"], m["total_return"]
        out[f"{prefix}max_drawdown"] = m["max_drawdown"]
    agent = np.concatenate([f["returns"]["agent"] for f in folds])
    best = strongest_baseline({k: out[f"{k}_sharpe"] for k in ("buy_and_hold", "sma_crossover", "ridge")})
    assert best is not None
    out["strongest_baseline"], out["strongest_baseline_sharpe"] = best
    if out["sharpe"] is None and not np.any(agent):  # flat in every fold: it earned nothing (score_flat)
        out["sharpe"] = 0.0
    out["excess_sharpe"] = None if out["sharpe"] is None else out["sharpe"] - best[1]
    fold_sr = [f["q"]["sharpe_per_period"] or 0.0 for f in folds]
    if np.std(agent) > 0:
        inf = sharpe_inference(agent, n_trials=len(folds), trial_sharpes=fold_sr if len(folds) >= 2 else None)
        out.update(psr=inf["psr"], dsr=inf["dsr"], p_value=1.0 - inf["psr"])
        out["trial_sharpe_variance_source"] = inf["trial_sharpe_variance_source"]
    else:
        out.update(psr=None, dsr=None, p_value=None, trial_sharpe_variance_source=None)
    out["dsr_trials"] = len(folds)
    out["positive_folds"] = int(sum((f["q"]["sharpe"] or 0.0) > 0 for f in folds))
    out["folds_beating_strongest"] = int(sum((f["q"]["excess_sharpe"] or -1.0) > 0 for f in folds))
    return out


def curves(folds: list[dict], points: int) -> dict:
    """Concatenated equity (each fold starts flat where the previous one ended) and fold starts."""
    eq = {}
    for name in ("agent", "buy_and_hold", "ridge"):
        r = np.concatenate([f["returns"][name] for f in folds])
        eq[name] = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    # equity after return i of a fold is stamped with the fold's bar i+1 (the bar it was earned over)
    times = folds[0]["market"].index[:1].append([f["market"].index[1:] for f in folds])
    keep = _downsample(len(times), points)
    starts = [str(f["market"].index[0]) for f in folds]
    return {
        "time": [t.isoformat() for t in times[keep]],
        "equity": eq["agent"][keep].tolist(),
        "buy_and_hold_equity": eq["buy_and_hold"][keep].tolist(),
        "ridge_equity": eq["ridge"][keep].tolist(),
        "fold_starts": starts,
    }


def render_markdown(doc: dict) -> str:
    a = doc["aggregate"]

    def f(x: Any, fmt: str = "{:.2f}") -> str:
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)

    lines = [
        f"# Walk-forward report — {doc['run_id']}",
        "",
        f"{doc['scheme']} windows, {len(doc['folds'])} fold(s) of {doc['folds_planned']} planned; each fold's "
        f"checkpoint ({doc['select']}) scored only on the window after its training data. Costs "
        f"{doc['costs']['cost_rate_bps']:.2f} bps per unit traded.",
        "",
        "## Out of sample, end to end",
        "",
        "| | Sharpe | total return | max DD |",
        "|---|---|---|---|",
    ]
    labels = {"": "agent", "buy_and_hold_": "buy and hold", "sma_crossover_": "SMA crossover", "ridge_": "ridge"}
    for name, label in labels.items():
        lines.append(
            f"| {label} | {f(a[name + 'sharpe'])} | {f(a[name + 'total_return'], '{:.2%}')} | "
            f"{f(a[name + 'max_drawdown'], '{:.2%}')} |"
        )
    lines += [
        "",
        f"- Strongest baseline: **{a['strongest_baseline']}** (Sharpe {f(a['strongest_baseline_sharpe'])}); "
        f"agent minus it: {f(a['excess_sharpe'])}; folds beating it: {a['folds_beating_strongest']}/{len(doc['folds'])}",
        f"- PSR {f(a['psr'], '{:.3f}')}, p-value {f(a['p_value'], '{:.3f}')}; DSR over {a['dsr_trials']} fold(s) "
        f"{f(a['dsr'], '{:.3f}')} (trial variance from {a['trial_sharpe_variance_source'] or 'n/a'})",
        "",
        "## Folds",
        "",
        "| fold | run | train | test | checkpoint | Sharpe | B&H | SMA | ridge | strongest | return |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["folds"]:
        lines.append(
            f"| {r['fold']} | {r['run_id']} | {r['train_start'][:10]} .. {r['train_end'][:10]} | "
            f"{r['test_start'][:10]} .. {r['test_end'][:10]} | {r['checkpoint_step']} | {f(r['sharpe'])} | "
            f"{f(r['buy_and_hold_sharpe'])} | {f(r['sma_crossover_sharpe'])} | {f(r['ridge_sharpe'])} | "
            f"{r['strongest_baseline']} | {f(r['total_return'], '{:.2%}')} |"
        )
    lines += ["", "![equity](walkforward.png)", ""]
    return "\n".join(lines)


_ROW_KEYS = (
    "sharpe",
    "total_return",
    "max_drawdown",
    "turnover",
    "buy_and_hold_sharpe",
    "sma_crossover_sharpe",
    "ridge_sharpe",
    "random_sharpe_mean",
    "strongest_baseline",
    "strongest_baseline_sharpe",
    "excess_sharpe",
    "psr",
    "p_value",
)


@dataclass(frozen=True)
class WalkForwardPlan:
    base: TrainConfig
    rows: MarketSlice
    windows: list[tuple[slice, slice]]


def plan_walkforward(cfg: WalkForwardConfig) -> WalkForwardPlan:
    """The base config, the data and the fold windows: everything that can fail on bad input, done
    before the walk-forward run's folder exists."""
    base = load_base(cfg)
    rows = all_valid_rows(base)
    return WalkForwardPlan(base, rows, fold_windows(len(rows), cfg))


def run_walkforward(
    cfg: WalkForwardConfig,
    writer: RunWriter,
    kill: KillSwitch | None = None,
    say: Callable[[str], None] = print,
    plan: WalkForwardPlan | None = None,
) -> dict:
    """Train and score every fold; returns the report document (also written to reports/)."""
    plan = plan or plan_walkforward(cfg)
    base, rows, windows = plan.base, plan.rows, plan.windows
    kill = kill or KillSwitch(writer.dir)
    ppy = periods_per_year(rows.timeframe, rows.market)
    registry = TrialRegistry(writer.dir)
    done: list[dict] = []
    table: list[dict] = []
    warm_from: Path | None = None  # the previous fold's scored checkpoint (warm_start)
    for k, (train, test) in enumerate(windows):
        if kill.requested():
            writer.event("stop_requested", step=k, reason=kill.reason or "stop requested")
            break
        run_id = f"{writer.run_id}-f{k:02d}"
        sets = fold_overrides(base, cfg, rows, train)
        if cfg.warm_start and warm_from is not None:
            sets.append(f"warm_start={warm_from}")
        child = ChildTrainRun(run_id, cfg.train_config, sets, writer.logs_dir)
        msg = f"fold {k + 1}/{cfg.folds}: training {run_id} on {rows.index[train.start]} .. {rows.index[train.stop]}"
        writer.set_status("running", step=k, message=msg)
        writer.event("fold_started", step=k, fold=k, run_id=run_id, train_rows=train.stop - train.start)
        say(msg)
        rc, stopped = child.follow(lambda _row: None, kill.requested, cfg.poll_s, cfg.stop_timeout_s)
        if stopped is not None:
            writer.event("fold_stopped", step=k, fold=k, run_id=run_id, reason=stopped)
            break
        if rc != 0:
            raise RunError(f"walk-forward fold {k}: train run {run_id} exited with code {rc} (see logs/{run_id}.out)")
        choice = choose_checkpoint(child.run_dir, cfg.select)
        warm_from = choice.target
        agent = load_agent(choice.target)
        writer.set_status("running", step=k, message=f"fold {k + 1}/{cfg.folds}: scoring {run_id} out of sample")
        scored = score_fold(base, cfg, rows, train, test, agent)
        q = scored["q"]
        row = {
            "fold": k,
            "run_id": run_id,
            "train_start": str(rows.index[train.start]),
            "train_end": str(rows.index[train.stop - 1]),
            "test_start": str(rows.index[test.start]),
            "test_end": str(rows.index[test.stop - 1]),
            "train_rows": train.stop - train.start,
            "test_rows": test.stop - test.start,
            "checkpoint": choice.description,
            "warm_started_from": sets[-1].split("=", 1)[1] if sets[-1].startswith("warm_start=") else None,
            "checkpoint_step": int(agent.step),
            "ridge": scored["ridge"],
            **{key: q[key] for key in _ROW_KEYS},
        }
        registry.record(
            run_id=run_id,
            split=OOS_SPLIT,
            step=int(agent.step),
            sharpe=q["sharpe"],
            sharpe_per_period=q["sharpe_per_period"],
            n_obs=len(scored["market"]) - 1,
            source="walkforward",
            fold=k,
        )
        writer.metric(k, "fold", {key: q[key] for key in _ROW_KEYS}, flush=True)
        writer.event("fold_scored", step=k + 1, fold=k, run_id=run_id, sharpe=q["sharpe"])
        say(
            f"fold {k}: out-of-sample Sharpe {q['sharpe'] if q['sharpe'] is not None else float('nan'):.2f}, "
            f"strongest baseline {q['strongest_baseline']} {q['strongest_baseline_sharpe']:.2f}"
        )
        done.append(scored)
        table.append(row)
        writer.heartbeat(k + 1)
    if not done:
        raise RunError("walk-forward: no fold finished; nothing to report")
    doc = {
        "kind": "walkforward_report",
        "run_id": writer.run_id,
        "scheme": cfg.scheme,
        "select": cfg.select,
        "folds_planned": cfg.folds,
        "complete": len(done) == cfg.folds,
        "costs": {**base.env.costs.model_dump(), "cost_rate_bps": base.env.costs.rate * 1e4},
        "folds": table,
        "aggregate": aggregate(done, ppy),
        "curves": curves(done, cfg.curve_points),
    }
    reports = writer.reports_dir
    draw_walkforward(doc, reports / "walkforward.png")
    atomic_write_text(reports / "walkforward.md", render_markdown(doc))
    # written last: its presence means the whole report is there
    atomic_write_json(reports / "walkforward.json", json.loads(json.dumps(doc, default=str)))
    return doc
