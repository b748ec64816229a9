"""Input checks shared by every evaluation entry point: a bad series fails loudly with a
message naming what was wrong and where, instead of producing a report full of NaN."""

from __future__ import annotations

import numpy as np

from .errors import EvaluationError


def as_series(values: object, name: str, min_len: int = 1) -> np.ndarray:
    """A finite 1-D float64 array of at least `min_len` values."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(f"{name}: expected a sequence of numbers, got {type(values).__name__}") from None
    if arr.ndim != 1:
        raise EvaluationError(f"{name}: expected a 1-D series, got shape {arr.shape}")
    if arr.size < min_len:
        what = "is empty" if arr.size == 0 else f"has {arr.size} value(s)"
        raise EvaluationError(f"{name} {what}; at least {min_len} needed")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise EvaluationError(
            f"{name}: {int(bad.sum())} value(s) are NaN or infinite (first at row {first}: {arr[first]})"
        )
    return arr


def check_prices(open_: object, close: object) -> tuple[np.ndarray, np.ndarray]:
    o = as_series(open_, "open", min_len=2)
    c = as_series(close, "close", min_len=2)
    if o.shape != c.shape:
        raise EvaluationError(f"open has {o.size} bars but close has {c.size}; they must describe the same bars")
    for name, arr in (("open", o), ("close", c)):
        nonpos = arr <= 0
        if nonpos.any():
            first = int(np.flatnonzero(nonpos)[0])
            raise EvaluationError(f"{name}: prices must be positive (row {first}: {arr[first]})")
    return o, c


def check_positions(positions: object, n_bars: int) -> np.ndarray:
    pos = as_series(positions, "positions", min_len=2)
    if pos.size != n_bars:
        raise EvaluationError(
            f"positions has {pos.size} values but there are {n_bars} bars; one target position per bar is expected"
        )
    return pos


def check_returns(returns: object, name: str = "returns", allow_constant: bool = False) -> np.ndarray:
    r = as_series(returns, name, min_len=2)
    if (r <= -1.0).any():
        first = int(np.flatnonzero(r <= -1.0)[0])
        raise EvaluationError(
            f"{name}: a return of {r[first]} at row {first} wipes out the equity (returns must be > -1)"
        )
    if not allow_constant and np.ptp(r) == 0.0:
        raise EvaluationError(
            f"{name}: all {r.size} returns equal {float(r[0])}; volatility is zero so Sharpe, Sortino, PSR and "
            "bootstrap intervals are undefined (a policy that never holds a position produces this)"
        )
    return r
