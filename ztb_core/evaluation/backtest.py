"""Vectorised backtest of a target-position series on the shared P&L convention
(`ztb_core.pnl`): decide after close t, fill at open t+1, pay `|Δposition| * cost_rate`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pnl import bar_returns, position_returns
from ..trading_costs import CostConfig
from .validation import check_positions, check_prices


@dataclass(frozen=True)
class BacktestResult:
    """Outcome of a backtest over T bars (all per-bar arrays have T-1 entries).

    `returns[k]` is the equity return over bar k+1, earned by the position decided after bar k.
    """

    positions: np.ndarray  # (T,) target decided after each bar's close
    returns: np.ndarray  # (T-1,) net simple returns of equity
    gross_returns: np.ndarray  # (T-1,) returns before costs
    costs: np.ndarray  # (T-1,) cost paid each bar, as a fraction of equity
    turnover: np.ndarray  # (T-1,) |Δposition| filled at the open of bar k+1
    equity: np.ndarray  # (T,) equity, starting at 1.0
    trade_pnl: np.ndarray  # (n_trades,) P&L of each position run, as a fraction of equity (additive)
    trade_entry: np.ndarray  # (n_trades,) bar index where each trade was filled
    trade_exit: np.ndarray  # (n_trades,) bar index where it was closed (T-1 when still open at the end)
    cost_rate: float

    @property
    def fees_paid(self) -> float:
        """Total costs paid, in units of the initial equity."""
        return float(np.sum(self.costs * self.equity[:-1]))

    @property
    def n_trades(self) -> int:
        return int(self.trade_pnl.size)

    @property
    def total_turnover(self) -> float:
        return float(self.turnover.sum())

    @property
    def exposure(self) -> float:
        """Fraction of bars in which a non-zero position was held."""
        return float(np.mean(self.positions[:-1] != 0.0))


def _trades(pos: np.ndarray, gap_pnl: np.ndarray, intra_pnl: np.ndarray, turnover: np.ndarray, rate: float):
    """Split the P&L into trades: a trade is a maximal run of one constant non-zero position.

    Additive attribution (no information is lost: the trades' P&L plus nothing else sums to the
    net P&L): the gap over bar k+1 belongs to the position held before the fill, the intrabar move
    to the position filled at the open, and a fill's cost is shared between the position it
    closes and the one it opens in proportion to their sizes.
    """
    n = gap_pnl.size
    p = pos[:n]
    prev = np.concatenate(([0.0], p[:-1]))
    run = np.concatenate(([0], np.cumsum(p[1:] != p[:-1])))  # run id of pos[k]
    prev_run = np.concatenate(([-1], run[:-1]))
    n_runs = int(run[-1]) + 1
    pnl = np.bincount(run, weights=intra_pnl, minlength=n_runs)
    has_prev = prev_run >= 0
    pnl += np.bincount(prev_run[has_prev], weights=gap_pnl[has_prev], minlength=n_runs)
    size = np.abs(p) + np.abs(prev)
    share_new = np.divide(np.abs(p), size, out=np.zeros_like(size), where=size > 0)
    cost = turnover * rate
    pnl -= np.bincount(run, weights=cost * share_new, minlength=n_runs)
    pnl -= np.bincount(prev_run[has_prev], weights=(cost * (1.0 - share_new))[has_prev], minlength=n_runs)
    # The last decided position pos[n] is never filled inside the window; its run can only
    # add a closing cost that position_returns does not charge, so runs stop at pos[n-1].
    starts = np.searchsorted(run, np.arange(n_runs))
    ends = np.append(starts[1:], n)  # exclusive, in decision index k
    keep = p[starts] != 0.0
    # decision k fills at the open of bar k+1; a run still open at the end "exits" at the last bar
    return pnl[keep], starts[keep] + 1, np.minimum(ends[keep] + 1, n)


def backtest(positions: object, open: object, close: object, costs: CostConfig) -> BacktestResult:  # noqa: A002
    """Backtest `positions` (one target per bar, decided after that bar's close) on the bars."""
    o, c = check_prices(open, close)
    pos = check_positions(positions, o.size)
    rets = bar_returns(o, c)
    rate = costs.rate
    net, cost = position_returns(pos, rets, rate)
    n = net.size
    prev = np.concatenate(([0.0], pos[: n - 1]))
    gap_pnl = prev * rets.gap[1 : n + 1]
    intra_pnl = pos[:n] * rets.intra[1 : n + 1]
    gross = gap_pnl + intra_pnl
    turnover = np.abs(pos[:n] - prev)
    equity = np.concatenate(([1.0], np.cumprod(1.0 + net)))
    pnl, entry, exit_ = _trades(pos, gap_pnl, intra_pnl, turnover, rate)
    return BacktestResult(
        positions=pos,
        returns=net,
        gross_returns=gross,
        costs=cost,
        turnover=turnover,
        equity=equity,
        trade_pnl=pnl,
        trade_entry=entry,
        trade_exit=exit_,
        cost_rate=rate,
    )
