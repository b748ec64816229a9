"""Console benchmark: `ztb tui` running headless for 60 s against 3 active runs that keep
writing metrics, each metrics.jsonl holding 1,000,000 lines.

Figures (compared with the issue's targets in the same run):
- process CPU of the console, % of one core, at a 1 s refresh, with one run view open whose
  charts show the run's whole 1M-point series (downsampled for drawing; target < 5%), measured
  once the whole history is drawn
- time from process start to the first full paint of the runs list (target < 1 s), from
  opening a run to its curves painted from the 1M-line file (tail read), and to its charts
  drawn from the whole file
- console memory (RSS, peak); host load during the run (the machine may be shared: busy)

usage: python benchmarks/bench_tui.py [--seconds 60] [--lines 1000000] [--refresh 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

START = time.time()  # console mode: as close to process start as Python allows

CPU_TARGET_PCT = 5.0
PAINT_TARGET_S = 1.0
CHARTS_WAIT_S = 300.0  # the whole-history read of three 1M-line files on a busy 2-core machine


# ---------------------------------------------------------------------------------------
# roles run in subprocesses
# ---------------------------------------------------------------------------------------


def writer_main(run_dir: Path, seconds: float) -> None:
    """An active run: 10 train rows/s and 1 sys row/s, heartbeat, like a PPO run."""
    from ztb_core.runs import RunWriter

    writer = RunWriter.open(run_dir)
    step = int(writer.status.get("step", 0))
    writer.set_status("running", step=step, total_steps=10_000_000)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        step += 205
        writer.metric(
            step,
            "train",
            {"value_loss": 1.0 / (1 + step / 1e5), "policy_loss": 0.01, "ep_rew_mean": step / 1e6, "fps": 2050.0},
        )
        if i % 10 == 0:
            writer.metric(
                step, "sys", {"rss_mb": 1500.0, "cpu_pct": 95.0, "sys_mem_pct": 40.0, "gpu": "unavailable: benchmark"}
            )
        writer.heartbeat(step)
        i += 1
        time.sleep(0.1)
    writer.close("stopped")


def console_main(artifacts: Path, seconds: float, refresh: float, open_run: str) -> None:
    from ztb_tui.app import ZtbApp

    app = ZtbApp(artifacts, refresh_s=refresh)
    marks: dict[str, float] = {}
    opened: dict[str, float] = {}

    def on_paint(what: str, at: float) -> None:
        if what in marks:
            return
        marks[what] = at
        print(json.dumps({"paint": what, "at": at}), flush=True)
        if what == "runs":
            opened["at"] = time.time()
            print(json.dumps({"open": open_run, "at": opened["at"]}), flush=True)
            app.open_run(artifacts / "runs" / open_run)
        if what.startswith("charts:"):
            # the steady state is measured from here: run `seconds` more with the charts showing
            app.set_timer(seconds, app.exit)

    app.on_paint = on_paint

    def stop_later() -> None:
        app.set_timer(seconds + CHARTS_WAIT_S, app.exit)  # charts never drawn: give up

    app.call_later(stop_later)
    print(json.dumps({"start": START}), flush=True)
    app.run(headless=True)


# ---------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------


def charts_drawn(lines: list[str]) -> bool:
    return any('"charts:' in line for line in lines)


def make_big_run(artifacts: Path, run_id: str, lines: int) -> Path:
    from ztb_core.runs import RunWriter

    writer = RunWriter.create("train", {"bench": True}, run_id=run_id, artifacts=artifacts, total_steps=10_000_000)
    writer.close()
    t0 = 1.7e9
    chunk = 100_000
    with open(writer.dir / "metrics.jsonl", "w") as fh:
        for start in range(0, lines, chunk):
            fh.write(
                "".join(
                    f'{{"time":{t0 + i * 0.1:.1f},"step":{i * 2},"split":"train","value_loss":{1.0 / (1 + i):.6g},'
                    f'"policy_loss":0.01,"ep_rew_mean":{i / lines:.6f},"fps":2050.0}}\n'
                    for i in range(start, min(start + chunk, lines))
                )
            )
    status = json.loads((writer.dir / "status.json").read_text())
    status["step"] = lines * 2
    (writer.dir / "status.json").write_text(json.dumps(status))
    return writer.dir


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--refresh", type=float, default=1.0)
    ap.add_argument("--role", choices=["bench", "writer", "console"], default="bench")
    ap.add_argument("--dir")
    ap.add_argument("--open")
    ap.add_argument(
        "--extra-runs",
        help="an artifacts folder whose runs are copied in beside the three big ones (eval, tune, pretrain, "
        "live runs the real commands wrote: `python tests/tui/real_runs.py DIR`), so the list polls their "
        "warnings too",
    )
    args = ap.parse_args()
    if args.role == "writer":
        writer_main(Path(args.dir), args.seconds)
        return 0
    if args.role == "console":
        console_main(Path(args.dir), args.seconds, args.refresh, args.open)
        return 0

    import psutil
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="ztb-bench-tui-"))
    artifacts = tmp / "artifacts"
    env = {
        **os.environ,
        "ZTB_ARTIFACTS": str(artifacts),
        "ZTB_KILL": str(tmp / "ztb.stop"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    procs: list[subprocess.Popen] = []
    try:
        run_ids = [f"train-bench-{i}" for i in range(3)]
        with Progress(console=console) as progress:
            task = progress.add_task(f"writing 3 x {args.lines:,}-line metrics files", total=3)
            for rid in run_ids:
                make_big_run(artifacts, rid, args.lines)
                progress.advance(task)
        size_mb = sum((artifacts / "runs" / r / "metrics.jsonl").stat().st_size for r in run_ids) / 2**20
        extra = sorted((Path(args.extra_runs) / "runs").iterdir()) if args.extra_runs else []
        for run in extra:
            shutil.copytree(run, artifacts / "runs" / run.name)
        me = [sys.executable, __file__]
        for rid in run_ids:
            procs.append(
                subprocess.Popen(
                    me
                    + [
                        "--role",
                        "writer",
                        "--dir",
                        str(artifacts / "runs" / rid),
                        "--seconds",
                        str(args.seconds + CHARTS_WAIT_S + 30),
                    ],
                    env=env,
                )
            )
        time.sleep(1.0)
        spawn = time.time()
        con_out: list[str] = []
        con = subprocess.Popen(
            me
            + [
                "--role",
                "console",
                "--dir",
                str(artifacts),
                "--seconds",
                str(args.seconds),
                "--refresh",
                str(args.refresh),
                "--open",
                run_ids[0],
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(con)
        ps = psutil.Process(con.pid)
        reader = threading.Thread(target=lambda: con_out.extend(iter(con.stdout.readline, "")), daemon=True)
        reader.start()
        host_cpu0 = None
        rss_peak = 0.0
        warm_cpu = None
        samples = []
        with Progress(console=console) as progress:
            task = progress.add_task(f"console headless: charts read, then {args.seconds:.0f} s measured", total=None)
            while con.poll() is None:
                try:
                    ct = ps.cpu_times()
                    rss = ps.memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    break
                rss_peak = max(rss_peak, rss)
                elapsed = time.time() - spawn
                cpu = ct.user + ct.system
                if warm_cpu is None and charts_drawn(con_out):
                    # steady state: after start-up, first paints and the charts' whole-history read
                    warm_cpu = cpu
                    host_cpu0 = psutil.cpu_times()
                if warm_cpu is not None:
                    if rss > 0:  # a process that just exited reads 0
                        samples.append((time.monotonic(), cpu, rss))
                progress.update(task, completed=elapsed)
                time.sleep(0.5)
        host_busy = None
        if host_cpu0 is not None:
            host_cpu1 = psutil.cpu_times()
            busy = sum(host_cpu1) - sum(host_cpu0) - (host_cpu1.idle - host_cpu0.idle)
            host_busy = 100.0 * busy / max(sum(host_cpu1) - sum(host_cpu0), 1e-9)
        con.wait(timeout=30)
        reader.join(timeout=5)
        out, err = "".join(con_out), con.stderr.read()
        if con.returncode != 0:
            console.print(f"[red]console exited with {con.returncode}[/]\n{err[-3000:]}")
            return 1
        events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        start = next(e["start"] for e in events if "start" in e)
        runs_paint = next(e["at"] for e in events if e.get("paint") == "runs")
        opened = next(e["at"] for e in events if "open" in e)
        run_paint = next((e["at"] for e in events if str(e.get("paint", "")).startswith("run:")), None)
        charts = next((e for e in events if str(e.get("paint", "")).startswith("charts:")), None)
        samples = [x for x in samples if x[0] >= samples[0][0] + 3.0] if samples else []  # settle 3 s
        window = samples[-1][0] - samples[0][0] if len(samples) >= 2 else 0.0
        if len(samples) >= 2:
            (t0, c0, _), (t1, c1, _) = samples[0], samples[-1]
            cpu_pct = 100.0 * (c1 - c0) / (t1 - t0)
            steady_rss = samples[-1][2]
        else:
            cpu_pct, steady_rss = float("nan"), float("nan")
        first_paint = runs_paint - spawn
        table = Table(
            title=f"bench_tui: 3 active runs, {args.lines:,}-line metrics each ({size_mb:,.0f} MiB), "
            f"refresh {args.refresh:g} s, {args.seconds:.0f} s headless"
            + (f", plus {len(extra)} finished runs of every kind" if extra else "")
        )
        for col in ("figure", "value", "target", "verdict"):
            table.add_column(col)

        def verdict(ok: bool) -> str:
            return "[green]PASS[/]" if ok else "[red]FAIL[/]"

        table.add_row(
            f"console CPU (run view open, charts of 1M points, {window:.0f} s window)",
            f"{cpu_pct:.2f} % of one core",
            f"< {CPU_TARGET_PCT:g} %",
            verdict(cpu_pct < CPU_TARGET_PCT),
        )
        table.add_row(
            "start -> first full paint (runs list), from spawn",
            f"{first_paint:.3f} s",
            f"< {PAINT_TARGET_S:g} s",
            verdict(first_paint < PAINT_TARGET_S),
        )
        table.add_row("  of which Python interpreter start", f"{start - spawn:.3f} s", "", "")
        if run_paint is not None:
            table.add_row(
                f"open run -> curves painted ({args.lines:,}-line file, tail read)",
                f"{run_paint - opened:.3f} s",
                f"< {PAINT_TARGET_S:g} s",
                verdict(run_paint - opened < PAINT_TARGET_S),
            )
        if charts is not None:
            points = int(charts["paint"].rsplit(":", 1)[1])
            table.add_row(
                f"open run -> charts drawn from the whole file ({points:,} points per series)",
                f"{charts['at'] - opened:.3f} s",
                "-",
                "",
            )
        else:
            table.add_row("charts drawn from the whole file", "not within the run", "-", "[red]FAIL[/]")
        table.add_row("console RSS (end / peak)", f"{steady_rss:.0f} / {rss_peak:.0f} MiB", "-", "")
        load = os.getloadavg()
        table.add_row(
            "reference: host CPU busy during the measurement (all cores)",
            f"{host_busy:.0f} %" if host_busy is not None else "-",
            "-",
            "busy machine" if (host_busy or 0) > 50 or load[0] > (os.cpu_count() or 1) / 2 else "",
        )
        table.add_row("reference: load average (1/5/15 min)", " / ".join(f"{x:.1f}" for x in load), "-", "")
        console.print(table)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
