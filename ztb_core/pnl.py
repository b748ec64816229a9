"""The one definition of fills, costs and P&L shared by the training environment, the
evaluation backtest and the paper broker, so their numbers agree.

Timing convention (no look-ahead): the agent decides a target position `p_t` after bar t has
closed; it fills at the *open* of bar t+1. Over bar t+1 the previous position `p_{t-1}` earns the
gap `open_{t+1} / close_t - 1` and the new position earns `close_{t+1} / open_{t+1} - 1`. Changing
position costs `|p_t - p_{t-1}| * cost_rate`, with

    cost_rate = (fee_bps + spread_bps / 2 + slippage_bps) / 10_000

(half the quoted spread is paid on each side of a round trip). Positions are fractions of equity
(-1 short, 0 flat, +1 long; larger magnitudes are leverage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BarReturns:
    """Per-bar price relatives used by the P&L formula; index i describes bar i."""

    gap: np.ndarray  # open_i / close_{i-1} - 1 (gap[0] = 0)
    intra: np.ndarray  # close_i / open_i - 1


def bar_returns(open_: np.ndarray, close: np.ndarray) -> BarReturns:
    open_ = np.asarray(open_, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    gap = np.zeros_like(close)
    gap[1:] = open_[1:] / close[:-1] - 1.0
    intra = close / open_ - 1.0
    return BarReturns(gap=gap, intra=intra)


def step_return(
    prev_pos: float, new_pos: float, gap_next: float, intra_next: float, rate: float
) -> tuple[float, float]:
    """Simple return of equity over the next bar and the cost paid (as a fraction of equity)."""
    cost = abs(new_pos - prev_pos) * rate
    return prev_pos * gap_next + new_pos * intra_next - cost, cost


def position_returns(
    positions: np.ndarray, rets: BarReturns, rate: float, initial_position: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised P&L of a position series.

    `positions[t]` is the target decided after bar t closed. Returns `(r, cost)` of length
    len(positions) - 1 where r[t] is the equity return over bar t+1.
    """
    pos = np.asarray(positions, dtype=np.float64)
    prev = np.empty_like(pos)
    prev[0] = initial_position
    prev[1:] = pos[:-1]
    cost = np.abs(pos - prev) * rate
    n = len(pos) - 1
    # Over bar t+1: previous position (decided at t-1) earns the gap, new position earns intra.
    r = prev[:n] * rets.gap[1 : n + 1] + pos[:n] * rets.intra[1 : n + 1] - cost[:n]
    return r, cost[:n]
