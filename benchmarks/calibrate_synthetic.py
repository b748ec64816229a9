"""Calibration of the synthetic market against real USD/JPY M1 (2016 Jan-Aug, HistData bid bars).

Prints, side by side, the statistics the synthetic defaults are tuned to: per-minute volatility,
robust tail frequencies, lag-1..5 return autocorrelation, variance ratios at 5, 15 and 60 minutes
and the sum of autocorrelations at lags 2-30 (where a planted momentum signal shows, even when a
quote bounce hides it at lag 1), |return| autocorrelation (volatility clustering) at 1, 60 and 1440
minutes, the hourly and weekday volatility profiles; for the signal-free default and for the
training demo market (its planted signal included). Then the best linear forecast's out-of-sample
correlation with the next return on the demo market (the price filter with the true parameters:
an upper bound for any linear model of the bars), and the planted-signal ceilings of the demo
market and of the strong preset at the default costs.

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
from ztb_core.data.synthetic import (  # noqa: E402
    STRONG_SIGNAL,
    SyntheticConfig,
    generate_market,
    price_filter_forecasts,
    signal_ceiling,
)
from ztb_core.rl.config import TrainConfig  # noqa: E402
from ztb_core.trading_costs import CostConfig  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usdjpy_m1_2016"


def _acf(x: np.ndarray, k: int) -> float:
    x = x - x.mean()
    return float((x[:-k] * x[k:]).mean() / x.var())


def variance_ratio(r: np.ndarray, q: int) -> float:
    """Var(q-minute return) / (q Var(1-minute return)), from the autocorrelations (Lo-MacKinlay):
    1 + 2 sum_{k<q} (1 - k/q) acf(k). Above 1: momentum; below 1: mean reversion."""
    return 1.0 + 2.0 * sum((1.0 - k / q) * _acf(r, k) for k in range(1, q))


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
        "VR(5 min)": variance_ratio(r, 5),
        "VR(15 min)": variance_ratio(r, 15),
        "VR(60 min)": variance_ratio(r, 60),
        "sum acf 2..30": sum(_acf(r, k) for k in range(2, 31)),
        "acf(|r|,1)": _acf(a, 1),
        "acf(|r|,60)": _acf(a, 60),
        "acf(|r|,1440)": _acf(a, 1440),
        "daily vol cv": float(daily.std() / daily.mean()),
        "hourly": np.round(hourly, 2).tolist(),
        "weekday": np.round(weekday.to_numpy(), 2).tolist(),
    }


def filter_oos_corr(cfg: SyntheticConfig, test_fraction: float = 0.3) -> float:
    """Correlation of the price filter's forecast (made after bar t) with bar t+1's return over the
    last `test_fraction` of the bars. The filter uses the true parameters, so no linear model fitted
    on the earlier bars does better out of sample: if this is small, so is any ridge forecast's."""
    bars = generate_market(cfg)
    fc = price_filter_forecasts(cfg)["expected_return"].to_numpy()
    nxt = np.log(bars["close"].to_numpy()[1:] / bars["open"].to_numpy()[1:])
    start = int(len(nxt) * (1.0 - test_fraction))
    return float(np.corrcoef(fc[:-1][start:], nxt[start:])[0, 1])


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
    demo = TrainConfig().data.synthetic
    real = market_stats(load_real(args.data))
    synth = market_stats(generate_market(SyntheticConfig(n_bars=args.bars)))
    demo_stats = market_stats(generate_market(demo))
    print(f"{'statistic':<16} {'USD/JPY 2016':>14} {'no signal':>14} {'demo market':>14}")
    for key, value in real.items():
        other, third = synth[key], demo_stats[key]
        if isinstance(value, list):
            print(f"{key:<16} real  {value}\n{'':<16} synth {other}\n{'':<16} demo  {third}")
        else:
            print(f"{key:<16} {value:>14.4g} {other:>14.4g} {third:>14.4g}")
    print(
        f"demo market: best linear forecast (price filter, true parameters) corr with the next return, "
        f"last 30 % of bars: {filter_oos_corr(demo):.4f}"
    )
    costs = CostConfig()
    for name, cfg in (("train demo", demo), ("STRONG_SIGNAL", demo.model_copy(update=STRONG_SIGNAL))):
        for observes in ("signal", "prices"):
            c = signal_ceiling(cfg, costs.rate, observes=observes)
            print(
                f"ceiling {name:<14} sees {observes:<6} net Sharpe {c.net_sharpe:7.1f}  gross {c.gross_sharpe:7.1f}  "
                f"band {c.band_sd} sd  {c.flips_per_1000:.1f} flips/1000 bars  (costs {costs.rate * 1e4:.1f} bps/unit)"
            )


if __name__ == "__main__":
    main()
