"""Policies: online features over the live rolling buffer equal the offline features on the same
bars, and a trained checkpoint decides live exactly as it does over the offline feature matrix."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.data.features import compute_feature_set
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.errors import ConfigError
from ztb_core.live.loop.live_config import PolicyConfig
from ztb_core.live.loop.policy import AgentPolicy, NotReady, OnlineFeatures, SmaPolicy, make_policy

BUFFER = 6000


@pytest.fixture(scope="module")
def bars():
    return generate_market(SyntheticConfig(seed=11, n_bars=6600, market="crypto"))


@pytest.mark.parametrize("feature_set", ["technical-66", "stage1-ohlc"])
def test_online_features_equal_offline(bars, feature_set):
    offline = compute_feature_set(feature_set, bars, "crypto")
    online = OnlineFeatures(feature_set, "crypto", lookback=8)
    for t in range(len(bars) - 12, len(bars)):
        buffer = bars.iloc[max(0, t + 1 - BUFFER) : t + 1]  # what the runner holds after bar t closed
        window = online.window(buffer)
        np.testing.assert_allclose(window, offline.values[t - 7 : t + 1], rtol=0, atol=1e-6)
        assert offline.valid[t - 7 : t + 1].all()


def test_online_features_refuse_during_warmup(bars):
    with pytest.raises(NotReady, match="valid rows"):
        OnlineFeatures("technical-66", "crypto", lookback=8).window(bars.iloc[:500])


def test_sma_policy_and_factory():
    import pandas as pd

    idx = pd.date_range("2024-01-01", periods=30, freq="min", tz="UTC")
    up = pd.DataFrame({"close": np.linspace(100, 130, 30)}, index=idx)
    down = pd.DataFrame({"close": np.linspace(130, 100, 30)}, index=idx)
    p = SmaPolicy(3, 10)
    assert p.decide(up, 0.0) == 1.0 and p.decide(down, 1.0) == 0.0
    assert SmaPolicy(3, 10, allow_short=True).decide(down, 0.0) == -1.0
    with pytest.raises(NotReady):
        p.decide(up.iloc[:5], 0.0)
    with pytest.raises(ConfigError, match="checkpoint"):
        make_policy(PolicyConfig(kind="agent"))


def test_agent_decides_live_as_offline(tiny_agent):
    """Any trained agent shows it: the shared tiny one (trained once per test run) is read here."""
    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig

    from ..conftest import TINY_AGENT

    cfg = load_config(TrainConfig, None, list(TINY_AGENT))
    policy = AgentPolicy(tiny_agent, buffer_bars=BUFFER)
    from ztb_core.data.source import load_bars

    bars = load_bars(cfg.data)
    fm = compute_feature_set(cfg.features, bars, cfg.data.market)
    first = fm.first_valid
    offline = policy.agent.positions(fm.values[first:])  # the agent over the offline matrix
    held = float(offline[len(offline) - 21])
    for t in range(len(bars) - 20, len(bars)):
        held = policy.decide(bars.iloc[max(0, t + 1 - BUFFER) : t + 1], held)
        assert held == offline[t - first], f"bar {t}: live {held} != offline {offline[t - first]}"
