"""Vectorised technical indicators on float64 numpy arrays.

Conventions follow TA-Lib (which the tests use as the reference): simple moving averages,
exponential averages seeded with the simple average of their first `n` inputs, Wilder smoothing
(alpha = 1/n) for RSI/ATR/ADX, population standard deviation for Bollinger bands. Outputs are NaN
during each indicator's warm-up and never read a value after the current index: every recursion
runs forward (`scipy.signal.lfilter`) and every window ends at the current bar.

Degenerate denominators (flat prices) produce the indicator's neutral value instead of NaN/inf,
so NaN only ever means "warm-up".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def safe_div(num: np.ndarray, den: np.ndarray, fallback: float) -> np.ndarray:
    """num/den where den != 0, `fallback` where den == 0 (NaN inputs stay NaN)."""
    out = np.full(np.broadcast(num, den).shape, fallback, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    nan = np.isnan(num) | np.isnan(den)
    out[nan] = np.nan
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n, min_periods=n).mean().to_numpy()


def rolling_std(x: np.ndarray, n: int, ddof: int = 0, chunk: int = 32_768) -> np.ndarray:
    """Standard deviation of each n-bar window, two-pass per window (in chunks to bound memory);
    exactly 0 for a flat window. Not pandas' rolling std: its running add/remove variance drifts by
    up to ~5e-8 relative on price series, more than the online features' 1e-9 parity allows."""
    out = _nan(len(x))
    if len(x) >= n:
        windows = sliding_window_view(x, n)  # row j ends at index j+n-1
        for a in range(0, len(windows), chunk):
            w = windows[a : a + chunk]
            sd = w.std(axis=1, ddof=ddof)
            sd[w.max(axis=1) == w.min(axis=1)] = 0.0
            out[a + n - 1 : a + n - 1 + len(w)] = sd
    return out


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n, min_periods=n).max().to_numpy()


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n, min_periods=n).min().to_numpy()


def _smooth(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Exponential smoothing seeded with the mean of the first `n` finite inputs (which must be
    contiguous from the first finite one, as with indicator outputs)."""
    out = _nan(len(x))
    finite = np.flatnonzero(np.isfinite(x))
    if len(finite) == 0:
        return out
    s = finite[0]
    if len(x) - s < n:
        return out
    seed_at = s + n - 1
    out[seed_at] = x[s : s + n].mean()
    rest = x[seed_at + 1 :]
    if len(rest):
        y, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], rest, zi=[(1.0 - alpha) * out[seed_at]])
        out[seed_at + 1 :] = y
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    return _smooth(x, n, 2.0 / (n + 1.0))


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    return _smooth(x, n, 1.0 / n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """RSI in [0, 100]; 50 when the window had no movement at all."""
    d = np.diff(close, prepend=np.nan)
    gain = np.where(d > 0, d, 0.0)
    loss = np.where(d < 0, -d, 0.0)
    gain[0] = loss[0] = np.nan
    ag, al = wilder(gain, n), wilder(loss, n)
    return safe_div(100.0 * ag, ag + al, 50.0)


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bollinger(close: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mid = sma(close, n)
    sd = rolling_std(close, n, ddof=0)
    return mid + k * sd, mid, mid - k * sd


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    pc = np.r_[np.nan, close[:-1]]
    tr = np.maximum(high - low, np.maximum(np.abs(high - pc), np.abs(low - pc)))
    return tr  # NaN at index 0, like TA-Lib (no previous close)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    return wilder(true_range(high, low, close), n)


def stochastic_fast(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14, d: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Fast %K (0..100, 50 for a flat window) and its `d`-bar simple average %D."""
    hh, ll = rolling_max(high, n), rolling_min(low, n)
    k = safe_div(100.0 * (close - ll), hh - ll, 50.0)
    return k, sma(k, d)


def williams_r(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Williams %R in [-100, 0]; -50 for a flat window."""
    hh, ll = rolling_max(high, n), rolling_min(low, n)
    return safe_div(-100.0 * (hh - close), hh - ll, -50.0)


def directional(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(+DI, -DI, ADX), each 0..100 (0 when there was no range at all)."""
    up = np.diff(high, prepend=np.nan)
    down = -np.diff(low, prepend=np.nan)
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    plus_dm[0] = minus_dm[0] = np.nan
    tr = true_range(high, low, close)
    s_tr, s_p, s_m = wilder(tr, n), wilder(plus_dm, n), wilder(minus_dm, n)
    pdi = safe_div(100.0 * s_p, s_tr, 0.0)
    mdi = safe_div(100.0 * s_m, s_tr, 0.0)
    dx = safe_div(100.0 * np.abs(pdi - mdi), pdi + mdi, 0.0)
    return pdi, mdi, wilder(dx, n)


def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 20, chunk: int = 262_144) -> np.ndarray:
    """Commodity channel index: (tp - SMA(tp)) / (0.015 * mean absolute deviation); 0 when flat.
    The mean absolute deviation is computed exactly over each window, in chunks to bound memory."""
    tp = (high + low + close) / 3.0
    m = sma(tp, n)
    mad = _nan(len(tp))
    if len(tp) >= n:
        windows = sliding_window_view(tp, n)  # row j = tp[j : j+n], ends at index j+n-1
        for a in range(0, len(windows), chunk):
            w = windows[a : a + chunk]
            centre = m[a + n - 1 : a + n - 1 + len(w)]
            mad[a + n - 1 : a + n - 1 + len(w)] = np.abs(w - centre[:, None]).mean(axis=1)
    return safe_div(tp - m, 0.015 * mad, 0.0)


def log_return(close: np.ndarray, k: int) -> np.ndarray:
    out = _nan(len(close))
    if len(close) > k:
        out[k:] = np.log(close[k:] / close[:-k])
    return out


def realised_vol(ret1: np.ndarray, n: int) -> np.ndarray:
    """Root mean square of 1-bar log returns over the last n bars (no de-meaning)."""
    return np.sqrt(np.maximum(sma(ret1 * ret1, n), 0.0))
