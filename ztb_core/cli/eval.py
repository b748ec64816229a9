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
) -> None:
    """Metrics, PSR/DSR, block-bootstrap intervals, Monte Carlo risk, baselines, cost sensitivity and
    robustness for a trained agent; writes reports/eval_<id>.{json,md,png} in a new eval run."""
    import sys

    from rich.console import Console

    from ..config import resolve_config
    from ..evaluation import EvalConfig
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
    console.print(f"run directory: {writer.dir}")
    for key, path in paths.items():
        console.print(f"  {key}: {path}")


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
