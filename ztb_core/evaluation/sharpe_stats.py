"""Probabilistic and Deflated Sharpe Ratios (Bailey & López de Prado, 2012 and 2014).

All Sharpe ratios here are **per period** (not annualised) and kurtosis is **raw** (3 for a
normal distribution), as in the papers:

    PSR(SR*) = Φ[(SR − SR*)·√(T−1) / √(1 − γ3·SR + ((γ4−1)/4)·SR²)]
    SR0      = √Var(SR_n)·[(1−γ)·Φ⁻¹(1−1/N) + γ·Φ⁻¹(1−1/(N·e))]      (expected max of N trials)
    DSR      = PSR(SR0)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from .errors import EvaluationError
from .metrics import moments, sharpe_per_period
from .validation import check_returns

EULER_GAMMA = 0.5772156649015329


def _sharpe_sd_factor(sharpe: float, skew: float, kurtosis: float) -> float:
    """1 − γ3·SR + ((γ4−1)/4)·SR², the variance inflation of the Sharpe estimator."""
    v = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not v > 0:
        raise EvaluationError(
            f"Sharpe {sharpe:.4g} per period with skew {skew:.4g} and kurtosis {kurtosis:.4g} gives a non-positive "
            "variance term; check that the Sharpe is per period (not annualised) and kurtosis raw (3 = normal)"
        )
    return v


def sharpe_estimator_variance(sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Sampling variance of an estimated per-period Sharpe ratio under non-normal returns."""
    if n_obs < 2:
        raise EvaluationError(f"n_obs must be at least 2, got {n_obs}")
    return _sharpe_sd_factor(sharpe, skew, kurtosis) / (n_obs - 1)


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """Probability that the true per-period Sharpe exceeds `benchmark` given the observed one."""
    for name, v in (("sharpe", sharpe), ("skew", skew), ("kurtosis", kurtosis), ("benchmark", benchmark)):
        if not math.isfinite(v):
            raise EvaluationError(f"probabilistic_sharpe_ratio: {name} is {v}; a finite number is required")
    if n_obs < 2:
        raise EvaluationError(f"probabilistic_sharpe_ratio: n_obs must be at least 2, got {n_obs}")
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(_sharpe_sd_factor(sharpe, skew, kurtosis))
    return float(norm.cdf(z))


def expected_max_sharpe(n_trials: int, var_trial_sharpe: float) -> float:
    """Expected maximum Sharpe among `n_trials` skill-less trials whose Sharpes have variance
    `var_trial_sharpe` (same units as the result). One trial means no selection: 0."""
    if n_trials < 1:
        raise EvaluationError(f"n_trials must be at least 1, got {n_trials}")
    if not (math.isfinite(var_trial_sharpe) and var_trial_sharpe >= 0):
        raise EvaluationError(f"the variance of trial Sharpes must be a finite number >= 0, got {var_trial_sharpe}")
    if n_trials == 1:
        return 0.0
    z1 = norm.ppf(1.0 - 1.0 / n_trials)
    z2 = norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(var_trial_sharpe) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    sharpe: float, n_obs: int, n_trials: int, var_trial_sharpe: float, skew: float = 0.0, kurtosis: float = 3.0
) -> dict:
    """DSR: PSR against the Sharpe the best of `n_trials` skill-less trials would reach.

    `sharpe` and `var_trial_sharpe` are per period. Returns the DSR and the benchmark SR0."""
    sr0 = expected_max_sharpe(n_trials, var_trial_sharpe)
    return {"dsr": probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, benchmark=sr0), "expected_max_sharpe": sr0}


def sharpe_inference(
    returns: object,
    n_trials: int = 1,
    trial_sharpes: object | None = None,
    var_trial_sharpe: float | None = None,
    benchmark: float = 0.0,
) -> dict:
    """PSR and DSR for a return series.

    The variance of trial Sharpes (per period) comes from, in order: `trial_sharpes` (the
    per-period Sharpes of every trial tried), `var_trial_sharpe`, or — when neither is known —
    the sampling variance of this Sharpe estimate, i.e. what the trials' Sharpes would scatter by
    if all of them were skill-less. The report says which source was used.
    """
    r = check_returns(returns)
    n = r.size
    sr = sharpe_per_period(r)
    skew, kurt = moments(r)
    if trial_sharpes is not None:
        ts = np.asarray(trial_sharpes, dtype=np.float64)
        if ts.ndim != 1 or ts.size < 2 or not np.isfinite(ts).all():
            raise EvaluationError("trial_sharpes: expected at least two finite per-period Sharpe ratios")
        var, source = float(np.var(ts, ddof=1)), "trial_sharpes"
        n_trials = max(n_trials, ts.size)
    elif var_trial_sharpe is not None:
        var, source = float(var_trial_sharpe), "config"
    else:
        var, source = sharpe_estimator_variance(sr, n, skew, kurt), "sampling_variance"
    dsr = deflated_sharpe_ratio(sr, n, n_trials, var, skew, kurt)
    return {
        "sharpe_per_period": sr,
        "n_obs": n,
        "skew": skew,
        "kurtosis": kurt,
        "psr_benchmark_per_period": benchmark,
        "psr": probabilistic_sharpe_ratio(sr, n, skew, kurt, benchmark),
        "n_trials": int(n_trials),
        "trial_sharpe_variance_per_period": var,
        "trial_sharpe_variance_source": source,
        "expected_max_sharpe_per_period": dsr["expected_max_sharpe"],
        "dsr": dsr["dsr"],
    }
