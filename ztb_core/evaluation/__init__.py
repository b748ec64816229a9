"""Honest evaluation: performance metrics, PSR/DSR, block bootstrap, Monte Carlo risk,
baselines, cost sensitivity, robustness, and reports with pictures.

Every backtest here uses the shared P&L convention of `ztb_core.pnl` (decide after the close of
bar t, fill at the open of bar t+1), so numbers agree with the training env and the paper broker.
"""

from __future__ import annotations

from .backtest import BacktestResult, backtest
from .baselines import buy_and_hold, flat, random_policy, sma_crossover
from .bootstrap import BootstrapCI, bootstrap_ci, bootstrap_statistics, estimate_block_length
from .calendar import bars_for_days, bars_per_day, periods_per_year
from .config import EvalConfig
from .costs import cost_sensitivity
from .errors import EvaluationError
from .metrics import drawdown_series, performance_metrics
from .montecarlo import monte_carlo_risk
from .report import SCHEMA_VERSION, evaluate_positions, quick_evaluation
from .sharpe_stats import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_estimator_variance,
    sharpe_inference,
)
from .writer import load_schema, validate_report, write_report

__all__ = [
    "BacktestResult",
    "BootstrapCI",
    "EvalConfig",
    "EvaluationError",
    "SCHEMA_VERSION",
    "backtest",
    "bars_for_days",
    "bars_per_day",
    "bootstrap_ci",
    "bootstrap_statistics",
    "buy_and_hold",
    "cost_sensitivity",
    "deflated_sharpe_ratio",
    "drawdown_series",
    "estimate_block_length",
    "evaluate_positions",
    "expected_max_sharpe",
    "flat",
    "load_schema",
    "monte_carlo_risk",
    "performance_metrics",
    "periods_per_year",
    "probabilistic_sharpe_ratio",
    "quick_evaluation",
    "random_policy",
    "sharpe_estimator_variance",
    "sharpe_inference",
    "sma_crossover",
    "validate_report",
    "write_report",
]
