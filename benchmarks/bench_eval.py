"""Evaluation benchmark: one year of FX M1 bars (260 days x 1,440 = 374,400 bars), the full
report with default settings (1,000 bootstrap resamples, 2,000 Monte Carlo paths, 100 random-
policy seeds, 4 start offsets) and all four pictures.

Target (issue 6, 2-core machine): whole evaluation + report + pictures < 30 s.

Usage: python benchmarks/bench_eval.py [--bars N] [--resamples N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=260 * 1440, help="M1 bars (default: one FX year)")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--keep", type=Path, default=None, help="write the report here instead of a temp folder")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from ztb_core.data.synthetic import SyntheticConfig, generate_market
    from ztb_core.evaluation import EvalConfig, evaluate_positions, sma_crossover, write_report
    from ztb_core.trading_costs import CostConfig

    import_s = time.perf_counter() - t0
    t = time.perf_counter()
    bars = generate_market(SyntheticConfig(n_bars=args.bars, market="fx", seed=1, signal_strength=0.05))
    gen_s = time.perf_counter() - t
    open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
    positions = sma_crossover(close, 30, 240)  # the "agent": a trend follower with realistic turnover
    cfg = EvalConfig.model_validate({"bootstrap": {"n_resamples": args.resamples}, "robustness": {"episodes": 4}})

    stages: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        stages.append((stage, now - last[0]))
        last[0] = now

    t_eval = time.perf_counter()
    last[0] = t_eval
    report = evaluate_positions(
        positions,
        open_,
        close,
        bars.index,
        CostConfig(),
        "M1",
        "fx",
        cfg,
        n_trials=10,
        meta={"model": "sma-30-240", "symbol": "SYNTH", "split": "benchmark"},
        progress=progress,
    )
    eval_s = time.perf_counter() - t_eval
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench_eval_"))
    t = time.perf_counter()
    paths = write_report(report, out_dir, "bench")
    write_s = time.perf_counter() - t
    total_s = eval_s + write_s
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = usage.ru_maxrss / 1024
    cpu_s = usage.ru_utime + usage.ru_stime
    load1 = os.getloadavg()[0]

    m, b = report["metrics"], report["bootstrap"]
    print(
        f"bars: {len(close):,} M1 ({report['meta']['start']} .. {report['meta']['end']}), "
        f"resamples {b['n_resamples']:,} (block {b['block_length']:.1f}), MC paths {report['monte_carlo']['n_paths']:,}, "
        f"random seeds {report['baselines']['random']['n_seeds']}"
    )
    print(f"setup (not timed against the target): imports {import_s:.2f} s, synthetic bars {gen_s:.2f} s")
    print("stage timings:")
    for stage, s in stages:
        print(f"  {stage:<18} {s:7.2f} s")
    print(f"  {'write report+PNGs':<18} {write_s:7.2f} s")
    print(
        f"evaluation + report: {total_s:.2f} s (target < {TARGET_S:.0f} s) -> {'PASS' if total_s < TARGET_S else 'FAIL'}"
    )
    print(
        f"peak RSS: {rss_mb:,.0f} MiB; process CPU time {cpu_s:.1f} s (whole script); "
        f"1-min load average {load1:.1f} on {os.cpu_count()} cores"
        + (" — other processes compete for the cores, wall times are inflated" if load1 > (os.cpu_count() or 1) else "")
    )
    print(
        f"agent Sharpe {m['sharpe']:.2f} [{b['intervals']['sharpe']['low']:.2f}, {b['intervals']['sharpe']['high']:.2f}], "
        f"PSR {report['sharpe_inference']['psr']:.3f}, DSR {report['sharpe_inference']['dsr']:.3f}"
    )
    print(f"report: {paths['json']} (+ {len(paths) - 1} files)")
    return 0 if total_s < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
