"""Training commands: `ztb train`, `ztb supervise`, `ztb watch`, `ztb rollup`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..errors import ConfigError
from .help import SET_METAVAR

CONFIG_HELP = "Train config YAML (default: configs/train.yaml; when resuming, the run's recorded config)."
RESUME_HELP = (
    "latest (newest checkpoint of --run-id or of the newest training run), a run id/dir, a checkpoint file, or none."
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("supervise")(supervise)
    app.command("watch")(watch_command)
    app.command("rollup")(rollup)


def _load(config: Path | None, resume: str | None, run_id: str | None, sets: list[str], flags: dict):
    """(resolved config, resume run dir, resume checkpoint) for `train`, `supervise` and `--dry-run`."""
    from ..config import resolve_config
    from ..rl.config import TrainConfig, resolve_recorded_config
    from ..runs import resolve_resume

    resume_dir, resume_file = resolve_resume(resume, run_id, kind="train")
    if config is None and resume_dir is not None:  # the run's own config, as it trained
        return resolve_recorded_config(resume_dir / "config.yaml", sets, flags), resume_dir, resume_file
    return resolve_config(TrainConfig, config, sets, flags), resume_dir, resume_file


def _train_flags(
    total_timesteps: int | None,
    enable_streaming: bool = False,
    stream_batch_size: int | None = None,
    stream_buffer_policy: str | None = None,
) -> dict:
    """The flags of `train`/`supervise` as the config keys they set (`resolve_config` records which)."""
    return {
        "total_timesteps": ("--total-timesteps", total_timesteps or None),
        "streaming.enabled": ("--enable-streaming", True if enable_streaming else None),
        "streaming.batch_size": ("--stream-batch-size", stream_batch_size),
        "streaming.buffer_policy": ("--stream-buffer-policy", stream_buffer_policy),
    }


def _passthrough(config, sets, flags: dict, resume=None) -> list[str]:
    """The command line of a child `train --headless` that resolves to the same config: the flags
    travel as flags, so the child's run records them as such."""
    args: list[str] = []
    if config is not None:
        args += ["--config", str(Path(config).resolve())]
    for s in sets or []:
        args += ["--set", s]
    for flag, value in flags.values():
        if value is True:
            args.append(flag)
        elif value is not None:
            args += [flag, str(value)]
    if resume:
        args += ["--resume", resume]
    return args


def train(
    headless: bool = typer.Option(
        False,
        "--headless",
        help="Train in this terminal with a progress bar (the main job). "
        "Without it the run starts in the background and this command returns.",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    total_timesteps: int | None = typer.Option(
        None, "--total-timesteps", "-n", min=1, help="Steps in total (default 1,000,000)."
    ),
    resume: str | None = typer.Option(None, "--resume", help=RESUME_HELP),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the run (new) or the run to resume."),
    sets: list[str] | None = typer.Option(
        None, "--set", metavar=SET_METAVAR, help="Override a config key, e.g. --set ppo.n_envs=8 (repeatable)."
    ),
    supervise_: bool = typer.Option(
        False, "--supervise", help="Run under the supervisor: restart after crashes from the latest checkpoint."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the rich progress bar."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Validate the config, the data and the resume target; print the resolved config and the run "
        "it would create; write nothing.",
    ),
    enable_streaming: bool = typer.Option(
        False, "--enable-streaming", help="Read the train bars through a bounded ring buffer (streaming.enabled)."
    ),
    stream_batch_size: int | None = typer.Option(
        None, "--stream-batch-size", min=1, help="Bars per producer push (streaming.batch_size, default 64)."
    ),
    stream_buffer_policy: str | None = typer.Option(
        None,
        "--stream-buffer-policy",
        help="drop_oldest or block: what a full buffer does (streaming.buffer_policy).",
    ),
) -> None:
    """Train the PPO agent (kill-file stop, checkpoints, exact resume)."""
    from rich.console import Console

    flags = _train_flags(total_timesteps, enable_streaming, stream_batch_size, stream_buffer_policy)
    console = Console()
    if dry_run:
        _dry_run(console, config, resume, run_id, sets or [], flags)
        return
    if not headless:
        _launch_background(console, config, resume, run_id, sets or [], flags, supervise_)
        return
    if supervise_:
        supervise(
            config=config,
            total_timesteps=total_timesteps,
            resume=resume,
            run_id=run_id,
            sets=sets,
            enable_streaming=enable_streaming,
            stream_batch_size=stream_batch_size,
            stream_buffer_policy=stream_buffer_policy,
        )
        return
    from ..rl.trainer import run_training

    resolved, resume_dir, resume_file = _load(config, resume, run_id, sets or [], flags)
    cfg = resolved.config
    if resume_dir is not None:
        console.print(f"resuming run [bold]{resume_dir.name}[/] ({resume_dir})")
    outcome = run_training(
        cfg,
        run_id=run_id if resume_dir is None else None,
        resume_dir=resume_dir,
        resume_file=resume_file,
        argv=["ztb", *sys.argv[1:]],
        progress=progress and console.is_terminal,
        console=console,
        say=lambda m: console.print(m, highlight=False),
        config_sources=resolved.chosen(),
    )
    _report(console, outcome)


def _dry_run(console, config, resume, run_id, sets: list[str], flags: dict) -> None:
    """Everything `train --headless` checks before its first step, with no run folder, checkpoint,
    cache or log written: config, encoder file, resume compatibility, data and split sizes."""
    from ..config import config_to_yaml, read_yaml
    from ..paths import runs_dir
    from ..rl.encoder import load_encoder_checked
    from ..rl.market import describe_market, prepare_splits
    from ..rl.trainer import check_compatible
    from ..runs import new_run_id

    resolved, resume_dir, _ = _load(config, resume, run_id, sets, flags)
    cfg = resolved.config
    if cfg.encoder.path:
        load_encoder_checked(cfg.encoder.path)
    if resume_dir is not None:
        check_compatible(read_yaml(resume_dir / "config.yaml"), cfg, f"run {resume_dir.name}")
    # the frozen encoder's embeddings are a cache write and minutes of work: the encoder file is checked above
    splits = prepare_splits(
        cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update={"path": None})}), ("train", "val", "test")
    )
    target = resume_dir if resume_dir is not None else runs_dir() / (run_id or new_run_id("train"))
    console.print(config_to_yaml(cfg), highlight=False, markup=False)
    rows = ", ".join(f"{name} {len(sl):,} bars" for name, sl in splits.items())
    console.print(
        f"[bold]dry run[/]: config, data and resume target are valid; nothing was written.\n"
        f"  would {'resume' if resume_dir is not None else 'create'} run: {target}\n"
        f"  steps:   {cfg.rounded_total():,} (total_timesteps {cfg.total_timesteps:,} rounded up to whole rollouts)\n"
        f"  data:    {rows}\n  {describe_market(cfg)}",
        highlight=False,
        soft_wrap=True,  # paths stay whole, so they can be copied
    )


def _launch_background(console, config, resume, run_id, sets, flags: dict, supervised: bool) -> None:
    from ..paths import artifacts_dir
    from ..runs import new_run_id, resolve_resume
    from ..runtime.procs import launch_detached, ztb_argv

    resume_dir, _ = resolve_resume(resume, run_id, kind="train")
    rid = resume_dir.name if resume_dir is not None else (run_id or new_run_id("train"))
    args = [
        "supervise" if supervised else "train",
        *([] if supervised else ["--headless", "--no-progress"]),
        *_passthrough(config, sets, flags, resume),
        "--run-id",
        rid,
    ]
    log_path = artifacts_dir() / "logs" / f"{rid}.out"
    proc = launch_detached(ztb_argv(*args), log_path)
    console.print(
        f"started run [bold]{rid}[/] in the background (pid {proc.pid}{', supervised' if supervised else ''})\n"
        f"  output:  {log_path}\n  follow:  ztb runs | ztb tui | ztb rollup {rid}\n  stop:    ztb stop {rid}",
        highlight=False,
    )


def _report(console, outcome) -> None:
    from ..manifest import Manifest
    from ..ops.rollup import write_rollup

    d = outcome.run_dir
    try:
        write_rollup(d)
    except Exception as exc:  # a summary must never turn a finished run into an error
        console.print(f"[yellow]could not write the rollup: {exc}[/]")
    entries = [e for e in Manifest(d / "checkpoints").entries() if not e.get("invalid")]
    best = next((e for e in entries if e.get("best")), None)
    rid = d.name
    lines = [
        f"[bold]{outcome.state}[/]: {outcome.message}",
        f"  run:          {d}",
        f"  checkpoints:  {d / 'checkpoints'} ({len(entries)} kept; newest step {entries[-1]['step']:,}"
        f"{'; best ' + best['file'] if best else ''})"
        if entries
        else f"  checkpoints:  {d / 'checkpoints'} (none)",
        f"  metrics:      {d / 'metrics.jsonl'}  (events: {d / 'events.jsonl'})",
        f"  summary:      {d / 'reports' / 'summary.md'}",
    ]
    if (d / "reports" / "eval-latest.json").exists():
        lines.append(f"  evaluation:   {d / 'reports' / 'eval-latest.json'}")
    if outcome.state == "stopped":
        lines.append(f"  resume:       ztb train --headless --resume {rid}")
    if outcome.step < 1_000_000:
        lines.append(
            f"  full 1M run:  ztb train --headless --resume {rid} --total-timesteps 1000000   "
            f"(or a fresh one: ztb train --headless)"
        )
    lines.append(f"  evaluate:     ztb eval --model {rid}")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)
    _print_selection(console, d, entries)
    _print_market(console, d)
    _print_forecast_clip(console, d)
    _print_latest_eval(console, d / "reports" / "eval-latest.json")


def _print_selection(console, run_dir, entries: list[dict]) -> None:
    """Which checkpoint `ztb eval --model RUN` will score, and how far training drifted from it."""
    import json

    from ..evaluation.calendar import periods_per_year
    from ..rl.config import load_recorded_config
    from ..rl.evaluate import checkpoint_drift

    try:
        latest = json.loads((run_dir / "reports" / "eval-latest.json").read_text())
        cfg = load_recorded_config(run_dir / "config.yaml")
    except (OSError, ValueError, ConfigError):
        return  # no periodic evaluation (eval.every_steps 0) or an unreadable summary: nothing to compare
    drift = checkpoint_drift(entries, int(latest.get("bars", 0)), periods_per_year("M1", cfg.data.market))
    if drift is None:
        return
    split = latest.get("split", "val")
    if drift.best_step == drift.newest_step:
        console.print(f"  selection:    the newest checkpoint is the best on {split} (Sharpe {drift.best_sharpe:.2f})")
        return
    line = (
        f"  selection:    best on {split}: step {drift.best_step:,}, Sharpe {drift.best_sharpe:.2f} "
        f"(the one `ztb eval --model {run_dir.name}` scores); newest: step {drift.newest_step:,}, "
        f"Sharpe {drift.newest_sharpe:.2f}, {drift.gap_se:.1f} SE below"
    )
    if drift.gap_se > 1:
        line += "\n  [yellow]training drifted away from its best policy (docs/rl-experiments.md)[/]"
    console.print(line, highlight=False, soft_wrap=True)


def _print_market(console, run_dir) -> None:
    """Which market the run used and its ceiling, so an agent's Sharpe can be read against it."""
    from ..rl.config import load_recorded_config
    from ..rl.market import describe_market

    try:
        cfg = load_recorded_config(run_dir / "config.yaml")
    except Exception as exc:  # a summary must never turn a finished run into an error
        console.print(f"[yellow]could not describe the market: {exc}[/]")
        return
    console.print(describe_market(cfg), highlight=False, soft_wrap=True)


def forecast_clip_line(clip: dict | None, eval_clip: dict | None = None) -> str | None:
    """How often the forecast's clip fired: on train (fitted there) and on the last evaluation's bars."""
    if not clip or clip.get("bound") is None:
        return None
    line = (
        f"forecast clipped at +-{clip['bound']:.2f} spreads (the train split's {clip['quantile']:.1%} quantile of "
        f"|forecast|): fires on {clip['train_clipped']:.3%} of train bars"
    )
    if eval_clip and eval_clip.get("eval_clipped") is not None:
        line += f", {eval_clip['eval_clipped']:.3%} of the evaluation bars"
    return line


def _print_forecast_clip(console, run_dir) -> None:
    import json

    from ..runs import RunReader

    ready: dict = next((e for e in reversed(RunReader(run_dir).events()) if e.get("event") == "data_ready"), {})
    try:
        latest = json.loads((run_dir / "reports" / "eval-latest.json").read_text()).get("result", {})
    except (OSError, ValueError):
        latest = {}
    line = forecast_clip_line(ready.get("forecast_clip"), latest.get("forecast_clip"))
    if line:
        console.print(line, highlight=False, soft_wrap=True)


def _print_latest_eval(console, path) -> None:
    """The agent against the baselines on the same validation bars and costs: the first thing a
    person wants to know after a run."""
    import json

    from rich.table import Table

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    res = data.get("result", {})
    table = Table(
        title=f"{data.get('split', 'val')} split at step {data.get('step', 0):,}: "
        f"{data.get('bars', 0):,.0f} bars, same costs",
        title_justify="left",
    )
    for col in ("policy", "Sharpe (ann.)", "total return", "max drawdown"):
        table.add_column(col, justify="right" if col != "policy" else "left")

    def fmt(v, pct=False, sign=True):
        return "-" if v is None else (f"{v:{'+' if sign else ''}.2%}" if pct else f"{v:.2f}")

    rows = [("agent", ""), ("buy and hold", "buy_and_hold_"), ("SMA crossover", "sma_crossover_")]
    if "ridge_sharpe" in res:
        rows.append(("ridge + hysteresis band", "ridge_"))
    for name, prefix in rows:
        table.add_row(
            name,
            fmt(res.get(prefix + "sharpe")),
            fmt(res.get(prefix + "total_return"), True),
            fmt(res.get(prefix + "max_drawdown"), True, sign=False),
        )
    if res.get("random_sharpe_mean") is not None:
        table.add_row(
            "random policies (mean / 95th pct)",
            f"{res['random_sharpe_mean']:.2f} / {res.get('random_sharpe_p95', float('nan')):.2f}",
            "-",
            "-",
        )
    console.print(table)
    console.print(_verdict(res, data.get("trials", {})), highlight=False)
    console.print(
        "[dim]a periodic check, not a verdict: `ztb eval --model RUN --split test` gives the full report "
        "(PSR/DSR, bootstrap intervals, costs)[/]",
        highlight=False,
    )


def _verdict(res: dict, trials: dict) -> str:
    """One line: the agent against the strongest baseline (not the weakest), in words its paired
    bootstrap interval supports (beats / matches / is behind, `evaluation.comparison`), and how much
    of the Sharpe survives deflation for the evaluations this run has already made."""
    best, best_sharpe, sharpe = res.get("strongest_baseline"), res.get("strongest_baseline_sharpe"), res.get("sharpe")
    if best is None or best_sharpe is None:
        return "verdict: undefined (no baseline could be scored on this split)"
    vs = res.get("vs_strongest")
    if isinstance(vs, dict) and vs.get("sentence"):
        head = vs["sentence"]
        if res.get("never_traded"):
            head = "the agent did not trade (Sharpe 0); " + head
    elif sharpe is None:
        head = f"the agent did not trade; the strongest baseline ({best}, Sharpe {best_sharpe:.2f}) did"
    else:  # written before evaluations recorded the interval: no claim either way
        head = (
            f"the agent's Sharpe {sharpe:.2f} against the strongest baseline ({best}, Sharpe {best_sharpe:.2f}); "
            f"no interval recorded for the difference, so no claim that either is better"
        )
    dsr = res.get("dsr")
    deflated = (
        ""
        if dsr is None
        else f"; PSR {res.get('psr', 0):.2f}, DSR {dsr:.2f} deflated for {trials.get('n', res.get('dsr_trials'))} "
        f"trial(s): this evaluation and the earlier ones ({trials.get('source', 'none')})"
    )
    return f"verdict: {head}{deflated}"


def supervise(
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    total_timesteps: int | None = typer.Option(None, "--total-timesteps", "-n", min=1, help="Steps in total."),
    resume: str | None = typer.Option(None, "--resume", help="Supervise an existing run (latest, run id or dir)."),
    run_id: str | None = typer.Option(None, "--run-id", help="Run to create or continue."),
    sets: list[str] | None = typer.Option(
        None, "--set", metavar=SET_METAVAR, help="Override a config key (repeatable)."
    ),
    enable_streaming: bool = typer.Option(False, "--enable-streaming", help="As for train: streaming.enabled."),
    stream_batch_size: int | None = typer.Option(
        None, "--stream-batch-size", min=1, help="As for train: streaming.batch_size."
    ),
    stream_buffer_policy: str | None = typer.Option(
        None, "--stream-buffer-policy", help="As for train: streaming.buffer_policy."
    ),
) -> None:
    """Run `ztb train --headless` as a child process group; restart it after crashes with backoff."""
    from rich.console import Console

    from ..rl.supervisor import Supervisor
    from ..runs import new_run_id

    console = Console()
    flags = _train_flags(total_timesteps, enable_streaming, stream_batch_size, stream_buffer_policy)
    resolved, resume_dir, _ = _load(config, resume, run_id, sets or [], flags)
    cfg = resolved.config
    rid = resume_dir.name if resume_dir is not None else (run_id or new_run_id("train"))
    sup = Supervisor(
        rid,
        _passthrough(config, sets, flags),
        cfg.supervisor,
        say=lambda m: console.print(m, highlight=False),
    )
    sup.install_signal_handlers()
    state = sup.run()
    console.print(f"supervisor: run {rid} ended [bold]{state}[/] after {sup.restarts} restart(s)", highlight=False)
    if state not in ("completed", "stopped"):
        raise typer.Exit(1)


def watch_command(
    run: str = typer.Argument(..., help="Run id (or unique prefix, or directory)."),
    once: bool = typer.Option(False, "--once", help="Check once and exit (for cron)."),
    interval: float = typer.Option(30.0, "--interval", min=0.1, help="Seconds between checks."),
    repeat_min: float = typer.Option(
        30.0, "--repeat-min", min=0.0, help="Do not repeat an alert within this many minutes."
    ),
) -> None:
    """Alert on heartbeat stalls and resource thresholds (ZTB_WATCH_* override the run's config)."""
    from rich.console import Console

    from ..ops.watcher import Thresholds, watch_once
    from ..ops.watcher import watch as watch_loop
    from ..runs import find_run

    console = Console()
    run_dir = find_run(run)
    th = Thresholds.resolve(run_dir)
    show = lambda a: console.print(f"[red]alert[/] {run_dir.name}: {a.check}: {a.message}", highlight=False)  # noqa: E731
    if once:
        alerts = watch_once(run_dir, th, repeat_min)
        for a in alerts:
            show(a)
        if not alerts:
            console.print(f"{run_dir.name}: no new alerts", highlight=False)
        return
    console.print(f"watching {run_dir.name} every {interval:g}s (thresholds {th})", highlight=False)
    watch_loop(run_dir, th, interval, repeat_min, on_alert=show)
    console.print(f"{run_dir.name}: run is no longer active; watcher done", highlight=False)


def rollup(
    run: str = typer.Argument(..., help="Run id (or unique prefix, or directory)."),
    interval_minutes: float | None = typer.Option(
        None, "--interval-minutes", min=0.01, help="Rewrite the summary this often until the run ends (default: once)."
    ),
) -> None:
    """Write reports/summary.json and summary.md for a run."""
    from rich.console import Console

    from ..ops.rollup import rollup_loop, write_rollup
    from ..runs import find_run

    console = Console()
    run_dir = find_run(run)
    if interval_minutes is None:
        js, md = write_rollup(run_dir)
        console.print(f"wrote {js} and {md}", highlight=False)
        return
    rollup_loop(run_dir, interval_minutes, on_write=lambda p: console.print(f"wrote {p[0]}", highlight=False))
