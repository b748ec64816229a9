"""Performance metrics from per-bar equity returns (never per-trade returns, whose units vary
with holding time). Annualisation uses the bars a year of the market's calendar."""

from __future__ import annotations

import math

import numpy as np

from .errors import EvaluationError
from .validation import as_series, check_returns


def drawdown_series(returns: np.ndarray) -> np.ndarray:
    """Drawdown after each bar as a non-positive fraction of the running equity peak (start = 1)."""
    equity = np.cumprod(1.0 + returns)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return equity / peak - 1.0


def max_drawdown_duration(dd: np.ndarray) -> int:
    """Longest stretch of bars spent below a previous peak (until recovery or the end)."""
    under = dd < 0.0
    if not under.any():
        return 0
    # length of each run of consecutive True values
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return int((ends - starts).max())


def sharpe_per_period(returns: np.ndarray) -> float:
    sd = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / sd if sd > 0 else math.nan


def moments(returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness and **raw** kurtosis (3 for a normal distribution), population moments."""
    d = returns - returns.mean()
    m2 = float(np.mean(d**2))
    if m2 == 0.0:
        return 0.0, 3.0
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def performance_metrics(
    returns: object,
    periods_per_year: float,
    positions: object | None = None,
    costs_paid: object | None = None,
    trade_returns: object | None = None,
    allow_constant: bool = False,
) -> dict:
    """Metrics of a per-bar net return series.

    `positions` (one per return, or one more as given to `backtest`) adds turnover, exposure and
    position changes; `costs_paid` (per-bar cost as a fraction of equity) adds fees paid;
    `trade_returns` (P&L per trade, from `BacktestResult.trade_pnl`) adds trade statistics.
    Constant returns raise `EvaluationError` unless `allow_constant`, in which case the ratios
    that divide by volatility are None (JSON null), never NaN.
    """
    r = check_returns(returns, allow_constant=allow_constant)
    if not (isinstance(periods_per_year, (int, float)) and periods_per_year > 0):
        raise EvaluationError(f"periods_per_year must be a positive number, got {periods_per_year!r}")
    n = r.size
    ppy = float(periods_per_year)
    years = n / ppy
    equity_end = float(np.prod(1.0 + r))
    total = equity_end - 1.0
    ann_return = equity_end ** (1.0 / years) - 1.0
    sd = float(np.std(r, ddof=1))
    mean = float(np.mean(r))
    sr = mean / sd if sd > 0 else math.nan
    downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / n)
    dd = drawdown_series(r)
    max_dd = 0.0 - float(dd.min())  # 0.0 - x: never a negative zero
    wins, losses = r[r > 0], r[r < 0]
    nonzero = wins.size + losses.size
    loss_sum = float(-losses.sum())
    skew, kurt = moments(r)
    out: dict = {
        "n_bars": n,
        "years": years,
        "periods_per_year": ppy,
        "total_return": total,
        "annualised_return": ann_return,
        "annualised_volatility": sd * math.sqrt(ppy),
        "sharpe": _none_if_nan(sr * math.sqrt(ppy)),
        "sharpe_per_period": _none_if_nan(sr),
        "sortino": _none_if_nan(mean / downside * math.sqrt(ppy)) if downside > 0 else None,
        "calmar": ann_return / max_dd if max_dd > 0 else None,
        "max_drawdown": max_dd,
        "max_drawdown_duration_bars": max_drawdown_duration(dd),
        "profit_factor": float(wins.sum()) / loss_sum if loss_sum > 0 else None,
        "win_rate": wins.size / nonzero if nonzero else None,
        "expectancy": float(r[r != 0].mean()) if nonzero else 0.0,
        "best_bar": float(r.max()),
        "worst_bar": float(r.min()),
        "skew": skew,
        "kurtosis": kurt,
    }
    if positions is not None:
        pos = as_series(positions, "positions")
        if pos.size == n + 1:
            pos = pos[:n]
        if pos.size != n:
            raise EvaluationError(f"positions has {pos.size} values for {n} returns; expected {n} or {n + 1}")
        prev = np.concatenate(([0.0], pos[:-1]))
        turnover = float(np.abs(pos - prev).sum())
        changes = int(np.count_nonzero(pos != prev))
        out.update(
            {
                "turnover": turnover,
                "turnover_per_year": turnover / years,
                "exposure": float(np.mean(pos != 0.0)),
                "mean_abs_position": float(np.mean(np.abs(pos))),
                "position_changes": changes,
            }
        )
        if trade_returns is None:
            # a trade = a run of one constant non-zero position
            starts = pos != prev
            out["trades"] = int(np.count_nonzero(starts & (pos != 0.0)))
    if costs_paid is not None:
        c = as_series(costs_paid, "costs_paid")
        if c.size != n:
            raise EvaluationError(f"costs_paid has {c.size} values for {n} returns")
        equity_before = np.concatenate(([1.0], np.cumprod(1.0 + r)[:-1]))
        out["fees_paid"] = float(np.sum(c * equity_before))
        out["cost_drag_per_year"] = float(c.sum()) / years
    if trade_returns is not None:
        t = np.asarray(trade_returns, dtype=np.float64)
        if t.size and not np.isfinite(t).all():
            raise EvaluationError("trade_returns: contains NaN or infinite values")
        tw, tl = t[t > 0], t[t < 0]
        tl_sum = float(-tl.sum())
        out.update(
            {
                "trades": int(t.size),
                "trade_win_rate": tw.size / t.size if t.size else None,
                "trade_expectancy": float(t.mean()) if t.size else None,
                "trade_profit_factor": float(tw.sum()) / tl_sum if tl_sum > 0 else None,
                "avg_win": float(tw.mean()) if tw.size else None,
                "avg_loss": float(tl.mean()) if tl.size else None,
            }
        )
    return out
