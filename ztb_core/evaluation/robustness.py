"""Robustness: metrics per calendar month/quarter and their dispersion, and sensitivity of the
result to where the evaluation episode starts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..pnl import bar_returns, position_returns
from ..trading_costs import CostConfig
from .errors import EvaluationError
from .metrics import drawdown_series


def _dispersion(values: Sequence[float | None]) -> dict:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None, "fraction_positive": None}
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "fraction_positive": float(np.mean(v > 0)),
    }


def _segment_stats(r: np.ndarray, ppy: float) -> dict:
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    return {
        "n_bars": int(r.size),
        "total_return": float(np.expm1(np.log1p(r).sum())),
        "sharpe": float(r.mean() / sd * math.sqrt(ppy)) if sd > 0 else None,
        "max_drawdown": 0.0 - float(drawdown_series(r).min()),
    }


def bar_times(index: object, n_bars: int) -> pd.DatetimeIndex:
    """The bars' open times as naive UTC (return k is earned over bar k+1: times[1:])."""
    try:
        idx = pd.DatetimeIndex(index)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"index: expected bar timestamps, got {type(index).__name__} ({exc})") from None
    if len(idx) != n_bars:
        raise EvaluationError(f"index has {len(idx)} timestamps but there are {n_bars} bars")
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if not idx.is_monotonic_increasing:
        raise EvaluationError("index: timestamps must increase (bars in chronological order)")
    return idx


def per_period(returns: np.ndarray, times: pd.DatetimeIndex, freq: str, ppy: float) -> dict:
    """Metrics per calendar period (`freq` "M" month or "Q" quarter) and their dispersion."""
    labels = times.to_period(freq).astype(str)
    codes, uniques = pd.factorize(labels)  # chronological order: bars are sorted
    bounds = np.flatnonzero(np.diff(codes)) + 1
    rows = []
    for label, seg in zip(uniques, np.split(returns, bounds), strict=True):
        rows.append({"period": str(label), **_segment_stats(seg, ppy)})
    return {
        "periods": rows,
        "return_dispersion": _dispersion([r["total_return"] for r in rows]),
        "sharpe_dispersion": _dispersion([r["sharpe"] for r in rows]),
    }


def start_offsets(n_bars: int, episodes: int, max_fraction: float) -> list[int]:
    """Evenly spaced episode starts from 0 to `max_fraction` of the bars."""
    if episodes <= 1:
        return [0]
    last = int(max_fraction * (n_bars - 2))
    return sorted({int(round(x)) for x in np.linspace(0, last, episodes)})


def start_offset_sensitivity(
    episodes: Sequence[tuple[int, np.ndarray]],
    open_: np.ndarray,
    close: np.ndarray,
    costs: CostConfig,
    ppy: float,
    times: pd.DatetimeIndex | None,
) -> dict:
    """Metrics of episodes that start at different bars. Each episode is (offset, positions for
    bars[offset:]); every episode starts flat, like a fresh evaluation run. `times` are the
    bars' open times (`bar_times`)."""
    rows = []
    for offset, pos in episodes:
        pos = np.asarray(pos, dtype=np.float64)
        if offset < 0 or offset + pos.size != open_.size:
            raise EvaluationError(
                f"episode starting at bar {offset} has {pos.size} positions; expected {open_.size - offset}"
            )
        if pos.size < 3:
            continue
        r, _ = position_returns(pos, bar_returns(open_[offset:], close[offset:]), costs.rate)
        row = {"offset": int(offset), "start": None if times is None else times[offset].isoformat()}
        row.update(_segment_stats(r, ppy))
        rows.append(row)
    return {
        "episodes": rows,
        "sharpe_dispersion": _dispersion([r["sharpe"] for r in rows]),
        "return_dispersion": _dispersion([r["total_return"] for r in rows]),
    }
