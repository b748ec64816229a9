"""Synthetic price series for evaluation tests (built here, deterministic per seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ztb_core.evaluation import EvalConfig


def make_bars(n: int = 4000, seed: int = 0, vol: float = 0.001, drift: float = 0.0, freq: str = "5min"):
    """(open, close, index): a log-normal random walk with small open gaps."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    open_ = prev * np.exp(rng.normal(0.0, vol / 10, n))
    index = pd.date_range("2021-01-04", periods=n, freq=freq, tz="UTC")
    return open_, close, index


@pytest.fixture
def bars():
    return make_bars()


@pytest.fixture
def fast_config() -> EvalConfig:
    """Small resample/path counts: the statistics are exercised, the suite stays fast."""
    return EvalConfig.model_validate(
        {
            "bootstrap": {"n_resamples": 200},
            "monte_carlo": {"n_paths": 300, "horizon_days": 1},
            "baselines": {"random_seeds": 10, "sma_fast": 10, "sma_slow": 40},
            "robustness": {"episodes": 3},
            "report": {"curve_points": 200, "histogram_bins": 20},
        }
    )
