"""Operations commands: notify (test the notification setup), janitor, errors, report weekly, smoke."""

from __future__ import annotations

from pathlib import Path

import typer

from .help import SET_METAVAR, help_settings


def register(app: typer.Typer) -> None:
    app.command("notify")(notify_cmd)
    app.command("janitor")(janitor_cmd)
    app.command("errors")(errors_cmd)
    report = typer.Typer(help="Reports across runs.", no_args_is_help=True, **help_settings())
    report.command("weekly")(weekly_cmd)
    app.add_typer(report, name="report")
    app.command("smoke")(smoke_cmd)
    app.command("canary")(canary_cmd)


def canary_cmd(
    rows: list[str] = typer.Option(
        [],
        "--row",
        metavar="ROW",
        help="Fault rows to run (default all): none, disconnect, timeout, 429, 5xx, slow_disk, memory, "
        "late_execution, silent_stall.",
    ),
    phases: list[str] = typer.Option(
        [],
        "--phase",
        metavar="PHASE",
        help="Phases to run (default all): replay, live-lite, kill/resume, 'kill/resume live', 'live session'.",
    ),
    keep: Path | None = typer.Option(None, "--keep", help="Keep the canary artifacts in this folder."),
    record: bool = typer.Option(True, "--record/--no-record", help="Record the table as a `canary` run."),
) -> None:
    """Replay, live-lite and kill/resume (a training run, a live session) phases against the loopback
    emulator under a fault table; a pass/fail table per phase and row; exit 1 on any failure."""
    from rich.console import Console
    from rich.table import Table

    from ..atomic import atomic_write_json
    from ..errors import ZtbError
    from ..runtime.run_writer import create_run
    from . import canary

    bad = [r for r in rows if r not in canary.ROWS] + [p for p in phases if p not in canary.PHASES]
    if bad:
        raise ZtbError(f"unknown row/phase {bad}; rows: {', '.join(canary.ROWS)}; phases: {', '.join(canary.PHASES)}")
    console = Console()
    writer = create_run("canary", {"rows": rows, "phases": phases}) if record else None
    if writer is not None:
        writer.set_status("running", message="canary")
    n = 0

    def show(cell) -> None:
        nonlocal n
        n += 1
        mark = "[green]pass[/]" if cell.passed else "[red]FAIL[/]"
        console.print(
            f"{mark} {cell.phase:<16} {cell.row:<14} {cell.seconds:6.1f}s  {cell.detail.splitlines()[0]}",
            highlight=False,
        )
        if writer is not None:
            writer.metric(
                n,
                "canary",
                {"phase": cell.phase, "row": cell.row, "passed": cell.passed, "seconds": round(cell.seconds, 3)},
            )

    result = canary.run_canary(keep, tuple(rows) or canary.ROWS, tuple(phases) or canary.PHASES, on_cell=show)
    cells = {(c.phase, c.row): c for c in result.cells}
    table = Table(
        title=f"ztb canary: {sum(c.passed for c in result.cells)}/{len(result.cells)} passed in {result.seconds:.0f}s"
    )
    table.add_column("fault row")
    used_phases = [p for p in canary.PHASES if any(c.phase == p for c in result.cells)]
    for p in used_phases:
        table.add_column(p)
    for r in dict.fromkeys(c.row for c in result.cells):
        table.add_row(
            r,
            *[
                ("[green]pass[/]" if cells[(p, r)].passed else "[red]FAIL[/]") if (p, r) in cells else "-"
                for p in used_phases
            ],
        )
    console.print(table)
    for c in result.cells:
        if not c.passed:
            console.rule(f"[red]{c.phase} / {c.row}")
            console.print(c.detail, highlight=False, markup=False)
    if writer is not None:
        atomic_write_json(
            writer.reports_dir / "canary.json",
            {
                "passed": result.passed,
                "seconds": result.seconds,
                "cells": [
                    {"phase": c.phase, "row": c.row, "passed": c.passed, "detail": c.detail, "seconds": c.seconds}
                    for c in result.cells
                ],
            },
        )
        failed = [f"{c.phase}/{c.row}" for c in result.cells if not c.passed]
        writer.close(
            "completed" if result.passed else "failed",
            message="all cells passed" if not failed else "failed: " + ", ".join(failed),
        )
    if not result.passed:
        raise typer.Exit(1)


def smoke_cmd(
    only: list[str] = typer.Option(
        [], "--only", metavar="PREFIX", help="Run only steps whose name starts with this (repeatable)."
    ),
    keep: Path | None = typer.Option(None, "--keep", help="Keep the smoke artifacts in this folder."),
    record: bool = typer.Option(True, "--record/--no-record", help="Record the table as a `smoke` run."),
) -> None:
    """Every command's happy path on the synthetic market and the loopback emulator, in a temporary
    artifacts folder: a pass/fail table; exit 1 on any failure. Run it after an upgrade."""
    from rich.console import Console
    from rich.table import Table

    from ..runtime.run_writer import create_run
    from .smoke import run_smoke

    console = Console()
    writer = create_run("smoke", {"only": only}) if record else None
    if writer is not None:
        writer.set_status("running", message="smoke steps")

    def show(step) -> None:
        mark = "[green]pass[/]" if step.passed else "[red]FAIL[/]"
        console.print(f"{mark} {step.name:<22} {step.seconds:6.1f}s  exit {step.code}", highlight=False)
        if writer is not None:
            writer.metric(
                len(result_steps) + 1,
                "smoke",
                {"step": step.name, "exit": step.code, "seconds": round(step.seconds, 3), "passed": step.passed},
            )
        result_steps.append(step)

    result_steps: list = []
    result = run_smoke(keep=keep, only=only or None, on_step=show)
    table = Table(
        title=f"ztb smoke: {sum(s.passed for s in result.steps)}/{len(result.steps)} passed in {result.seconds:.1f}s"
    )
    for col in ("step", "command", "exit", "seconds", "result"):
        table.add_column(col)
    for s in result.steps:
        table.add_row(
            s.name,
            "ztb " + " ".join(s.argv[:4]) + (" ..." if len(s.argv) > 4 else ""),
            str(s.code),
            f"{s.seconds:.1f}",
            "[green]pass[/]" if s.passed else "[red]FAIL[/]",
        )
    console.print(table)
    for s in result.steps:
        if not s.passed:
            console.rule(f"[red]{s.name}: output (tail)")
            console.print(s.output[-2500:], highlight=False, markup=False)
    if writer is not None:
        from ..atomic import atomic_write_json

        atomic_write_json(
            writer.reports_dir / "smoke.json",
            {
                "passed": result.passed,
                "seconds": result.seconds,
                "steps": [
                    {"name": s.name, "argv": s.argv, "exit": s.code, "seconds": s.seconds, "passed": s.passed}
                    for s in result.steps
                ],
            },
        )
        state = "completed" if result.passed else "failed"
        failed = [s.name for s in result.steps if not s.passed]
        writer.close(state, message="all steps passed" if not failed else "failed: " + ", ".join(failed))
    if not result.passed:
        raise typer.Exit(1)


def weekly_cmd(
    days: float = typer.Option(7.0, "--days", min=0.01, help="Length of the window ending now, in days."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the report (default <artifacts>/reports)."),
    artifacts: Path | None = typer.Option(None, help="Artifacts folder (default $ZTB_ARTIFACTS or ./artifacts)."),
) -> None:
    """Runs, steps trained, best evaluations (Sharpe, PSR, DSR), live P&L and risk events: Markdown + PNG."""
    from rich.console import Console

    from ..ops.weekly import build, write_weekly
    from ..paths import artifacts_dir

    art = artifacts or artifacts_dir()
    w = build(art, days)
    md, png, js = write_weekly(w, out or art / "reports")
    Console().print(
        f"weekly report: {len(w.runs)} run(s), {w.steps_trained:,} steps trained, live P&L {w.live_pnl:,.2f}\n"
        f"  {md}\n  {png}\n  {js}",
        highlight=False,
    )


def errors_cmd(
    since: str | None = typer.Option(None, "--since", help="Only errors after this: 30m, 12h, 2d, 1w or an ISO date."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many distinct errors."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    artifacts: Path | None = typer.Option(None, help="Artifacts folder (default $ZTB_ARTIFACTS or ./artifacts)."),
) -> None:
    """The last errors across runs, one row per traceback digest (how often, which runs, last seen)."""
    import json
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    from ..ops.errors import collect, parse_since

    groups = collect(artifacts, parse_since(since))[:limit]
    if json_out:
        typer.echo(json.dumps([g.as_dict() for g in groups], indent=2))
        return
    console = Console()
    if not groups:
        console.print("no errors" + (f" since {since}" if since else "") + " in any run")
        return
    table = Table(title=f"errors ({len(groups)} distinct)")
    for col in ("last seen", "count", "error", "runs", "digest"):
        table.add_column(col)
    for g in groups:
        last = datetime.fromtimestamp(g.last).strftime("%Y-%m-%d %H:%M")
        runs = ", ".join(g.runs[:3]) + (f" (+{len(g.runs) - 3})" if len(g.runs) > 3 else "")
        where = ("\n" + g.traceback_tail[-2].strip()) if len(g.traceback_tail) >= 2 else ""
        table.add_row(last, str(g.count), g.error[:160] + where, runs, g.digest[:12])
    console.print(table)


def janitor_cmd(
    apply_: bool = typer.Option(False, "--apply", help="Remove what the plan lists (default: dry run)."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar=SET_METAVAR, help="Override a configs/ops.yaml key, e.g. janitor.runs.keep_last=20."
    ),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    artifacts: Path | None = typer.Option(None, help="Artifacts folder (default $ZTB_ARTIFACTS or ./artifacts)."),
) -> None:
    """Retention for runs, checkpoints, launch logs and logs (configs/ops.yaml janitor:); a dry run unless --apply."""
    import json

    from rich.console import Console
    from rich.table import Table

    from ..humanize import fmt_bytes
    from ..ops import janitor
    from ..paths import artifacts_dir
    from ..runtime.config import load_ops_config

    art = artifacts or artifacts_dir()
    cfg = load_ops_config(overrides).janitor
    plan = janitor.plan(art, cfg)
    done = janitor.apply(plan, art) if apply_ else []
    if json_out:
        listed = done if apply_ else plan.remove
        rows = [{"category": i.category, "path": str(i.path), "bytes": i.size, "reason": i.reason} for i in listed]
        payload = {
            "applied": apply_,
            "items": rows,
            "bytes": sum(i.size for i in listed),
            "protected": [{"path": str(p), "why": why} for p, why in plan.protected],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    items = done if apply_ else plan.remove
    if not items:
        console.print(f"janitor: nothing to remove under {art}", highlight=False)
    else:
        table = Table(title=("removed" if apply_ else "would remove (dry run; --apply to remove)"))
        for col in ("what", "path", "size", "why"):
            table.add_column(col)
        for i in items:
            shown = i.path.relative_to(art) if i.path.is_relative_to(art) else i.path
            table.add_row(i.category, str(shown), fmt_bytes(i.size), i.reason)
        console.print(table)
        verb = "freed" if apply_ else "would free"
        console.print(f"janitor: {len(items)} item(s), {verb} {fmt_bytes(sum(i.size for i in items))}", highlight=False)
    if plan.protected:
        console.print(
            f"kept on purpose: {len(plan.protected)} (active runs, best / resume checkpoints; --json lists them)"
        )


def notify_cmd(
    message: str = typer.Argument("ztb notification test", help="Text to send."),
) -> None:
    """Send MESSAGE to every target in DISCORD_WEBHOOK / ZTB_NOTIFY now and say which worked (tokens redacted)."""
    from rich.console import Console

    from ..config import resolve_config
    from ..errors import ConfigError
    from ..redaction import redact_secrets
    from ..runtime.notify import NotifyConfig, env_secrets, targets_from_env

    console = Console()
    cfg = resolve_config(NotifyConfig).config
    secrets = env_secrets()
    try:
        targets = targets_from_env()
    except ConfigError as exc:
        raise ConfigError(redact_secrets(str(exc), secrets)) from None
    if not targets:
        raise ConfigError("no notification target: set DISCORD_WEBHOOK and/or ZTB_NOTIFY (see configs/notify.yaml)")
    failed = 0
    for target in targets:
        try:
            target.send("ztb", message, cfg.timeout_s)
            console.print(f"[green]sent[/] {target.name}", highlight=False)
        except Exception as exc:  # noqa: BLE001 - report each target's outcome
            failed += 1
            console.print(f"[red]failed[/] {target.name}: {redact_secrets(f'{type(exc).__name__}: {exc}', secrets)}")
    if failed:
        raise typer.Exit(1)
