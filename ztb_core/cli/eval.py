"""`ztb eval`: run a trained agent deterministically over a chronological split (or a whole
holdout period) with the costs it trained with, and write the honest-evaluation report (JSON +
Markdown + pictures) into an eval run directory.

Honest by default: the checkpoint is the run's best by validation (and the report says which),
the DSR is deflated for every evaluation recorded in the run's trial registry on the same data,
and the agent is judged against the strongest baseline, including a ridge regression on its own
features fitted on its train split."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import typer

from .help import SET_METAVAR


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
        [],
        "--set",
        metavar=SET_METAVAR,
        help="Override a config key, e.g. --set bootstrap.n_resamples=2000 (repeatable).",
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the eval run directory (default: generated)."),
    registry: Path | None = typer.Option(
        None,
        "--registry",
        help="Append this scoring to a project test registry (e.g. benchmarks/test_registry.csv); --split test only.",
    ),
    registry_market: str | None = typer.Option(
        None,
        "--registry-market",
        help="The registry's market key (default: synthetic:<demo|kind>-<bars>:seed<N>, or real:<SYMBOL>-<TF>-<start>..<end>).",
    ),
    registry_config: str | None = typer.Option(
        None, "--registry-config", help="The registry's short config description (default: run <training run id>)."
    ),
) -> None:
    """Metrics, PSR/DSR, block-bootstrap intervals, Monte Carlo risk, baselines, cost sensitivity and
    robustness for a trained agent; writes reports/eval_<id>.{json,md,png} in a new eval run."""
    import sys

    from rich.console import Console

    from ..config import resolve_config
    from ..evaluation import EvalConfig
    from ..evaluation.holdout_registry import append_scoring, load_registry, registered_line
    from ..evaluation.selection import choose_checkpoint
    from ..logs import setup_logging
    from ..rl.agent import load_agent
    from ..rl.agent_eval import holdout_source, run_evaluation
    from ..runtime.run_writer import create_run
    from ..runtime.telemetry import TelemetryThread

    # a holdout period is evaluated whole unless a split of it is asked for
    whole = "all" if split is None and (start is not None or end is not None) else None
    resolved = resolve_config(
        EvalConfig,
        config,
        overrides,
        flags={
            "split": ("--split", split) if split is not None else ("--start/--end", whole),
            "robustness.episodes": ("--episodes", episodes),
            "sharpe.n_trials": ("--n-trials", n_trials),
            "seed": ("--seed", seed),
        },
    )
    cfg = resolved.config
    console = Console()
    # a bad checkpoint or period fails here, before an eval run directory exists
    choice = choose_checkpoint(model, checkpoint)
    with console.status(f"loading agent {choice.target}"):
        agent = load_agent(choice.target)
    period = holdout_source(agent.train_config, data, start, end)
    # a registry row is checked before anything is written: wrong split, bad registry, same trial
    reg_cells = None
    if registry is not None:
        reg_cells = _registry_cells(cfg.split, period, agent, choice, checkpoint, registry_market, registry_config)
        line = registered_line(load_registry(registry) if registry.exists() else [], reg_cells)
        if line is not None:
            console.print(
                f"{registry}:{line} already holds this scoring (the same trial): not appended again",
                highlight=False,
                soft_wrap=True,
            )
            reg_cells = None
    writer = create_run(
        "eval",
        config=cfg,
        run_id=run_id,
        argv=sys.argv,
        seeds={"seed": cfg.seed},
        total_steps=10,
        config_sources=resolved.chosen(),
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
    sizing = sizing_table(report.get("vol_sizing"))
    if sizing is not None:
        console.print(sizing)
    console.print(
        f"[bold]{report['verdict']['summary']}[/] ({report['verdict']['passed']}/{report['verdict']['total']} checks)"
    )
    console.print(report["verdict"]["comparison"], highlight=False, soft_wrap=True)
    console.print(f"checkpoint: {choice.description}")
    if registry is not None and reg_cells is not None:
        reg_cells.update(_registry_result(report, writer.run_id, paths["json"].name))
        row = append_scoring(registry, reg_cells)
        console.print(
            f"test registry: {registry}:{row.line} ({row.market}, {row.config})", highlight=False, soft_wrap=True
        )
    console.print(f"run directory: {writer.dir}")
    for key, path in paths.items():
        console.print(f"  {key}: {path}")


def _registry_cells(
    split: str, period, agent, choice, checkpoint: str, market: str | None, config: str | None
) -> dict[str, str]:
    """What a test-registry row knows before the evaluation runs (the figures come after)."""
    from ..evaluation.holdout_registry import RegistryError  # lazy like the command's other imports: fast `ztb --help`

    if split != "test" or period is not None:
        raise RegistryError(
            f"--registry records scorings on a market's test split; this evaluation is on {split!r}"
            + (" of a holdout period" if period is not None else "")
        )
    tc = agent.train_config
    if checkpoint == "latest":
        which = "final"
    elif checkpoint == "best" and choice.description.startswith("step "):
        which = "best"
    elif checkpoint == "best":  # no checkpoint was scored on val: the newest is what was evaluated
        which = "final"
    else:
        which = f"step:{int(agent.step)}"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "market": market or _market_key(tc.data),
        "split": "test",
        "config": config or f"run {choice.run_dir.name if choice.run_dir is not None else Path(choice.target).name}",
        "checkpoint": which,
        "train_seed": str(tc.seed),
    }


def _market_key(data) -> str:
    """A registry market key from a training data source; --registry-market names it otherwise."""
    if data.kind == "synthetic":
        s = data.synthetic
        bars = f"{s.n_bars // 1000}k" if s.n_bars % 1000 == 0 else str(s.n_bars)
        return f"synthetic:{'demo' if s.kind == 'default' else s.kind}-{bars}:seed{s.seed}"
    span = "..".join(t.strftime("%Y-%m-%d") if t is not None else "" for t in (data.start, data.end))
    return f"real:{data.symbol}-M1-{span}"


def _registry_result(report: dict, eval_run_id: str, report_name: str) -> dict[str, str]:
    """The figures of a test-registry row, from the evaluation report."""
    meta, sharpe = report["meta"], report["metrics"]["sharpe"]
    return {
        "test_sharpe": "" if sharpe is None or not math.isfinite(sharpe) else f"{sharpe:.4f}",
        "n_test_bars": str(meta["n_bars"]),
        "timeframe": meta["timeframe"],
        "calendar": meta["market"],
        "source": f"ztb eval run {eval_run_id} (reports/{report_name})",
        "note": f"checkpoint step {meta['checkpoint_step']}; appended by ztb eval --registry",
    }


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


def sizing_table(section: dict | None):
    """Constant vs volatility-targeted size per policy, with the paired interval of the difference
    (a one-line note when the section was skipped; None without the section)."""
    from rich.table import Table
    from rich.text import Text

    if not section:
        return None
    if "skipped" in section:
        return Text(f"volatility-targeted sizing not computed: {section['skipped']}")
    t = Table(
        title=f"constant vs volatility-targeted size (HAR forecast, {section['horizon_bars']} bars, "
        f"cap {section['cap']:g}, band {section['band']:.0%})"
    )
    t.add_column("")
    t.add_column("Sharpe const", justify="right")
    t.add_column("Sharpe vol-tgt", justify="right")
    t.add_column(f"Δ {section['confidence']:.0%} paired CI", justify="right")
    t.add_column("fees const / vol-tgt", justify="right")
    for name, e in section["policies"].items():
        c, v, d = e["constant"], e["vol_target"], e["difference"]["sharpe"]
        t.add_row(
            name.replace("_", " "),
            _num(c["sharpe"]),
            _num(v["sharpe"]),
            f"{_num(d['estimate'])} [{_num(d['low'])}, {_num(d['high'])}] {e['difference']['word']}",
            f"{_num(c['fees_paid'], '{:.2%}')} / {_num(v['fees_paid'], '{:.2%}')}",
        )
    return t
