"""Monte Carlo risk over a horizon: block-bootstrapped return paths -> VaR, CVaR and the
probability that the drawdown within the horizon exceeds given thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bootstrap import _check_method, block_indices, estimate_block_length
from .errors import EvaluationError
from .validation import check_returns

_CHUNK_ELEMENTS = 2_000_000


def monte_carlo_risk(
    returns: object,
    horizon_bars: int,
    n_paths: int = 2000,
    block_length: float | None = None,
    method: str = "stationary",
    levels: Sequence[float] = (0.95, 0.99),
    drawdown_thresholds: Sequence[float] = (0.05, 0.10, 0.20),
    seed: int | None = None,
) -> dict:
    """Risk of the next `horizon_bars` bars, from `n_paths` block-bootstrapped paths.

    VaR and CVaR are losses (positive numbers) of the horizon's compounded return at each
    confidence level: VaR_a = −quantile(return, 1−a), CVaR_a = −mean(returns at or below it).
    """
    r = check_returns(returns)
    _check_method(method)
    if horizon_bars < 1:
        raise EvaluationError(f"monte carlo: horizon_bars must be at least 1, got {horizon_bars}")
    if n_paths < 100:
        raise EvaluationError(f"monte carlo: n_paths must be at least 100 for tail estimates, got {n_paths}")
    for a in levels:
        if not 0.5 < a < 1.0:
            raise EvaluationError(f"monte carlo: confidence level {a} must be between 0.5 and 1")
    for t in drawdown_thresholds:
        if not 0.0 < t < 1.0:
            raise EvaluationError(f"monte carlo: drawdown threshold {t} must be a fraction between 0 and 1")
    if block_length is None:
        block_length = estimate_block_length(r, method)
    rng = np.random.default_rng(seed)
    logr = np.log1p(r)
    chunk = max(1, _CHUNK_ELEMENTS // horizon_bars)
    horizon_ret, max_dd = [], []
    done = 0
    while done < n_paths:
        m = min(chunk, n_paths - done)
        idx = block_indices(r.size, horizon_bars, m, block_length, method, rng)
        cum = np.cumsum(logr[idx], axis=1)
        peak = np.maximum(np.maximum.accumulate(cum, axis=1), 0.0)
        horizon_ret.append(np.expm1(cum[:, -1]))
        max_dd.append(-np.expm1((cum - peak).min(axis=1)))
        done += m
    hr = np.concatenate(horizon_ret)
    dd = np.concatenate(max_dd)
    var, cvar = {}, {}
    for a in levels:
        q = float(np.quantile(hr, 1.0 - a))
        var[f"{a:g}"] = -q
        cvar[f"{a:g}"] = -float(hr[hr <= q].mean())
    return {
        "horizon_bars": int(horizon_bars),
        "n_paths": int(n_paths),
        "block_length": float(block_length),
        "method": method,
        "expected_return": float(hr.mean()),
        "var": var,
        "cvar": cvar,
        "drawdown_probability": [
            {"threshold": float(t), "probability": float(np.mean(dd > t))} for t in drawdown_thresholds
        ],
        "median_max_drawdown": float(np.median(dd)),
    }
