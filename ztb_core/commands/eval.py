"""`ztb eval`: run a trained agent deterministically over a chronological split (or a whole
holdout period) with the costs it trained with, and write the honest-evaluation report (JSON +
Markdown + pictures) into an eval run directory.

Honest by default: the checkpoint is the run's best by validation (and the report says which),
the DSR is deflated for every evaluation recorded in the run's trial registry on the same data,
and the agent is judged against the strongest baseline, including a ridge regression on its own
features fitted on its train split."""

from __future__ import annotations

import math
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint file, training run directory or run id."),
    checkpoint: str = typer.Option(
        "best",
        "--checkpoint",
        help="Which checkpoint of a run: best (by periodic evaluation), latest, or a step number.",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Evaluate on this stored symbol instead of the training data (same market and features)."
    ),
    start: str | None = typer.Option(
        None, "--start", help="First bar time (UTC) of the evaluated data; with --end, a holdout period (--split all)."
    ),
    end: str | None = typer.Option(None, "--end", help="Exclusive end time (UTC) of the evaluated data."),
    split: str | None = typer.Option(
        None,
        "--split",
        help="train, val, test or all (every valid row). Default: config (test); all when --start/--end are given.",
    ),
    episodes: int | None = typer.Option(
        None, "--episodes", min=1, help="Episodes starting at evenly spaced later bars (start-offset sensitivity)."
    ),
    n_trials: int | None = typer.Option(
        None,
        "--n-trials",
        min=1,
        help="Trials the Deflated Sharpe Ratio deflates for, overriding the run's trial registry (stamped in the report).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Seed of the bootstrap, Monte Carlo and random baselines."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Config YAML (default configs/eval.yaml)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set bootstrap.n_resamples=2000 (repeatable)."
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the eval run directory (default: generated)."),
) -> None:
    """Metrics, PSR/DSR, block-bootstrap intervals, Monte Carlo risk, baselines, cost sensitivity and
    robustness for a trained agent; writes reports/eval_<id>.{json,md,png} in a new eval run."""
    import sys

    from rich.console import Console

    from ..config import load_config
    from ..evaluation import EvalConfig
    from ..evaluation.selection import choose_checkpoint
    from ..logs import setup_logging
    from ..ops.telemetry import TelemetryThread
    from ..rl.agent import load_agent
    from ..runs import RunWriter

    cfg = load_config(EvalConfig, config, overrides)
    if split is None and (start is not None or end is not None):
        split = "all"  # a holdout period is evaluated whole unless a split of it is asked for
    if split is not None:
        cfg = _with(cfg, "split", split, "--split")
    if episodes is not None:
        cfg = _with(cfg, "robustness.episodes", episodes, "--episodes")
    if n_trials is not None:
        cfg = _with(cfg, "sharpe.n_trials", n_trials, "--n-trials")
    if seed is not None:
        cfg = _with(cfg, "seed", seed, "--seed")
    console = Console()
    # a bad checkpoint or period fails here, before an eval run directory exists
    choice = choose_checkpoint(model, checkpoint)
    with console.status(f"loading agent {choice.target}"):
        agent = load_agent(choice.target)
    period = holdout_source(agent.train_config, data, start, end)
    writer = RunWriter.create(
        "eval", config=cfg, run_id=run_id, argv=sys.argv, seeds={"seed": cfg.seed}, total_steps=10
    )
    setup_logging(writer.dir, console=False)
    with writer, TelemetryThread(writer, interval_s=5.0):
        writer.start_heartbeat()
        writer.set_status("running", step=0, message=f"evaluating {agent.checkpoint_path}")
        report, paths = run_evaluation(
            agent, cfg, writer, console=console, choice=choice, period=period, n_trials_flag=n_trials
        )
        writer.close("completed", message=f"report {paths['json'].name}")
    console.print(summary_table(report))
    console.print(
        f"[bold]{report['verdict']['summary']}[/] ({report['verdict']['passed']}/{report['verdict']['total']} checks)"
    )
    console.print(report["verdict"]["comparison"], highlight=False, soft_wrap=True)
    console.print(f"checkpoint: {choice.description}")
    console.print(f"run directory: {writer.dir}")
    for key, path in paths.items():
        console.print(f"  {key}: {path}")


def _with(cfg, dotted: str, value, flag: str):
    """A copy of the config with one key replaced, validated like a --set override."""
    from ..config import config_to_dict, validate_config

    data = config_to_dict(cfg)
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
    return validate_config(type(cfg), data, source=flag, overridden={dotted})


def holdout_source(train_cfg, data: str | None, start: str | None, end: str | None):
    """The training run's data source with `--data/--start/--end` applied (validated now, so a bad
    date fails before a run directory exists), or None when the evaluation uses the training data."""
    if data is None and start is None and end is None:
        return None
    from ..data.source import DataSourceConfig
    from ..errors import ConfigError

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
    from dataclasses import replace

    from ..data.splits import SplitConfig
    from ..rl.market import prepare_splits

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
    from ..evaluation.trials import collect_trials

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


def run_evaluation(
    agent, cfg, writer, console=None, choice=None, period=None, n_trials_flag: int | None = None
) -> tuple[dict, dict[str, Path]]:
    """Prepare the agent's market split, roll the policy out, evaluate, write the report."""
    import logging

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..evaluation import backtest, evaluate_positions, write_report
    from ..evaluation.metrics import sharpe_per_period
    from ..evaluation.robustness import start_offsets
    from ..evaluation.selection import CheckpointChoice
    from ..evaluation.trials import TrialRegistry
    from ..rl.evaluate import ridge_for

    log = logging.getLogger("ztb.eval")
    choice = choice or CheckpointChoice(Path(agent.checkpoint_path), None, str(agent.checkpoint_path))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("loading market data", total=10)

        def tick(desc: str, done: int, total: int = 10) -> None:
            progress.update(task, description=desc, completed=done, total=total)
            writer.heartbeat(step=done, min_interval_s=0.0)

        train_cfg = agent.train_config
        src = period or train_cfg.data
        log.info(
            "agent %s (step %d, %s); data %s:%s [%s, %s) split %s",
            agent.checkpoint_path,
            agent.step,
            choice.description,
            src.kind,
            src.symbol,
            src.start,
            src.end,
            cfg.split,
        )
        tick("loading market data", 1)
        market, train, val = eval_market(train_cfg, cfg.split, period)
        tick(f"policy rollout over {len(market):,} bars", 2)
        positions = agent.positions(market)  # the slice: fine-tuned encoders need its windows
        offsets = start_offsets(len(market), cfg.robustness.episodes, cfg.robustness.max_start_offset_fraction)
        episodes = [(0, positions)] + [(k, agent.positions(market.slice(k))) for k in offsets if k > 0]
        extra = {}
        if cfg.baselines.ridge:
            ridge = ridge_for(train_cfg, train, val, cfg.baselines)
            extra["ridge"] = (ridge.positions(market.features), ridge.describe())
        key = trial_split_key(cfg.split, period)
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
        progress.update(task, description="writing report and pictures")
        paths = write_report(report, writer.reports_dir, writer.run_id)
    m, inf, b = report["metrics"], report["sharpe_inference"], report["bootstrap"]["intervals"]["sharpe"]
    if choice.run_dir is not None:  # this look at the data is a trial of the model's run
        TrialRegistry(choice.run_dir).record(
            run_id=choice.run_dir.name,
            split=key,
            step=int(agent.step),
            sharpe=m["sharpe"],
            sharpe_per_period=inf["sharpe_per_period"],
            n_obs=inf["n_obs"],
            source="eval",
            eval_run_id=writer.run_id,
        )
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
    writer.metric(int(agent.step), cfg.split, row, flush=True)
    writer.event("report_written", **{k: str(v) for k, v in paths.items()})
    return report, paths


def _num(x, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def summary_table(report: dict):
    """The headline numbers as a rich table: agent vs each baseline, with intervals."""
    from rich.table import Table

    m, b = report["metrics"], report["bootstrap"]
    conf = f"{b['confidence']:.0%}"
    inf = report["sharpe_inference"]
    t = Table(
        title=f"ztb eval — {report['meta'].get('symbol', '')} {report['meta'].get('split', '')} "
        f"({report['meta']['n_bars']:,} {report['meta']['timeframe']} bars)"
    )
    t.add_column("")
    t.add_column("Sharpe", justify="right")
    t.add_column(f"Sharpe {conf} CI / Δ vs agent", justify="right")
    t.add_column("total return", justify="right")
    t.add_column("max DD", justify="right")
    t.add_column("trades", justify="right")
    ci = b["intervals"]["sharpe"]
    t.add_row(
        "[bold]agent[/]",
        _num(m["sharpe"]),
        f"[{_num(ci['low'])}, {_num(ci['high'])}]",
        _num(m["total_return"], "{:.2%}"),
        _num(m["max_drawdown"], "{:.2%}"),
        f"{m['trades']:,}",
    )
    strongest = report["verdict"].get("strongest_baseline")
    for key in ("buy_and_hold", "sma_crossover", "ridge", "flat"):
        e = report["baselines"].get(key)
        if e is None:
            continue
        d = e["difference"]["sharpe"]
        t.add_row(
            key.replace("_", " ") + (" [bold](strongest)[/]" if key == strongest else ""),
            _num(e["metrics"]["sharpe"]),
            f"{_num(d['estimate'])} [{_num(d['low'])}, {_num(d['high'])}]",
            _num(e["metrics"]["total_return"], "{:.2%}"),
            _num(e["metrics"]["max_drawdown"], "{:.2%}"),
            _num(e["metrics"]["trades"], "{:,.0f}"),
        )
    r = report["baselines"]["random"]
    d = r["difference"]["sharpe"]
    t.add_row(
        f"random ×{r['n_seeds']}",
        _num(r["sharpe"]["mean"]),
        f"{_num(d['estimate'])} [{_num(d['low'])}, {_num(d['high'])}]",
        _num(r["total_return"]["mean"], "{:.2%}"),
        "",
        "",
    )
    t.caption = (
        f"PSR {inf['psr']:.3f} · DSR {inf['dsr']:.3f} ({inf['n_trials']} trials: "
        f"{inf.get('n_trials_source', 'config')}) · break-even cost "
        f"{_num(report['cost_sensitivity']['break_even_cost_bps'])} bps (trained at "
        f"{report['cost_sensitivity']['actual_cost_bps']:.2f})"
    )
    return t
