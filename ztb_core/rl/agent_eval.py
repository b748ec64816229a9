"""Evaluating a trained agent honestly: its market slices (the training data's split or a holdout
period), the rollout, the trial registry's deflation, the report and the registry record. `ztb eval`
(cli/eval.py) parses and prints; everything it computes is here."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..data.source import DataSourceConfig
from ..data.splits import SplitConfig
from ..errors import ConfigError
from ..evaluation import backtest, evaluate_positions, write_report
from ..evaluation.baselines import buy_and_hold
from ..evaluation.calendar import periods_per_year
from ..evaluation.errors import EvaluationError
from ..evaluation.metrics import sharpe_per_period
from ..evaluation.robustness import start_offsets
from ..evaluation.selection import CheckpointChoice
from ..evaluation.trials import TrialRegistry, collect_trials
from ..evaluation.vol_sizing import TrainedVolSizing, VolSizing, vol_sizing_section
from .evaluate import ridge_for
from .market import prepare_splits


def holdout_source(train_cfg, data: str | None, start: str | None, end: str | None):
    """The training run's data source with `--data/--start/--end` applied (validated now, so a bad
    date fails before a run directory exists), or None when the evaluation uses the training data."""
    if data is None and start is None and end is None:
        return None
    src = train_cfg.data.model_dump()
    if data is not None:
        src.update(kind="store", symbol=data)
    if start is not None:
        src["start"] = start
    if end is not None:
        src["end"] = end
    try:
        return DataSourceConfig.model_validate(src)
    except ValueError as exc:
        raise ConfigError(f"--data/--start/--end: {exc}") from None


def eval_market(train_cfg, split: str, period=None):
    """(evaluated slice, train slice, val slice): the train and val splits of the agent's own
    training data (the ridge baseline's fit and band) and the slice to evaluate, from the training
    data or from `period` (a `DataSourceConfig`). `all` is every valid row, as one slice."""
    if period is None and split != "all":
        s = prepare_splits(train_cfg, tuple(dict.fromkeys(("train", "val", split))))
        return s[split], s["train"], s["val"]
    s = prepare_splits(train_cfg, ("train", "val"))
    cfg = train_cfg.model_copy(update={"data": period}) if period is not None else train_cfg
    if split == "all":
        whole = cfg.model_copy(update={"splits": SplitConfig(train=1.0, val=0.0, test=0.0, embargo=0)})
        market = replace(prepare_splits(whole, ("train",))["train"], split="all")
    else:
        market = prepare_splits(cfg, (split,))[split]
    return market, s["train"], s["val"]


def trial_split_key(split: str, period) -> str:
    """The registry's name for the evaluated data: the split, or the split of a holdout period."""
    if period is None:
        return split
    fmt = lambda t: "" if t is None else t.isoformat()  # noqa: E731
    return f"{split}@{period.symbol}[{fmt(period.start)},{fmt(period.end)})"


def deflation_trials(choice, key: str, step: int, this_sharpe: float, n_trials_flag: int | None):
    """(n_trials, trial_sharpes or None, source): what the DSR deflates for. The registry's
    evaluations on the same data (this checkpoint counted once), unless --n-trials overrides."""
    prior = collect_trials(choice.run_dir, key) if choice.run_dir is not None else None
    if n_trials_flag is not None:
        had = f"; the registry has {prior.n_trials}" if prior is not None else ""
        return int(n_trials_flag), None, f"--n-trials {n_trials_flag} (overrides the trial registry{had})"
    if prior is None:
        return None, None, "config (a checkpoint outside a run has no trial registry)"
    others = [
        sr
        for sr, rec in zip(prior.sharpes_per_period, prior.records, strict=True)
        if not (rec.get("run_id") == choice.run_dir.name and rec.get("step") == step)
    ]
    n = len(others) + 1
    source = f"{prior.source}; this checkpoint counted once, {n} in all"
    return n, (others + [this_sharpe] if n >= 2 else None), source


def _times_ns(index) -> np.ndarray:
    return np.asarray(index.as_unit("ns").asi8, np.int64)


def _forecaster(vs, train, trained: TrainedVolSizing | None, absent: str | None) -> tuple[VolSizing, float, str]:
    """(forecaster, band, where it came from): the checkpoint's (`vol_sizing.source: checkpoint`,
    what `ztb live` sizes with) or one fitted on the train split with eval's settings."""
    if vs.source == "checkpoint" and trained is not None:
        return trained.sizing, trained.band, f"the checkpoint's forecaster: {trained.describe()}"
    sizing = VolSizing.fit(train.close, _times_ns(train.index), vs.horizon, vs.cap)
    why = "vol_sizing.source: fit" if vs.source == "fit" else f"the checkpoint has none: {absent or 'not stored'}"
    return sizing, vs.band, f"fitted by ztb eval on the train split ({why})"


def vol_sizing_report(
    cfg,
    train,
    val,
    market,
    policies: dict[str, np.ndarray],
    costs,
    trained: TrainedVolSizing | None = None,
    absent: str | None = None,
) -> dict:
    """The report's `vol_sizing` section: the checkpoint's forecaster (`trained`) or one fitted on
    the train split only (see `_forecaster`); the scale on the evaluated bars forecast from the bars
    up to each one, with the train and val bars that precede the evaluated slice as history (so the
    test split needs no week of warm-up of its own; none of them is later than the bar it sizes).
    `{"skipped": why}` where it cannot be computed."""
    vs = cfg.vol_sizing
    if market.timeframe != "M1":
        return {"skipped": f"the volatility forecaster works on M1 bars; this agent trades {market.timeframe}"}
    try:
        sizing, band, source = _forecaster(vs, train, trained, absent)
        first = market.index[0]
        parts = [(s.close[s.index < first], _times_ns(s.index[s.index < first])) for s in (train, val)]
        t_hist = np.concatenate([t for _, t in parts])
        order = np.argsort(t_hist, kind="stable")
        c_hist = np.concatenate([c for c, _ in parts])[order]
        close = np.concatenate([c_hist, market.close])
        times = np.concatenate([t_hist[order], _times_ns(market.index)])
        scale = sizing.scale(close, times)[c_hist.size :]
        b = cfg.bootstrap
        return vol_sizing_section(
            sizing,
            scale,
            policies,
            market.open,
            market.close,
            costs,
            periods_per_year(market.timeframe, market.market),
            b.n_resamples,
            b.confidence,
            cfg.seed,
            history_bars=int(c_hist.size),
            band=band,
            source=source,
        )
    except EvaluationError as exc:  # too little train data, or no forecast on the evaluated bars
        return {"skipped": str(exc)}


def run_evaluation(
    agent, cfg, writer, console=None, choice=None, period=None, n_trials_flag: int | None = None
) -> tuple[dict, dict[str, Path]]:
    """Prepare the agent's market split, roll the policy out, evaluate, write the report."""
    choice = choice or CheckpointChoice(Path(agent.checkpoint_path), None, str(agent.checkpoint_path))
    key = trial_split_key(cfg.split, period)
    with _progress_bar(console) as progress:
        task = progress.add_task("loading market data", total=10)

        def tick(desc: str, done: int, total: int = 10) -> None:
            progress.update(task, description=desc, completed=done, total=total)
            writer.heartbeat(step=done, min_interval_s=0.0)

        src = period or agent.train_config.data
        _log_start(agent, choice, src, cfg.split)
        tick("loading market data", 1)
        market, train, val = eval_market(agent.train_config, cfg.split, period)
        tick(f"policy rollout over {len(market):,} bars", 2)
        report, policies = _evaluate(agent, cfg, writer, choice, market, train, val, key, src, n_trials_flag, tick)
        if cfg.vol_sizing.enabled:
            progress.update(task, description="volatility-targeted sizing")
            report["vol_sizing"] = vol_sizing_report(
                cfg,
                train,
                val,
                market,
                policies,
                agent.train_config.env.costs,
                agent.vol_sizing,
                agent.vol_sizing_absent,
            )
        progress.update(task, description="writing report and pictures")
        paths = write_report(report, writer.reports_dir, writer.run_id)
    if choice.run_dir is not None:  # this look at the data is a trial of the model's run
        _record_trial(choice.run_dir, key, int(agent.step), report, writer.run_id)
    writer.metric(int(agent.step), cfg.split, _metrics_row(report), flush=True)
    writer.event("report_written", **{k: str(v) for k, v in paths.items()})
    return report, paths


def _progress_bar(console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _log_start(agent, choice: CheckpointChoice, src, split: str) -> None:
    logging.getLogger("ztb.eval").info(
        "agent %s (step %d, %s); data %s:%s [%s, %s) split %s",
        agent.checkpoint_path,
        agent.step,
        choice.description,
        src.kind,
        src.symbol,
        src.start,
        src.end,
        split,
    )


def _evaluate(
    agent, cfg, writer, choice, market, train, val, key: str, src, n_trials_flag, tick
) -> tuple[dict, dict[str, np.ndarray]]:
    """Roll the policy out over the slice (and from later starts), fit the ridge baseline, count the
    trials, and build the full report. Returns it with the positions the sizing section rescales
    (agent, buy-and-hold, ridge)."""
    train_cfg = agent.train_config
    positions = agent.positions(market)  # the slice: fine-tuned encoders need its windows
    offsets = start_offsets(len(market), cfg.robustness.episodes, cfg.robustness.max_start_offset_fraction)
    episodes = [(0, positions)] + [(k, agent.positions(market.slice(k))) for k in offsets if k > 0]
    extra = {}
    if cfg.baselines.ridge:
        ridge = ridge_for(train_cfg, train, val, cfg.baselines)
        extra["ridge"] = (ridge.positions(market.features), ridge.describe())
    returns = backtest(positions, market.open, market.close, train_cfg.env.costs).returns
    this_sr = sharpe_per_period(returns) if returns.std() > 0 else 0.0
    n_trials, trial_sharpes, trials_source = deflation_trials(choice, key, int(agent.step), this_sr, n_trials_flag)
    meta = {
        "model": str(agent.checkpoint_path),
        "checkpoint_step": int(agent.step),
        "checkpoint_choice": choice.description,
        "selection_used_test": train_cfg.eval.split == "test",
        "symbol": market.symbol or src.symbol,
        "data_kind": src.kind,
        "split": cfg.split,
        "trial_split": key,
        "run_id": writer.run_id,
    }

    def stage(desc: str, done: int, total: int) -> None:
        tick(desc, 2 + done, 2 + total)

    report = evaluate_positions(
        positions,
        market.open,
        market.close,
        market.index,
        train_cfg.env.costs,
        market.timeframe,
        market.market,
        cfg,
        n_trials=n_trials,
        trial_sharpes=trial_sharpes,
        trials_source=trials_source,
        episode_positions=episodes,
        meta=meta,
        progress=stage,
        extra_baselines=extra,
    )
    policies = {"agent": positions, "buy_and_hold": buy_and_hold(len(market))}
    if "ridge" in extra:
        policies["ridge"] = extra["ridge"][0]
    return report, policies


def _record_trial(run_dir: Path, key: str, step: int, report: dict, eval_run_id: str) -> None:
    inf = report["sharpe_inference"]
    TrialRegistry(run_dir).record(
        run_id=run_dir.name,
        split=key,
        step=step,
        sharpe=report["metrics"]["sharpe"],
        sharpe_per_period=inf["sharpe_per_period"],
        n_obs=inf["n_obs"],
        source="eval",
        eval_run_id=eval_run_id,
    )


def _metrics_row(report: dict) -> dict:
    """The eval run's one metrics row: the agent's headline numbers and each baseline's."""
    m, inf, b = report["metrics"], report["sharpe_inference"], report["bootstrap"]["intervals"]["sharpe"]
    bls = report["baselines"]
    row = {
        "sharpe": m["sharpe"],
        "sharpe_low": b["low"],
        "sharpe_high": b["high"],
        "total_return": m["total_return"],
        "max_drawdown": m["max_drawdown"],
        "psr": inf["psr"],
        "dsr": inf["dsr"],
        "dsr_trials": inf["n_trials"],
        "p_value": 1.0 - inf["psr"],
        "trades": m["trades"],
        "break_even_cost_bps": report["cost_sensitivity"]["break_even_cost_bps"],
        "strongest_baseline": report["verdict"]["strongest_baseline"],
    }
    for name in ("buy_and_hold", "sma_crossover", "ridge"):
        if name in bls:
            for k in ("sharpe", "total_return", "max_drawdown"):
                row[f"{name}_{k}"] = bls[name]["metrics"][k]
    return row
