"""`technical-66`: the RL agent's 66 causal features per M1 bar.

Each feature is listed once in `SPECS` (name, formula, window); `docs/features.md` is generated
from that list (`python -m ztb_core.data.features.technical --doc`), and `compute_technical`
fills the columns in the same order. Prices enter as log ratios or bounded oscillators so the
features do not depend on the price level; volume enters only through a z-score that is 0 when
volume is always 0 (FX).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import NS_PER_MINUTE, index_ns
from . import indicators as ind
from .htf import align
from .matrix import ColumnWriter, FeatureMatrix


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    formula: str
    window: str


RET_HORIZONS = (1, 2, 3, 5, 10, 15, 30, 60, 120, 240)
RVOL_WINDOWS = (5, 15, 30, 60, 240)
RSI_WINDOWS = (7, 14, 28)
SMA_WINDOWS = (10, 20, 50, 100, 200)
EMA_WINDOWS = (12, 26, 50)
HTF_CONTEXT = ("M5", "M15", "H1", "H4", "D")


def _specs() -> list[FeatureSpec]:
    s: list[FeatureSpec] = []
    s += [FeatureSpec(f"ret_{k}", f"ln(close_t / close_(t-{k}))", f"{k + 1} bars") for k in RET_HORIZONS]
    s += [FeatureSpec(f"rvol_{n}", "sqrt(mean(r^2)), r = 1-bar log return", f"{n + 1} bars") for n in RVOL_WINDOWS]
    s += [FeatureSpec(f"rsi_{n}", "RSI (Wilder, TA-Lib) / 100", f"{n + 1} bars") for n in RSI_WINDOWS]
    s += [
        FeatureSpec("macd", "(EMA12 - EMA26) / close", "26 bars"),
        FeatureSpec("macd_signal", "EMA9(EMA12 - EMA26) / close", "34 bars"),
        FeatureSpec("macd_hist", "(macd line - signal) / close", "34 bars"),
        FeatureSpec(
            "bb_pctb_20", "(close - lower) / (upper - lower) - 0.5; bands SMA20 +/- 2 pop. std (0 if flat)", "20 bars"
        ),
        FeatureSpec("bb_width_20", "(upper - lower) / SMA20", "20 bars"),
        FeatureSpec("atr_14", "ATR14 (Wilder) / close", "15 bars"),
        FeatureSpec("atr_60", "ATR60 (Wilder) / close", "61 bars"),
        FeatureSpec("stoch_k_14", "fast %K = (close - LL14) / (HH14 - LL14) - 0.5 (0 if flat)", "14 bars"),
        FeatureSpec("stoch_d_3", "SMA3 of fast %K, - 0.5", "16 bars"),
        FeatureSpec("adx_14", "ADX14 (Wilder) / 100", "28 bars"),
        FeatureSpec("plus_di_14", "+DI14 / 100", "15 bars"),
        FeatureSpec("minus_di_14", "-DI14 / 100", "15 bars"),
        FeatureSpec("cci_20", "(tp - SMA20(tp)) / (0.015 * mean abs dev) / 100, tp = (h+l+c)/3", "20 bars"),
        FeatureSpec(
            "willr_60", "Williams %R60 / 100 + 0.5 = (close - LL60) / (HH60 - LL60) - 0.5 (0 if flat)", "60 bars"
        ),
    ]
    s += [FeatureSpec(f"dist_sma_{n}", f"ln(close / SMA{n}(close))", f"{n} bars") for n in SMA_WINDOWS]
    s += [FeatureSpec(f"dist_ema_{n}", f"ln(close / EMA{n}(close))", f"{n} bars") for n in EMA_WINDOWS]
    s += [
        FeatureSpec("body", "ln(close / open)", "1 bar"),
        FeatureSpec("upper_wick", "ln(high / max(open, close))", "1 bar"),
        FeatureSpec("lower_wick", "ln(min(open, close) / low)", "1 bar"),
        FeatureSpec("range", "ln(high / low)", "1 bar"),
        FeatureSpec("gap", "ln(open_t / close_(t-1)) (weekend and missing-minute gaps)", "2 bars"),
        FeatureSpec("zscore_60", "(close - SMA60) / std60 (population; 0 if flat)", "60 bars"),
        FeatureSpec(
            "volume_z_60", "(ln(1+v) - mean60) / std60 of ln(1+volume); 0 if constant (FX: always 0)", "60 bars"
        ),
    ]
    for tf in HTF_CONTEXT:
        s += [
            FeatureSpec(f"{tf.lower()}_ret", f"ln(C1 / C2): last two completed {tf} closes", f"2 completed {tf} bars"),
            FeatureSpec(
                f"{tf.lower()}_dist", f"ln(close_t / C1), C1 = last completed {tf} close", f"1 completed {tf} bar"
            ),
            FeatureSpec(
                f"{tf.lower()}_range_pos",
                f"clip((close_t - L1) / (H1 - L1) - 0.5, -5, 5) of the last completed {tf} bar (0 if flat)",
                f"1 completed {tf} bar",
            ),
        ]
    s += [
        FeatureSpec("tod_sin", "sin(2 pi * minute of day (UTC, bar close) / 1440)", "-"),
        FeatureSpec("tod_cos", "cos(2 pi * minute of day (UTC, bar close) / 1440)", "-"),
        FeatureSpec("dow_sin", "sin(2 pi * (day of week + minute of day/1440) / 7), UTC, Monday = 0", "-"),
        FeatureSpec("dow_cos", "cos(2 pi * (day of week + minute of day/1440) / 7), UTC, Monday = 0", "-"),
    ]
    return s


SPECS: list[FeatureSpec] = _specs()
NAMES: list[str] = [s.name for s in SPECS]
assert len(NAMES) == 66 and len(set(NAMES)) == 66, len(NAMES)


def compute_technical(m1: pd.DataFrame, market: str = "fx") -> FeatureMatrix:
    """The 66 technical features for every M1 bar (float32; warm-up rows valid=False)."""
    o = m1["open"].to_numpy(np.float64)
    h = m1["high"].to_numpy(np.float64)
    lo = m1["low"].to_numpy(np.float64)
    c = m1["close"].to_numpy(np.float64)
    v = m1["volume"].to_numpy(np.float64)
    w = ColumnWriter(NAMES, m1.index)
    logc = np.log(c)

    for k in RET_HORIZONS:
        w.put(f"ret_{k}", ind.log_return(c, k))
    r1 = ind.log_return(c, 1)
    for n in RVOL_WINDOWS:
        w.put(f"rvol_{n}", ind.realised_vol(r1, n))
    for n in RSI_WINDOWS:
        w.put(f"rsi_{n}", ind.rsi(c, n) / 100.0)
    line, sig, hist = ind.macd(c)
    w.put("macd", line / c)
    w.put("macd_signal", sig / c)
    w.put("macd_hist", hist / c)
    up, mid, dn = ind.bollinger(c, 20, 2.0)
    w.put("bb_pctb_20", ind.safe_div(c - dn, up - dn, 0.5) - 0.5)
    w.put("bb_width_20", (up - dn) / mid)
    w.put("atr_14", ind.atr(h, lo, c, 14) / c)
    w.put("atr_60", ind.atr(h, lo, c, 60) / c)
    stoch_k, stoch_d = ind.stochastic_fast(h, lo, c, 14, 3)
    w.put("stoch_k_14", stoch_k / 100.0 - 0.5)
    w.put("stoch_d_3", stoch_d / 100.0 - 0.5)
    pdi, mdi, adx = ind.directional(h, lo, c, 14)
    w.put("adx_14", adx / 100.0)
    w.put("plus_di_14", pdi / 100.0)
    w.put("minus_di_14", mdi / 100.0)
    w.put("cci_20", ind.cci(h, lo, c, 20) / 100.0)
    w.put("willr_60", ind.williams_r(h, lo, c, 60) / 100.0 + 0.5)
    for n in SMA_WINDOWS:
        w.put(f"dist_sma_{n}", logc - np.log(ind.sma(c, n)))
    for n in EMA_WINDOWS:
        w.put(f"dist_ema_{n}", logc - np.log(ind.ema(c, n)))
    logo = np.log(o)
    w.put("body", logc - logo)
    w.put("upper_wick", np.log(h) - np.maximum(logo, logc))
    w.put("lower_wick", np.minimum(logo, logc) - np.log(lo))
    w.put("range", np.log(h) - np.log(lo))
    w.put("gap", np.r_[np.nan, logo[1:] - logc[:-1]])
    w.put("zscore_60", ind.safe_div(c - ind.sma(c, 60), ind.rolling_std(c, 60, 0), 0.0))
    lv = np.log1p(np.maximum(v, 0.0))
    w.put("volume_z_60", ind.safe_div(lv - ind.sma(lv, 60), ind.rolling_std(lv, 60, 0), 0.0))

    for tf in HTF_CONTEXT:
        a = align(m1, tf, market)
        c1, c2 = a.take("close"), a.take("close", lag=1)
        h1, l1 = a.take("high"), a.take("low")
        key = tf.lower()
        w.put(f"{key}_ret", np.log(c1 / c2))
        w.put(f"{key}_dist", logc - np.log(c1))
        # clipped: a close far outside a tiny bar's range would otherwise dwarf every other feature
        w.put(f"{key}_range_pos", np.clip(ind.safe_div(c - l1, h1 - l1, 0.5) - 0.5, -5.0, 5.0))

    # calendar of the decision moment (bar close), UTC
    t_close = index_ns(m1.index) + NS_PER_MINUTE
    day_ns = 86_400 * 1_000_000_000
    days = t_close // day_ns
    frac = (t_close - days * day_ns) / day_ns
    dow = (days + 3) % 7 + frac  # 1970-01-01 was a Thursday (Monday = 0)
    w.put("tod_sin", np.sin(2 * np.pi * frac))
    w.put("tod_cos", np.cos(2 * np.pi * frac))
    w.put("dow_sin", np.sin(2 * np.pi * dow / 7.0))
    w.put("dow_cos", np.cos(2 * np.pi * dow / 7.0))
    return w.result()


def features_markdown_table() -> str:
    lines = ["| # | name | formula | window |", "|---|---|---|---|"]
    for i, s in enumerate(SPECS, 1):
        lines.append(f"| {i} | `{s.name}` | {s.formula.replace('|', '/')} | {s.window} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - doc generator
    if "--doc" in sys.argv:
        print(features_markdown_table())
