"""Foundation commands: doctor, runs, stop."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import typer

from ..humanize import age
from .help import help_settings


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
    runs_app = typer.Typer(
        invoke_without_command=True,
        help="List runs (and compact their history: `ztb runs compact RUN`).",
        **help_settings(),
    )
    runs_app.callback()(runs)
    runs_app.command("compact")(compact)
    app.add_typer(runs_app, name="runs")
    app.command("stop")(stop)


REQUIRED = (
    "textual",
    "rich",
    "typer",
    "torch",
    "lightning",
    "transformers",
    "pandas",
    "pyarrow",
    "stable-baselines3",
    "gymnasium",
    "psutil",
    "nvidia-ml-py",
    "zstandard",
    "ccxt",
    "pydantic",
    "pyyaml",
    "arch",
    "matplotlib",
    "jsonschema",
)


def doctor(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Check Python, packages, torch/CUDA, NVML and the artifacts folder; exit 1 if something required is missing."""
    from importlib import metadata

    from rich.console import Console
    from rich.table import Table

    from ..paths import artifacts_dir
    from ..runtime.telemetry import NvmlSource

    checks: list[dict] = []

    def add(name: str, ok: bool, detail: str, required: bool = True, fix: str = "") -> None:
        checks.append({"check": name, "ok": ok, "detail": detail, "required": required, "fix": fix})

    add("python", sys.version_info >= (3, 11), sys.version.split()[0], fix="install Python 3.11 or newer")
    for pkg in REQUIRED:
        try:
            add(pkg, True, metadata.version(pkg))
        except metadata.PackageNotFoundError:
            add(pkg, False, "missing", fix=f"pip install '{pkg}' (or rerun `make test` to install everything)")
    try:
        import torch

        cuda = torch.cuda.is_available()
        detail = f"{torch.__version__}; CUDA {'available: ' + torch.cuda.get_device_name(0) if cuda else 'not available (CPU build or no GPU)'}"
        add("torch/cuda", True, detail)
    except Exception as exc:
        add("torch/cuda", False, f"import failed: {exc}", fix="pip install torch==2.13.0 (CPU) or a CUDA build")
    nvml = NvmlSource()
    if nvml.available:
        gpus = "; ".join(f"{g.index}:{g.name} {g.mem_total_mb:.0f} MiB" for g in nvml.gpus())
        add("nvml", True, f"driver {nvml.driver_version}; {gpus}", required=False)
    else:
        add(
            "nvml",
            False,
            f"unavailable: {nvml.reason}",
            required=False,
            fix="GPU panels show 'unavailable'; install the NVIDIA driver on GPU boxes",
        )
    art = artifacts_dir()
    try:
        art.mkdir(parents=True, exist_ok=True)
        probe = art / f".doctor-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
        free_gb = shutil.disk_usage(art).free / 2**30
        add(
            "artifacts",
            free_gb > 1.0,
            f"{art} writable, {free_gb:.1f} GiB free",
            fix="free disk space or set ZTB_ARTIFACTS to a larger disk",
        )
    except OSError as exc:
        add("artifacts", False, f"{art}: {exc.strerror}", fix="set ZTB_ARTIFACTS to a writable folder")
    failed = [c for c in checks if c["required"] and not c["ok"]]
    if json_out:
        typer.echo(json.dumps({"ok": not failed, "checks": checks}, indent=2))
    else:
        table = Table(title="ztb doctor")
        for col in ("check", "status", "detail"):
            table.add_column(col)
        for c in checks:
            mark = "[green]ok[/]" if c["ok"] else ("[red]MISSING[/]" if c["required"] else "[yellow]warn[/]")
            table.add_row(c["check"], mark, c["detail"] + (f"\n→ {c['fix']}" if not c["ok"] and c["fix"] else ""))
        Console().print(table)
        if failed:
            Console(stderr=True).print(f"[red]{len(failed)} required check(s) failed[/]")
    if failed:
        raise typer.Exit(1)


def _compact(n: int) -> str:
    """12,000 -> 12k, 1,000,000 -> 1M: a step count that fits a narrow column (--json has the exact one)."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= div * 10:
            return f"{n / div:.4g}{unit}"
    return f"{n:,}"


def runs(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    stale_after: float = typer.Option(30.0, help="Heartbeat age (s) after which an active run is stale/dead."),
    artifacts: Path | None = typer.Option(None, help="Artifacts folder (default $ZTB_ARTIFACTS or ./artifacts)."),
) -> None:
    """List runs: id, kind, state, step/total, heartbeat age, pid alive."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from ..runs import list_runs

    items = list_runs(artifacts, stale_after_s=stale_after)
    if json_out:
        typer.echo(
            json.dumps(
                [
                    {
                        "run_id": r.run_id,
                        "kind": r.kind,
                        "state": r.state,
                        "liveness": r.liveness,
                        "step": r.step,
                        "total_steps": r.total_steps,
                        "heartbeat_age_s": r.heartbeat_age_s,
                        "pid": r.pid,
                        "pid_alive": r.pid_alive,
                        "dir": str(r.dir),
                        "message": r.message,
                    }
                    for r in items
                ],
                indent=2,
            )
        )
        return
    if not items:
        typer.echo("no runs yet — start one with `ztb train --headless` (or `make demo`)")
        return
    colors = {
        "running": "green",
        "completed": "cyan",
        "stopped": "yellow",
        "failed": "red",
        "fatal": "red",
        "dead": "red",
        "stale": "magenta",
    }
    # The run id is what people copy and tell apart: it is never cut; the other columns wrap or
    # shrink instead (an 80-column terminal fits a 26-character id with every column).
    table = Table(title=f"runs ({len(items)})", pad_edge=False, collapse_padding=True)
    id_width = max(len(r.run_id) for r in items)
    table.add_column("run id", no_wrap=True, min_width=id_width, overflow="fold")
    table.add_column("kind", max_width=8, overflow="fold")
    table.add_column("state", max_width=9, overflow="fold")
    table.add_column("step/total", max_width=17, overflow="fold")
    table.add_column("beat", max_width=5, overflow="fold")
    table.add_column("pid", max_width=14, overflow="fold")
    for r in items:
        c = colors.get(r.liveness, "white")
        total = f"{_compact(r.step)}/{_compact(r.total_steps)}" if r.total_steps else _compact(r.step)
        pid = f"{r.pid} {'alive' if r.pid_alive else 'gone' if r.pid_alive is False else 'remote'}" if r.pid else "-"
        table.add_row(r.run_id, r.kind, f"[{c}]{r.liveness}[/]", total, age(r.heartbeat_age_s), pid)
    Console().print(table)


def compact(
    run_ids: list[str] = typer.Argument(None, help="runs to compact (ids, unique prefixes or paths)"),
    all_finished: bool = typer.Option(False, "--all", help="every run that no process is writing"),
) -> None:
    """Compress a finished run's metrics and events into zstd segments (still read by every reader)."""
    from ..errors import RunError
    from ..ops.compact import compact_run
    from ..runs import find_run, list_runs

    if all_finished and run_ids:
        raise typer.BadParameter("give run ids or --all, not both")
    if not all_finished and not run_ids:
        raise typer.BadParameter("name a run (or --all)")
    targets = [r.dir for r in list_runs()] if all_finished else [find_run(r) for r in run_ids]
    failed = 0
    for run_dir in targets:
        try:
            done = compact_run(run_dir)
        except RunError as exc:
            typer.echo(f"skipped: {exc}", err=True)
            failed += 0 if all_finished else 1  # --all passes over live runs by design
            continue
        if done.raw_bytes:
            typer.echo(
                f"{done.run_id}: {done.raw_bytes / 1e6:,.2f} MB -> {done.compressed_bytes / 1e6:,.2f} MB "
                f"({sum(f.lines for f in done.files):,} lines into {sum(1 for f in done.files if f.segment)} segments)"
            )
        else:
            typer.echo(f"{done.run_id}: nothing to compact")
    if failed:
        raise typer.Exit(1)


def stop(
    run_id: str | None = typer.Argument(None, help="Run id (or unique prefix) to stop."),
    all_runs: bool = typer.Option(False, "--all", help="Stop every run (writes the global kill-file)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run reaches a final state."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for a safe stop."),
    force: bool = typer.Option(False, "--force", help="After --timeout: SIGTERM the process group, then SIGKILL."),
    kill_timeout: float = typer.Option(10.0, "--kill-timeout", help="Seconds between SIGTERM and SIGKILL."),
    artifacts: Path | None = typer.Option(None, help="Artifacts folder."),
) -> None:
    """Ask a run (or all runs) to stop safely through the kill-file; optionally wait and escalate."""
    from rich.console import Console

    from ..errors import ZtbError
    from ..paths import global_kill_file
    from ..runs import ACTIVE_STATES, find_run, list_runs
    from ..runtime.killfile import request_stop
    from ..runtime.stopper import stop_run

    console = Console()
    if bool(run_id) == bool(all_runs):
        raise ZtbError("give exactly one of RUN_ID or --all")
    if all_runs:
        path = request_stop(global_kill_file(artifacts), reason="ztb stop --all")
        console.print(f"wrote global kill-file {path} (remove it before starting new runs)")
        targets = [r.dir for r in list_runs(artifacts) if r.state in ACTIVE_STATES]
    else:
        assert run_id is not None  # exactly one of RUN_ID / --all was enforced above
        targets = [find_run(run_id, artifacts)]
    failed = False
    for run_dir in targets:
        outcome = stop_run(run_dir, wait=wait, timeout_s=timeout, force=force, kill_timeout_s=kill_timeout)
        for action in outcome.actions:
            console.print(f"{outcome.run_id}: {action}")
        if wait or force:
            console.print(f"{outcome.run_id}: final state [bold]{outcome.final_state}[/]")
            failed |= not outcome.stopped
    if failed:
        raise typer.Exit(1)
