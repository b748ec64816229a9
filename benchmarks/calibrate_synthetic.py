"""Calibration of the synthetic market against real USD/JPY M1 (2016 Jan-Aug, HistData bid bars).

Prints, side by side, the statistics the synthetic defaults are tuned to: per-minute volatility,
robust tail frequencies, lag-1..5 return autocorrelation, |return| autocorrelation (volatility
clustering) at 1, 60 and 1440 minutes, the hourly and weekday volatility profiles; then the
planted-signal ceiling of the training demo market and of the strong preset at the default costs.

    .venv/bin/python benchmarks/calibrate_synthetic.py [--data ../shared/data/usdjpy_m1_2016] [--bars 250000]

Only consecutive minutes are used for returns (weekend and missing-minute gaps are skipped).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ztb_core.data.importers import read_histdata  # noqa: E402
from ztb_core.data.synthetic import STRONG_SIGNAL, SyntheticConfig, generate_market, signal_ceiling  # noqa: E402
from ztb_core.pnl import CostConfig  # noqa: E402
from ztb_core.rl.config import TrainConfig  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usdjpy_m1_2016"


def _acf(x: np.ndarray, k: int) -> float:
    x = x - x.mean()
    return float((x[:-k] * x[k:]).mean() / x.var())


def market_stats(bars: pd.DataFrame) -> dict[str, object]:
    """The calibration statistics of M1 bars."""
    t = bars.index.asi8
    step = np.diff(t) // 60_000_000_000
    r_all = np.diff(np.log(bars["close"].to_numpy()))
    ok = step == 1
    r, times = r_all[ok], bars.index[1:][ok]
    robust_sd = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    a = np.abs(r)
    sq = pd.Series(r**2, index=times)
    hourly = np.sqrt(sq.groupby(times.hour).mean().reindex(range(24)).to_numpy()) / r.std()
    daily = np.sqrt(sq.resample("1D").sum())
    daily = daily[daily > 0]
    weekday = daily.groupby(daily.index.day_of_week).median()
    weekday = (weekday / weekday.mean()).reindex(range(7))
    return {
        "returns": len(r),
        "std": float(r.std()),
        "robust_sd/std": robust_sd / float(r.std()),
        "P(|r|>4 sd)": float((a > 4 * r.std()).mean()),
        "P(|r|>8 sd)": float((a > 8 * r.std()).mean()),
        "acf1": _acf(r, 1),
        "acf2": _acf(r, 2),
        "acf5": _acf(r, 5),
        "acf(|r|,1)": _acf(a, 1),
        "acf(|r|,60)": _acf(a, 60),
        "acf(|r|,1440)": _acf(a, 1440),
        "daily vol cv": float(daily.std() / daily.mean()),
        "hourly": np.round(hourly, 2).tolist(),
        "weekday": np.round(weekday.to_numpy(), 2).tolist(),
    }


def load_real(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("DAT_ASCII_USDJPY_M1_2016*.csv.gz"))
    if not files:
        raise SystemExit(f"no USD/JPY files under {folder} (pass --data)")
    return pd.concat([read_histdata(f).bars for f in files]).sort_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--bars", type=int, default=250_000)
    args = ap.parse_args()
    real = market_stats(load_real(args.data))
    synth = market_stats(generate_market(SyntheticConfig(n_bars=args.bars)))
    print(f"{'statistic':<16} {'USD/JPY 2016':>14} {'synthetic':>14}")
    for key, value in real.items():
        other = synth[key]
        if isinstance(value, list):
            print(f"{key:<16} real  {value}\n{'':<16} synth {other}")
        else:
            print(f"{key:<16} {value:>14.4g} {other:>14.4g}")
    costs = CostConfig()
    demo = TrainConfig().data.synthetic
    for name, cfg in (("train demo", demo), ("STRONG_SIGNAL", demo.model_copy(update=STRONG_SIGNAL))):
        for observes in ("signal", "prices"):
            c = signal_ceiling(cfg, costs.rate, observes=observes)
            print(
                f"ceiling {name:<14} sees {observes:<6} net Sharpe {c.net_sharpe:7.1f}  gross {c.gross_sharpe:7.1f}  "
                f"band {c.band_sd} sd  {c.flips_per_1000:.1f} flips/1000 bars  (costs {costs.rate * 1e4:.1f} bps/unit)"
            )


if __name__ == "__main__":
    main()
