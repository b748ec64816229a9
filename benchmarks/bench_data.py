"""Market-data benchmark on 3,100,000 synthetic M1 bars (about 8.5 years of FX minutes).

Measures, in one process, against the targets of issue 3 (2-core machine):
  import + validate a HistData-format CSV of that size   <= 15 s
  resample M1 to every timeframe (M5..D)                  <= 2 s
  technical-66 features                                   <= 10 s
  peak RSS of the whole run                               <= 4 GiB

Usage: python benchmarks/bench_data.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ztb_core.data.features import compute_feature_set  # noqa: E402
from ztb_core.data.ingest import DataConfig, import_files  # noqa: E402
from ztb_core.data.resample import resample  # noqa: E402
from ztb_core.data.schema import TIMEFRAMES  # noqa: E402
from ztb_core.data.synthetic import SyntheticConfig, generate_market  # noqa: E402

TARGETS = {"import_validate_s": 15.0, "resample_all_s": 2.0, "technical66_s": 10.0, "peak_rss_gib": 4.0}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def write_histdata_csv(bars, path: Path) -> None:
    """HistData Generic ASCII M1: `YYYYMMDD HHMMSS;o;h;l;c;v`, EST (UTC-5)."""
    est = bars.index - np.timedelta64(5, "h")
    out = bars[["open", "high", "low", "close", "volume"]].copy()
    out.index = est.strftime("%Y%m%d %H%M%S")
    out["volume"] = out["volume"].astype(np.int64)
    out.to_csv(path, sep=";", header=False, float_format="%.6f")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3_100_000)
    ap.add_argument("--keep", type=Path, default=None, help="write the CSV and store here and keep them")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="ztb-bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, float] = {}
    try:
        t = time.perf_counter()
        bars = generate_market(SyntheticConfig(seed=0, n_bars=args.rows, market="fx"))
        gen_s = time.perf_counter() - t
        print(f"generated {len(bars):,} synthetic M1 bars ({bars.index[0]} .. {bars.index[-1]}) in {gen_s:.2f} s")

        csv = work / "DAT_ASCII_SYNTH_M1.csv"
        t = time.perf_counter()
        write_histdata_csv(bars, csv)
        print(
            f"wrote {csv} ({csv.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f} s (setup, not timed)"
        )

        cfg = DataConfig(data_dir=str(work / "store"))
        t = time.perf_counter()
        res = import_files([csv], "histdata", "SYNTH", cfg=cfg)
        results["import_validate_s"] = time.perf_counter() - t
        assert res.merge.rows_after == len(bars), (res.merge.rows_after, len(bars))
        print(
            f"import+validate+store (M1 + {len(res.timeframes)} timeframes): {results['import_validate_s']:.2f} s; "
            f"gaps {res.report.gaps_total} ({res.report.gaps_market_closed} market closed, "
            f"{res.report.gaps_unexpected} unexpected)"
        )

        t = time.perf_counter()
        sizes = {tf: len(resample(bars, tf, "fx")) for tf in TIMEFRAMES if tf != "M1"}
        results["resample_all_s"] = time.perf_counter() - t
        print(f"resample to {', '.join(f'{k} {v:,}' for k, v in sizes.items())}: {results['resample_all_s']:.2f} s")

        t, cpu = time.perf_counter(), time.process_time()
        fm = compute_feature_set("technical-66", bars, "fx")
        results["technical66_s"] = time.perf_counter() - t
        cpu = time.process_time() - cpu
        assert np.isfinite(fm.values).all()
        print(
            f"technical-66: {fm.values.shape} float32, {fm.values.nbytes / 2**20:.0f} MiB, first valid row "
            f"{fm.first_valid}: {results['technical66_s']:.2f} s wall, {cpu:.2f} s CPU "
            f"(wall >> CPU means other processes share the cores; load average {os.getloadavg()[0]:.1f})"
        )
        del fm

        t = time.perf_counter()
        st1 = compute_feature_set("stage1-ohlc", bars, "fx")
        print(f"stage1-ohlc (not a target): {st1.values.shape}: {time.perf_counter() - t:.2f} s")
        del st1
        results["peak_rss_gib"] = peak_rss_gib()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'measure':<22}{'value':>10}{'target':>10}  result   (machine: {os.cpu_count()} CPU cores)")
    ok = True
    for key, target in TARGETS.items():
        value = results[key]
        passed = value <= target
        ok &= passed
        print(f"{key:<22}{value:>10.2f}{target:>10.2f}  {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
