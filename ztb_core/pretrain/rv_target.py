"""The target of the auxiliary realised-variance head (`loss.rv_aux`).

The encoder sees RevIN-normalised windows, so the absolute level of volatility is invisible to it;
what it can see is the window's shape. The head therefore forecasts the log realised variance of
the next h M1 returns *relative to the M1 window's own* (log mean squared return ahead minus log
mean squared return inside the window): whether the next hours will be calmer or wilder than the
window, which is what the shape can tell. A probe or a sizing rule adds the level back (HAR's
trailing variance is exactly that level).

A return across more than an hour between bars (a weekend, a holiday) counts as 0, as in the
volatility probe (`vol_probe.py`), so a Sunday gap is not read as a burst of volatility.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.schema import NS_PER_MINUTE
from .bars import TimeframeBars

GAP_NS = 60 * NS_PER_MINUTE
#: mean squared returns below this (a window of flat prices) are floored before the log
FLOOR = 1e-12
#: targets are clipped to +-CLIP: one frozen minute must not dominate a batch's squared error
CLIP = 5.0


@dataclass
class RelativeVolTarget:
    horizons: tuple[int, ...]
    window: int  # M1 bars in the encoder's M1 window
    csum: np.ndarray  # float64 (N + 1,): csum[k] = sum of squared M1 log returns of rows < k

    @classmethod
    def from_bars(cls, m1: TimeframeBars, horizons: tuple[int, ...], window: int) -> RelativeVolTarget:
        if m1.tf != "M1":
            raise ValueError(f"the realised-variance target needs M1 bars, got {m1.tf}")
        close = m1.logp[:, 3]
        r = np.diff(close, prepend=close[:1]) if len(close) else close.copy()
        if len(r):
            gap = np.diff(m1.open_ns, prepend=m1.open_ns[:1])
            r[gap > GAP_NS] = 0.0
        csum = np.concatenate([[0.0], np.cumsum(r * r)])
        return cls(tuple(int(h) for h in horizons), int(window), csum)

    def targets(self, end_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H) float32 targets and (B, H) bool: True where all h returns after the window exist."""
        n = len(self.csum) - 1
        e = np.asarray(end_rows, dtype=np.int64)
        inside = (self.csum[e + 1] - self.csum[e - self.window + 2]) / (self.window - 1)
        out = np.zeros((len(e), len(self.horizons)), np.float32)
        ok = np.zeros(out.shape, bool)
        for j, h in enumerate(self.horizons):
            ok[:, j] = e + h <= n - 1
            stop = np.minimum(e + h + 1, n)
            ahead = (self.csum[stop] - self.csum[e + 1]) / h
            t = np.log(np.maximum(ahead, FLOOR)) - np.log(np.maximum(inside, FLOOR))
            out[:, j] = np.where(ok[:, j], np.clip(t, -CLIP, CLIP), 0.0)
        return out, ok
