"""Cost sensitivity: the agent's own trades re-priced over a grid of fees and slippage, and the
break-even cost. Costs are linear in turnover (`ztb_core.pnl`), so re-pricing needs no re-run:
net(rate) = gross − |Δposition| · rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..trading_costs import CostConfig, cost_rate
from .backtest import BacktestResult


def _stats(r: np.ndarray, ppy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Annualised Sharpe (0 where flat), total and annualised return per row of (m, n)."""
    n = r.shape[1]
    mean = r.mean(axis=1)
    sd = r.std(axis=1, ddof=1)
    sharpe = np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0) * math.sqrt(ppy)
    # a cost that wipes out equity in one bar ends the account: clip the log at -inf safely
    logsum = np.log(np.maximum(1.0 + r, 1e-300)).sum(axis=1)
    total = np.expm1(logsum)
    annual = np.expm1(logsum * ppy / n)
    return sharpe, total, annual


def cost_sensitivity(
    bt: BacktestResult,
    costs: CostConfig,
    periods_per_year: float,
    fee_bps_grid: Sequence[float],
    slippage_bps_grid: Sequence[float],
    curve_points: int = 25,
) -> dict:
    """Re-price the backtest's trades; the break-even is the per-side cost (bps) at which the
    mean net return per bar (hence the Sharpe) reaches zero: Σ gross / Σ |Δposition|."""
    gross, turn = bt.gross_returns, bt.turnover
    total_turn = float(turn.sum())
    actual_bps = costs.rate * 1e4
    if total_turn > 0:
        break_even = float(gross.sum() / total_turn) * 1e4
    else:
        break_even = None  # no trades: costs cannot matter
    grid = [(f, costs.spread_bps, s) for f in fee_bps_grid for s in slippage_bps_grid]
    rates = np.array([cost_rate(f, sp, s) for f, sp, s in grid])
    sharpe, total, annual = _stats(gross[None, :] - turn[None, :] * rates[:, None], periods_per_year)
    rows = [
        {
            "fee_bps": f,
            "spread_bps": sp,
            "slippage_bps": s,
            "cost_bps": float(rate * 1e4),
            "sharpe": float(sh),
            "total_return": float(tr),
            "annualised_return": float(ar),
        }
        for (f, sp, s), rate, sh, tr, ar in zip(grid, rates, sharpe, total, annual, strict=True)
    ]
    top = max([actual_bps * 2.0, float(rates.max()) * 1e4, (break_even or 0.0) * 1.5, 1.0])
    curve_bps = np.linspace(0.0, top, curve_points)
    c_sharpe, c_total, _ = _stats(gross[None, :] - turn[None, :] * (curve_bps[:, None] / 1e4), periods_per_year)
    return {
        "actual_cost_bps": actual_bps,
        "break_even_cost_bps": None if break_even is None else max(break_even, 0.0),
        "profitable_before_costs": bool(gross.sum() > 0),
        "turnover": total_turn,
        "grid": rows,
        "curve": [
            {"cost_bps": float(c), "sharpe": float(s), "total_return": float(t)}
            for c, s, t in zip(curve_bps, c_sharpe, c_total, strict=True)
        ],
    }
