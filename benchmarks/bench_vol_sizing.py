"""Volatility-targeted sizing on real USD/JPY M1 bars: the HAR-RV + seasonality forecaster and the
target fitted on the months before `--split` only, then buy-and-hold and a 60-bar momentum rule at
constant and at volatility-targeted size after it, without and with the default costs, for three
rebalancing bands. Prints the paired bootstrap interval of each Sharpe difference.

Usage: python benchmarks/bench_vol_sizing.py [--data DIR] [--split 2016-05-01] [--resamples 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ztb_core.data.importers import read_histdata_folder  # noqa: E402
from ztb_core.errors import DataError  # noqa: E402
from ztb_core.evaluation.calendar import periods_per_year  # noqa: E402
from ztb_core.evaluation.vol_sizing import VolSizing, compare_sizing  # noqa: E402
from ztb_core.trading_costs import CostConfig  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usdjpy_m1_2016"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of HistData M1 csv.gz files")
    ap.add_argument("--split", default="2016-05-01", help="first bar (UTC) of the scored period")
    ap.add_argument("--resamples", type=int, default=500, help="bootstrap resamples")
    args = ap.parse_args()
    try:
        bars = read_histdata_folder(args.data)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return 2
    times = np.asarray(bars.index.as_unit("ns").asi8, np.int64)
    o, c = bars["open"].to_numpy(np.float64), bars["close"].to_numpy(np.float64)
    k = int(np.searchsorted(bars.index, pd.Timestamp(args.split, tz=bars.index.tz)))
    t0 = time.perf_counter()
    sizing = VolSizing.fit(c[:k], times[:k], horizon=60, cap=2.0)
    scale = sizing.scale(c, times)[k:]
    print(f"fit + scale of {c.size:,} bars: {time.perf_counter() - t0:.1f} s; train {k:,} bars, scored {c.size - k:,}")
    print(f"scored scale: mean {scale.mean():.3f}, min {scale.min():.3f}, max {scale.max():.3f}")
    mom = np.sign(c - np.concatenate([np.full(60, c[0]), c[:-60]]))[k:]
    policies = {"buy_and_hold": np.ones(c.size - k), "momentum60": mom}
    ppy = periods_per_year("M1", "fx")
    print("band  costs     policy        Sharpe const  vol-tgt   diff [95% paired CI]        turnover const/vol")
    for band in (0.0, 0.25, 0.5):
        for label, costs in (("none", CostConfig(fee_bps=0, spread_bps=0, slippage_bps=0)), ("default", CostConfig())):
            out = compare_sizing(policies, o[k:], c[k:], scale, costs, ppy, args.resamples, 0.95, 0, band)
            for name, e in out.items():
                d = e["difference"]["sharpe"]
                print(
                    f"{band:4.2f}  {label:8s}  {name:12s}  {e['constant']['sharpe']:8.2f}  {e['vol_target']['sharpe']:8.2f}"
                    f"  {d['estimate']:+7.2f} [{d['low']:+7.2f}, {d['high']:+7.2f}]  "
                    f"{e['constant']['turnover']:8.0f} / {e['vol_target']['turnover']:8.0f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
