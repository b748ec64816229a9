"""`ztb eval`: run a trained agent deterministically over a chronological split with the costs
it trained with, and write the honest-evaluation report (JSON + Markdown + pictures) into an
eval run directory."""

from __future__ import annotations

import math
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    model: Path = typer.Option(
        ..., "--model", "-m", help="Checkpoint file, or a training run directory (newest valid checkpoint)."
    ),
    data: str | None = typer.Option(
        None, "--data", help="Evaluate on this stored symbol instead of the training data (same market and features)."
    ),
    split: str | None = typer.Option(None, "--split", help="train, val or test (default: config, test)."),
    episodes: int | None = typer.Option(
        None, "--episodes", min=1, help="Episodes starting at evenly spaced later bars (start-offset sensitivity)."
    ),
    n_trials: int | None = typer.Option(
        None,
        "--n-trials",
        min=1,
        help="Strategy variants tried before this one; the Deflated Sharpe Ratio accounts for them.",
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
    from ..logs import setup_logging
    from ..ops.telemetry import TelemetryThread
    from ..rl.agent import load_agent
    from ..runs import RunWriter

    cfg = load_config(EvalConfig, config, overrides)
    if split is not None:
        cfg = _with(cfg, "split", split, "--split")
    if episodes is not None:
        cfg = _with(cfg, "robustness.episodes", episodes, "--episodes")
    if n_trials is not None:
        cfg = _with(cfg, "sharpe.n_trials", n_trials, "--n-trials")
    if seed is not None:
        cfg = _with(cfg, "seed", seed, "--seed")
    console = Console()
    # a bad checkpoint fails here, before an eval run directory exists
    with console.status(f"loading agent {model}"):
        agent = load_agent(model)
    writer = RunWriter.create(
        "eval", config=cfg, run_id=run_id, argv=sys.argv, seeds={"seed": cfg.seed}, total_steps=10
    )
    setup_logging(writer.dir, console=False)
    with writer, TelemetryThread(writer, interval_s=5.0):
        writer.start_heartbeat()
        writer.set_status("running", step=0, message=f"evaluating {agent.checkpoint_path}")
        report, paths = run_evaluation(agent, cfg, writer, data=data, console=console)
        writer.close("completed", message=f"report {paths['json'].name}")
    console.print(summary_table(report))
    console.print(
        f"[bold]{report['verdict']['summary']}[/] ({report['verdict']['passed']}/{report['verdict']['total']} checks)"
    )
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


def run_evaluation(agent, cfg, writer, data: str | None = None, console=None) -> tuple[dict, dict[str, Path]]:
    """Prepare the agent's market split, roll the policy out, evaluate, write the report."""
    import logging

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..evaluation import evaluate_positions, write_report
    from ..evaluation.robustness import start_offsets
    from ..rl.market import prepare_market

    log = logging.getLogger("ztb.eval")
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
        if data is not None:
            train_cfg = train_cfg.model_copy(
                update={"data": train_cfg.data.model_copy(update={"kind": "store", "symbol": data})}
            )
        log.info(
            "agent %s (step %d); data %s:%s split %s",
            agent.checkpoint_path,
            agent.step,
            train_cfg.data.kind,
            train_cfg.data.symbol,
            cfg.split,
        )
        tick("loading market data", 1)
        market = prepare_market(train_cfg, cfg.split)
        tick(f"policy rollout over {len(market):,} bars", 2)
        positions = agent.positions(market)  # the slice: fine-tuned encoders need its windows
        offsets = start_offsets(len(market), cfg.robustness.episodes, cfg.robustness.max_start_offset_fraction)
        episodes = [(0, positions)] + [(k, agent.positions(market.slice(k))) for k in offsets if k > 0]
        meta = {
            "model": str(agent.checkpoint_path),
            "checkpoint_step": int(agent.step),
            "symbol": market.symbol or train_cfg.data.symbol,
            "data_kind": train_cfg.data.kind,
            "split": cfg.split,
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
            episode_positions=episodes,
            meta=meta,
            progress=stage,
        )
        progress.update(task, description="writing report and pictures")
        paths = write_report(report, writer.reports_dir, writer.run_id)
    m, inf, b = report["metrics"], report["sharpe_inference"], report["bootstrap"]["intervals"]["sharpe"]
    writer.metric(
        int(agent.step),
        cfg.split,
        {
            "sharpe": m["sharpe"],
            "sharpe_low": b["low"],
            "sharpe_high": b["high"],
            "total_return": m["total_return"],
            "max_drawdown": m["max_drawdown"],
            "psr": inf["psr"],
            "dsr": inf["dsr"],
            "trades": m["trades"],
            "break_even_cost_bps": report["cost_sensitivity"]["break_even_cost_bps"],
        },
        flush=True,
    )
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
    for key in ("buy_and_hold", "sma_crossover", "flat"):
        e = report["baselines"][key]
        d = e["difference"]["sharpe"]
        t.add_row(
            key.replace("_", " "),
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
        f"PSR {inf['psr']:.3f} · DSR {inf['dsr']:.3f} ({inf['n_trials']} trials) · break-even cost "
        f"{_num(report['cost_sensitivity']['break_even_cost_bps'])} bps (trained at "
        f"{report['cost_sensitivity']['actual_cost_bps']:.2f})"
    )
    return t
