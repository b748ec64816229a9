"""`ztb live`: trade a policy through ccxt — dry run (paper fills on live quotes), `--minimal`
(one unfillable order placed and cancelled), or real trading (keys + --confirm-live)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from .help import SET_METAVAR, help_settings

TRUTHY = ("1", "true", "yes", "on")


def register(app: typer.Typer) -> None:
    group = typer.Typer(invoke_without_command=True, **help_settings())
    group.callback()(live)
    group.command("reconcile")(reconcile_command)
    app.add_typer(group, name="live")


FALSY = ("0", "false", "no", "off")


def _env_flag(name: str) -> bool | None:
    """True/False when the variable says so, None when unset or empty; anything else is refused
    (a typo must not silently pick a mode)."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in TRUTHY:
        return True
    if raw in FALSY:
        return False
    from ..errors import ConfigError

    raise ConfigError(f"{name}={os.environ[name]!r}: use 1/0 (true/false, yes/no, on/off) or leave it unset")


def resolve_mode(dry_run: bool, minimal: bool, confirm_live: bool) -> str:
    """The mode the command line and the environment ask for: "dry_run", "minimal" or "config" (the
    config's `mode` decides). Contradictions are refused before anything else happens (no config
    read, no key loaded, no private call, no run directory): a paper run asked for in one place and a
    real order in another, or an environment variable that says the opposite of its flag. A dry run
    wins over the config file's `mode: live` / `confirm_live: true` (standing settings), never over
    an explicit real-money request."""
    from ..errors import ConfigError

    env_dry, env_min = _env_flag("DRY_RUN"), _env_flag("LIVE_MINIMAL")
    if dry_run and env_dry is False:
        raise ConfigError("contradictory modes: --dry-run but DRY_RUN=0; unset DRY_RUN or drop --dry-run")
    if minimal and env_min is False:
        raise ConfigError("contradictory modes: --minimal but LIVE_MINIMAL=0; unset LIVE_MINIMAL or drop --minimal")
    dry = [w for w, on in (("--dry-run", dry_run), ("DRY_RUN=1", env_dry)) if on]
    real = [
        w for w, on in (("--minimal", minimal), ("LIVE_MINIMAL=1", env_min), ("--confirm-live", confirm_live)) if on
    ]
    if dry and real:
        raise ConfigError(
            f"contradictory modes: {' and '.join(dry)} (paper trading, no private call) with {' and '.join(real)} "
            "(real orders); choose one"
        )
    if dry:
        return "dry_run"
    return "minimal" if (minimal or env_min) else "config"


def live(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="Live config YAML (default configs/live.yaml)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Paper trading on live quotes; no private endpoint is called (also DRY_RUN=1)."
    ),
    minimal: bool = typer.Option(
        False,
        "--minimal",
        help="Place one minimum-size order that cannot fill, confirm, cancel, check balances (also LIVE_MINIMAL=1).",
    ),
    confirm_live: bool = typer.Option(False, "--confirm-live", help="Really trade with real money (mode: live)."),
    disable_risk_limits: bool = typer.Option(
        False, "--disable-risk-limits", help="Turn every risk limit and breaker off. Dangerous."
    ),
    reset_breakers: bool = typer.Option(False, "--reset-breakers", help="Clear latched circuit breakers first."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Trained checkpoint or training run dir (implies policy.kind=agent)."
    ),
    policy: str | None = typer.Option(None, "--policy", help="agent or sma (overrides policy.kind)."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a config key: --set risk.max_trades_per_day=10"
    ),
    max_bars: int | None = typer.Option(None, "--max-bars", min=1, help="Stop after this many bars (completed)."),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the run directory."),
    allow_market_mismatch: bool = typer.Option(
        False,
        "--allow-market-mismatch",
        help="Trade for real with an agent trained on another market kind (fx vs crypto; also the config key).",
    ),
) -> None:
    """Run the live decision loop (dry run by default) or the --minimal API check."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from ..config import resolve_config
    from ..errors import ConfigError
    from ..live.loop.live_config import LiveConfig

    requested = resolve_mode(dry_run, minimal, confirm_live)  # first: a contradiction touches nothing
    console = Console(stderr=True)
    if policy and policy not in ("agent", "sma"):
        raise ConfigError(f"--policy {policy!r}: use agent or sma")
    flags = _live_flags(
        requested, dry_run, minimal, confirm_live, disable_risk_limits, allow_market_mismatch, checkpoint, policy
    )
    resolved = resolve_config(LiveConfig, config, overrides, flags)
    cfg = resolved.config
    if requested == "minimal":
        raise typer.Exit(_minimal(cfg, console, run_id, resolved.chosen()))
    mode = "dry_run" if (requested == "dry_run" or cfg.mode == "dry_run") else "live"
    if mode == "dry_run":
        confirm_live = False  # a dry run never confirms real trading (the flags set confirm_live false too)
    raise typer.Exit(
        _session(
            cfg,
            mode,
            console,
            confirm_live or cfg.confirm_live,
            checkpoint,
            max_bars,
            run_id,
            disable_risk_limits,
            reset_breakers,
            resolved.chosen(),
        )
    )


def _live_flags(
    requested: str,
    dry_run: bool,
    minimal: bool,
    confirm_live: bool,
    disable_risk_limits: bool,
    allow_market_mismatch: bool,
    checkpoint: Path | None,
    policy: str | None,
) -> dict:
    """The flags of `ztb live` as the config keys they set (`resolve_config` records which).
    `requested` is `resolve_mode`'s answer: contradictions were refused before this."""
    # --minimal places a real order; otherwise --dry-run (or DRY_RUN=1) wins over the config's mode
    mode: tuple[str, str | None]
    confirm: tuple[str, bool | None] = ("--confirm-live", True if confirm_live else None)
    if requested == "minimal":
        mode = ("--minimal" if minimal else "env LIVE_MINIMAL", "live")
    elif requested == "dry_run":
        mode = ("--dry-run" if dry_run else "env DRY_RUN", "dry_run")
        # a dry run never confirms real trading, whatever the config file says
        confirm = ("--dry-run" if dry_run else "env DRY_RUN", False)
    else:
        mode = ("--dry-run", None)
    return {
        "mode": mode,
        "confirm_live": confirm,
        "risk.enabled": ("--disable-risk-limits", False if disable_risk_limits else None),
        "allow_market_mismatch": ("--allow-market-mismatch", True if allow_market_mismatch else None),
        # --checkpoint makes the policy the agent whatever policy.kind or --policy said
        "policy.kind": ("--checkpoint", "agent") if checkpoint is not None else ("--policy", policy),
        "policy.checkpoint": ("--checkpoint", str(checkpoint) if checkpoint is not None else None),
    }


def _risk_banner(cfg, mode: str, console, credentials_source: str | None, policy_name: str | None = None) -> None:
    from rich.panel import Panel

    r = cfg.risk
    lines = [
        f"mode           {mode.upper()}  ({cfg.exchange.exchange} {cfg.exchange.symbol})",
        f"keys           {credentials_source or 'none (public endpoints only)'}",
        f"policy         {cfg.policy.kind}"
        + (f" {policy_name}" if policy_name else "")
        + (f" {cfg.policy.checkpoint}" if cfg.policy.kind == "agent" and cfg.policy.checkpoint else ""),
        f"capital        {cfg.capital:,.0f}",
    ]
    if r.enabled:
        lines += [
            f"daily loss     {r.daily_loss_limit:,} (quote)",
            f"trades/day     {r.max_trades_per_day}",
            f"stop-loss      {r.stop_loss_pct:.1%} from entry",
            f"max position   {r.max_position} (base), notional {r.max_notional:,}",
            f"breakers       errors>={r.max_consecutive_errors}, data>{r.stale_data_s:.0f}s, "
            f"jump>{r.max_price_jump_pct:.1%}, spread>{r.max_spread_bps:.0f}bps -> reduce-only",
        ]
    else:
        lines += ["RISK LIMITS    DISABLED (--disable-risk-limits)"]
    style = "bold red" if mode == "live" else "cyan"
    console.print(Panel("\n".join(lines), title=f"ztb live: {mode}", border_style=style))


def _loud_warning(console) -> None:
    from rich.panel import Panel

    console.print(
        Panel(
            "RISK LIMITS ARE DISABLED.\nNo daily loss limit, no trade count, no stop-loss, no position "
            "limit, no circuit breakers.\nEvery order the policy asks for will be sent.",
            title="WARNING",
            border_style="bold red",
            style="bold red",
        )
    )


def _session(
    cfg,
    mode: str,
    console,
    confirmed: bool,
    checkpoint: Path | None,
    max_bars: int | None,
    run_id: str | None,
    risk_disabled: bool,
    reset_breakers: bool,
    config_sources: dict[str, str] | None = None,
) -> int:
    from ..live.loop.session import prepare_session, run_session

    plan = prepare_session(cfg, mode, confirmed, checkpoint)  # every refusal, before anything is written
    if risk_disabled:
        _loud_warning(console)
    # drawn once the policy is known: --checkpoint makes it the agent whatever policy.kind said
    _risk_banner(cfg, mode, console, plan.credentials.source if plan.credentials else None, plan.policy.name)
    if plan.mismatch:
        console.print(f"[bold yellow]warning:[/] {plan.mismatch}; its decisions here are untested", highlight=False)
    result = run_session(
        plan,
        max_bars=max_bars,
        run_id=run_id,
        risk_disabled=risk_disabled,
        reset_breakers=reset_breakers,
        config_sources=config_sources,
    )
    console.print(
        f"[bold]{result.state}[/]: {result.bars} bars, {result.orders} orders; run {result.run_dir}", highlight=False
    )
    return 0


def _minimal(cfg, console, run_id: str | None, config_sources: dict[str, str] | None = None) -> int:
    from rich.table import Table

    from ..live.loop.session import prepare_minimal, run_minimal_session

    plan = prepare_minimal(cfg)
    _risk_banner(cfg, "minimal", console, plan.credentials.source)
    result = run_minimal_session(plan, run_id=run_id, config_sources=config_sources)
    table = Table(title=f"ztb live --minimal: {cfg.exchange.exchange} {cfg.exchange.symbol}")
    for col in ("step", "result", "ms", "detail"):
        table.add_column(col)
    for s in result.report["steps"]:
        table.add_row(s["name"], "[green]PASS[/]" if s["ok"] else "[red]FAIL[/]", f"{s['latency_ms']:.1f}", s["detail"])
    console.print(table)
    verdict = "PASSED" if result.passed else "FAILED"
    console.print(f"[bold {'green' if result.passed else 'red'}]minimal flow {verdict}[/] (run {result.run_dir})")
    return 0 if result.passed else 1


def reconcile_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="Live config YAML (default configs/live.yaml)."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a config key (e.g. journal_path=...)."
    ),
    paper: bool = typer.Option(False, "--paper", help="The dry run's (paper) journal instead of the live one."),
    resolve: str | None = typer.Option(
        None, "--resolve", help="Exchange order id that an unknown placement could be (see the list)."
    ),
    verdict: str | None = typer.Option(None, "--as", help="ours (adopt it) or not-ours (never touch it)."),
) -> None:
    """List placements with an unknown outcome and the exchange orders they could be; --resolve ORDER
    --as ours|not-ours decides one (journal only: the next `ztb live` start applies it)."""
    from rich.console import Console

    from ..config import resolve_config
    from ..errors import ConfigError
    from ..live.execution.journal import Journal, JournalLock
    from ..live.execution.orders import UNRESOLVED
    from ..live.execution.reconcile import AMBIGUOUS_KEY, FOREIGN_KEY, resolve_order
    from ..live.loop.live_config import LiveConfig

    if (resolve is None) != (verdict is None):
        raise ConfigError("--resolve and --as go together: --resolve EXCHANGE_ORDER_ID --as ours|not-ours")
    # the journal is the live one unless --paper asks for the dry run's
    cfg = resolve_config(LiveConfig, config, overrides, {"mode": ("--paper", "dry_run" if paper else "live")}).config
    path = cfg.resolved_journal_path()
    if not path.exists():
        raise ConfigError(f"no journal at {path} (set journal_path, or --paper for the dry run's)")
    console = Console()
    with (
        JournalLock(path),
        Journal(path, "paper" if paper else "live", cfg.exchange.exchange, cfg.exchange.symbol) as j,
    ):
        if resolve is not None:
            console.print(resolve_order(j, resolve, verdict or ""), highlight=False)
        ambiguous = j.get_state(AMBIGUOUS_KEY, {})
        unresolved = j.orders(UNRESOLVED)
        # plain lines, never a table that wraps or truncates the ids an operator has to copy
        console.print(f"journal {path}: {len(unresolved)} placement(s) with an unknown outcome", highlight=False)
        for o in unresolved:
            candidates = ", ".join(ambiguous.get(o.client_id, [])) or "none seen yet"
            console.print(
                f"  {o.client_id} {o.state} {o.side} {o.amount} @ {o.price}; could be exchange order(s): {candidates}",
                highlight=False,
                soft_wrap=True,
            )
        foreign = j.get_state(FOREIGN_KEY, [])
        console.print(f"ruled not ours: {', '.join(map(str, foreign)) if foreign else 'none'}", highlight=False)
