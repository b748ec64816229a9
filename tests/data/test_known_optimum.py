"""Known-optimum markets: the bars carry the whole state (a policy that sees only bars can reach
the optimum), the same seed gives the same bars, and `ztb train` configs select them."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.config import load_config
from ztb_core.data.known_optimum import KNOWN_KINDS, market_spec, observed_state, simulate
from ztb_core.data.source import load_bars
from ztb_core.data.synthetic import SyntheticConfig, generate_market, signal_ceiling
from ztb_core.errors import DataError
from ztb_core.rl.config import TrainConfig


@pytest.mark.parametrize("kind", KNOWN_KINDS)
def test_the_state_is_recovered_from_the_bars_alone(kind):
    cfg = SyntheticConfig(kind=kind, n_bars=20_000, seed=3)
    bars = generate_market(cfg)
    spec = market_spec(kind)
    truth = simulate(spec, len(bars), cfg.seed)
    seen = observed_state(spec, bars["open"].to_numpy(), bars["high"].to_numpy(), bars["close"].to_numpy())
    np.testing.assert_allclose(seen.ret, truth.ret, rtol=0, atol=1e-12)
    assert (seen.regime == truth.regime).all()
    # the averages start at zero from the first bar: after a few slow half-lives they are the model's
    warm = 3000
    scale = truth.state[warm:].std(axis=0)
    assert np.abs(seen.state[warm:] - truth.state[warm:]).max(axis=0).max() < 1e-3 * scale.min()


def test_regimes_show_in_the_wicks_and_switch():
    spec = market_spec("known_regime")
    path = simulate(spec, 100_000, 0)
    share = path.regime.mean()
    # stationary share of the volatile regime: p_cv / (p_cv + p_vc) = 1/4
    assert 0.1 < share < 0.45, share
    assert 20 < np.count_nonzero(np.diff(path.regime)) < 400


def test_same_seed_same_bars_and_seeds_differ():
    a = generate_market(SyntheticConfig(kind="known_ar1", n_bars=5000, seed=1))
    b = generate_market(SyntheticConfig(kind="known_ar1", n_bars=5000, seed=1))
    c = generate_market(SyntheticConfig(kind="known_ar1", n_bars=5000, seed=2))
    assert a.equals(b)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_a_train_config_selects_the_market_and_bars_follow_the_fx_calendar():
    cfg = load_config(TrainConfig, None, ["data.synthetic.kind=known_two_speed", "data.synthetic.n_bars=9000"])
    bars = load_bars(cfg.data)
    assert len(bars) == 9000
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    # each bar opens at the previous close: no weekend gap return
    np.testing.assert_allclose(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1], rtol=1e-15)
    gaps = np.diff(bars.index.asi8) // 60_000_000_000
    assert gaps.max() > 24 * 60  # a weekend was skipped (FX calendar)


def test_unknown_kind_and_default_model_helpers_are_refused():
    with pytest.raises(Exception, match="kind"):
        load_config(TrainConfig, None, ["data.synthetic.kind=known_nothing"])
    with pytest.raises(DataError, match="known_ar1"):
        signal_ceiling(SyntheticConfig(kind="known_ar1", n_bars=1000), 2e-4)
