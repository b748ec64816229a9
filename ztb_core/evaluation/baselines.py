"""Baseline policies evaluated on the same bars and costs as the agent. Each returns target
positions decided after each bar's close (the `backtest` convention), so no baseline sees the
future either."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import EvaluationError
from .validation import as_series


def _n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise EvaluationError(f"a baseline needs at least 2 bars, got {n!r}")
    return int(n)


def buy_and_hold(n: int) -> np.ndarray:
    """Long one unit of equity from the first decision to the end."""
    return np.ones(_n(n))


def flat(n: int) -> np.ndarray:
    """Never in the market: the zero-return, zero-risk benchmark."""
    return np.zeros(_n(n))


def sma_crossover(close: object, fast: int, slow: int, allow_short: bool = True) -> np.ndarray:
    """Long while SMA(fast) > SMA(slow) of closes up to and including bar t; short (or flat with
    `allow_short=False`) while below; flat until the slow average has `slow` closes."""
    c = as_series(close, "close", min_len=2)
    if not (isinstance(fast, (int, np.integer)) and isinstance(slow, (int, np.integer)) and 1 <= fast < slow):
        raise EvaluationError(
            f"sma_crossover: need integer windows with 1 <= fast < slow, got fast={fast}, slow={slow}"
        )
    csum = np.concatenate(([0.0], np.cumsum(c)))
    pos = np.zeros(c.size)
    if slow > c.size:
        return pos
    t = np.arange(slow - 1, c.size)
    sma_fast = (csum[t + 1] - csum[t + 1 - fast]) / fast
    sma_slow = (csum[t + 1] - csum[t + 1 - slow]) / slow
    short = -1.0 if allow_short else 0.0
    pos[t] = np.where(sma_fast > sma_slow, 1.0, np.where(sma_fast < sma_slow, short, 0.0))
    return pos


def random_policy(
    n: int, seeds: Sequence[int], switch_prob: float = 0.01, levels: Sequence[float] = (-1.0, 0.0, 1.0)
) -> np.ndarray:
    """(len(seeds), n) random position paths: at each bar, with probability `switch_prob`, a new
    position is drawn uniformly from `levels`; start flat. Matching `switch_prob` to the agent's
    rate of position changes gives a baseline with similar turnover and costs."""
    n = _n(n)
    if not 0.0 < switch_prob <= 1.0:
        raise EvaluationError(f"random_policy: switch_prob must be in (0, 1], got {switch_prob}")
    seeds = list(seeds)
    if not seeds:
        raise EvaluationError("random_policy: at least one seed is needed")
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size == 0 or not np.isfinite(lv).all():
        raise EvaluationError(f"random_policy: levels must be finite numbers, got {list(levels)}")
    out = np.empty((len(seeds), n))
    j = np.arange(n)
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        switch = rng.random(n) < switch_prob
        draw = lv[rng.integers(0, lv.size, n)]
        last = np.maximum.accumulate(np.where(switch, j, -1))
        out[i] = np.where(last >= 0, draw[np.maximum(last, 0)], 0.0)
    return out
