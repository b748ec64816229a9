"""Shared fixtures: small markets and tiny pretraining configs (CPU-fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ztb_core.data.schema import utc_index
from ztb_core.data.source import DataSourceConfig
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.pretrain.config import PretrainConfig


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ZTB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ZTB_KILL", str(tmp_path / "global.stop"))


def tiny_config(tmp_path, **over) -> PretrainConfig:
    """Two timeframes, short windows, a 1-layer 32-wide model: trains at tens of steps per second."""
    data = {
        "seed": 0,
        "data": DataSourceConfig(market="crypto", synthetic=SyntheticConfig(n_bars=30_000, seed=1)).model_dump(),
        "window": {"timeframes": ["M1", "M5"], "seq_len": 32, "seq_len_per_tf": {}},
        "mask": {"val_samples": 256},
        "model": {"d_model": 32, "n_heads": 4, "n_layers": 1, "d_ff": 64, "bottleneck": 8},
        "trainer": {
            "max_steps": 40,
            "batch_size": 32,
            "epoch_steps": 20,
            "val_batches": 2,
            "log_every": 5,
            "accelerator": "cpu",
        },
        "cache_dir": str(tmp_path / "cache"),
    }
    for key, value in over.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return PretrainConfig.model_validate(data)


def sine_market(
    n: int = 40_000, period: float = 11.0, amp: float = 2e-3, noise: float = 5e-5, seed: int = 0
) -> pd.DataFrame:
    """A 24/7 market whose log price is a sine wave plus a little noise: learnable, and linear
    interpolation across a 5-9 bar gap misses most of its swings."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    logc = np.log(100.0) + amp * np.sin(2 * np.pi * t / period) + rng.standard_normal(n) * noise
    close = np.exp(logc)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + 1e-5)
    low = np.minimum(open_, close) * (1 - 1e-5)
    idx = utc_index(pd.date_range("2021-01-01", periods=n, freq="1min", tz="UTC"))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": np.ones(n)}, index=idx)


@pytest.fixture(scope="session")
def fx_market() -> pd.DataFrame:
    """FX calendar (weekend gaps, 17:00 New York day) for alignment tests."""
    return generate_market(SyntheticConfig(n_bars=60_000, seed=3, market="fx", missing_prob=0.02))
