"""Live volatility sizing on real USD/JPY M1 bars: the forecaster fitted on the months before
`--split` (as training stores it in a checkpoint), then the live path (`ForecastSizing.step` on the
runner's rolling buffer, one bar at a time, the 60-bar momentum sign as the policy) against the
backtest path (`VolSizing.scale` over the whole history, then `held_scale`) for `--bars` bars after
the split. Prints the largest difference, the time per live step, and the size the forecaster adds
to a checkpoint (torch-pickled, zstd level 3, as `CheckpointSaver` writes it).

Usage: python benchmarks/bench_live_vol_sizing.py [--data DIR] [--split 2016-05-01] [--bars 2000]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ztb_core.data.importers import read_histdata_folder  # noqa: E402
from ztb_core.errors import DataError  # noqa: E402
from ztb_core.evaluation.vol_sizing import ONLINE_BUFFER_BARS, TrainedVolSizing, held_scale  # noqa: E402
from ztb_core.live.loop.sizing import ForecastSizing  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usdjpy_m1_2016"
#: bars the runner keeps beyond the forecast's week (any longer buffer gives the same value)
SLACK = 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of HistData M1 csv.gz files")
    ap.add_argument("--split", default="2016-05-01", help="first bar (UTC) sized live")
    ap.add_argument("--bars", type=int, default=2000, help="bars sized live after the split")
    args = ap.parse_args()
    try:
        bars = read_histdata_folder(args.data)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return 2
    times = np.asarray(bars.index.as_unit("ns").asi8, np.int64)
    c = bars["close"].to_numpy(np.float64)
    k = int(np.searchsorted(bars.index, pd.Timestamp(args.split, tz=bars.index.tz)))
    end = min(k + args.bars, c.size)
    trained = TrainedVolSizing.fit(c[:k], times[:k], horizon=60, cap=2.0, band=0.25)
    print(trained.describe())
    policy = np.sign(c - np.concatenate([np.full(60, c[0]), c[:-60]]))
    offline = held_scale(trained.sizing.scale(c[:end], times[:end])[k:end], policy[k:end], trained.band)
    live = ForecastSizing(trained)
    keep = ONLINE_BUFFER_BARS + SLACK
    t0 = time.perf_counter()
    online = np.array([live.step(bars.iloc[t + 1 - keep : t + 1], float(policy[t])) for t in range(k, end)])
    per_step = (time.perf_counter() - t0) / (end - k)
    print(
        f"{end - k:,} bars sized live from {bars.index[k]}: max |live - backtest| = {np.max(np.abs(online - offline)):.3g}"
    )
    print(
        f"scale: mean {online.mean():.3f}, min {online.min():.3f}, max {online.max():.3f}; changes {np.count_nonzero(np.diff(online))}"
    )
    print(f"live step (buffer of {keep:,} bars): {per_step * 1000:.2f} ms")
    buf = io.BytesIO()
    torch.save({"vol_sizing": trained.to_state()}, buf)
    packed = zstandard.ZstdCompressor(level=3).compress(buf.getvalue())
    print(f"checkpoint entry: {len(buf.getvalue()):,} bytes pickled, {len(packed):,} bytes after zstd")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
