"""The trading environment: API conformance, the shared P&L convention, no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ztb_core.errors import DataError
from ztb_core.pnl import bar_returns, position_returns
from ztb_core.rl.config import EnvConfig
from ztb_core.rl.env import TradingEnv
from ztb_core.trading_costs import CostConfig


def _market(n: int = 400, f: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n, f)).astype(np.float32)
    close = 100 * np.exp(np.cumsum(rng.standard_normal(n) * 1e-3))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.standard_normal(n) * 2e-4)  # gaps between bars
    return feats, open_, close


@pytest.mark.parametrize("actions", ["discrete", "target", "change"])
def test_env_passes_gymnasium_and_sb3_checks(actions):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    feats, o, c = _market()
    cfg = EnvConfig(lookback=8, actions=actions)
    check_env(TradingEnv(feats, o, c, cfg), skip_render_check=True)
    sb3_check_env(TradingEnv(feats, o, c, cfg), warn=False)


def test_hand_computed_pnl_and_costs():
    # 4 bars; decide after bar 0 to go long, after bar 1 to flip short, after bar 2 to go flat
    open_ = np.array([100.0, 101.0, 103.0, 102.0])
    close = np.array([100.5, 102.0, 102.5, 101.0])
    feats = np.zeros((4, 1), dtype=np.float32)
    costs = CostConfig(fee_bps=10, spread_bps=20, slippage_bps=5)  # rate = (10 + 10 + 5) / 1e4 = 0.0025
    cfg = EnvConfig(lookback=1, costs=costs, positions=[0.0, 1.0, -1.0], reward={"turnover_penalty": 0.0})
    env = TradingEnv(feats, open_, close, cfg)
    env.reset(options={"start": 0})
    # step 1: flat -> long, fills at open[1]=101: earns close[1]/open[1]-1, pays 1 * 0.0025
    r1 = (102.0 / 101.0 - 1) - 0.0025
    _, rew, *_, info = env.step(1)
    assert rew == pytest.approx(math.log(1 + r1), rel=1e-12)
    assert info["cost"] == pytest.approx(0.0025)
    # step 2: long -> short: the long earns the gap open[2]/close[1]-1, the short earns -(close[2]/open[2]-1),
    # the flip changes position by 2 units: cost 0.005
    r2 = (103.0 / 102.0 - 1) - (102.5 / 103.0 - 1) - 0.005
    _, rew, *_ = env.step(2)
    assert rew == pytest.approx(math.log(1 + r2), rel=1e-12)
    # step 3: short -> flat: the short earns -(gap), flat earns nothing intrabar, cost 0.0025
    r3 = -(102.0 / 102.5 - 1) - 0.0025
    _, rew, term, trunc, info = env.step(0)
    assert rew == pytest.approx(math.log(1 + r3), rel=1e-12)
    assert info["equity"] == pytest.approx((1 + r1) * (1 + r2) * (1 + r3), rel=1e-12)
    assert trunc and not term  # the last bar: nothing left to fill on


def test_turnover_penalty_shapes_the_reward_only_and_totals_are_reported():
    open_ = np.array([100.0, 101.0, 103.0, 102.0])
    close = np.array([100.5, 102.0, 102.5, 101.0])
    feats = np.zeros((4, 1), dtype=np.float32)
    costs = CostConfig(fee_bps=10, spread_bps=20, slippage_bps=5)  # rate 0.0025
    plain, shaped = (
        TradingEnv(feats, open_, close, EnvConfig(lookback=1, costs=costs, reward={"turnover_penalty": k}))
        for k in (0.0, 2.0)
    )
    for env in (plain, shaped):
        env.reset(options={"start": 0})
    for action, moved in ((1, 1.0), (2, 2.0)):  # flat -> long, long -> short
        _, r0, *_, i0 = plain.step(action)
        _, r1, *_, i1 = shaped.step(action)
        assert r1 == pytest.approx(r0 - 2.0 * moved * 0.0025, rel=1e-12)  # control: without the penalty, equal
        assert i1["equity"] == i0["equity"]  # the P&L itself is not shaped
    assert i1["turnover"] == 3.0 and i1["costs"] == pytest.approx(0.0075)
    assert i1["penalty"] == pytest.approx(0.015) and i0["penalty"] == 0.0
    # a negative penalty lets the reward see part of the cost: -0.75 leaves a quarter of it
    quarter = TradingEnv(feats, open_, close, EnvConfig(lookback=1, costs=costs, reward={"turnover_penalty": -0.75}))
    plain.reset(options={"start": 0})
    quarter.reset(options={"start": 0})
    _, r0, *_, i0 = plain.step(1)
    _, rq, *_, iq = quarter.step(1)
    assert rq == pytest.approx(r0 + 0.75 * 0.0025, rel=1e-12) and iq["equity"] == i0["equity"]
    with pytest.raises(ValueError, match="turnover_penalty"):
        EnvConfig(reward={"turnover_penalty": -1.5})  # below -1 would pay the agent to trade
    shaped.reset(options={"start": 0})
    *_, info = shaped.step(0)
    assert info["turnover"] == 0.0 and info["costs"] == 0.0  # totals are per episode


def test_env_equity_matches_vectorised_pnl_for_the_same_actions():
    feats, o, c = _market(600, seed=3)
    cfg = EnvConfig(lookback=10, costs=CostConfig(fee_bps=2, spread_bps=1, slippage_bps=1), episode_length=10_000)
    env = TradingEnv(feats, o, c, cfg)
    start = 50
    env.reset(options={"start": start})
    rng = np.random.default_rng(7)
    actions = rng.integers(0, 3, size=300)
    for a in actions:
        *_, info = env.step(a)
    table = np.array(cfg.positions)
    positions = table[actions]
    r, _ = position_returns(
        np.r_[positions, 0.0], bar_returns(o[start : start + 302], c[start : start + 302]), cfg.costs.rate
    )
    expected = float(np.prod(1 + r[:300]))
    assert info["equity"] == pytest.approx(expected, rel=1e-10)


def test_observation_is_the_causal_window_plus_position():
    feats, o, c = _market(100, f=3)
    env = TradingEnv(feats, o, c, EnvConfig(lookback=4))
    obs, _ = env.reset(options={"start": 20})
    np.testing.assert_array_equal(obs[:-1], feats[17:21].ravel())  # rows t-3..t, nothing from t+1
    assert obs[-1] == 0.0
    obs, *_ = env.step(1)
    np.testing.assert_array_equal(obs[:-1], feats[18:22].ravel())
    assert obs[-1] == 1.0
    assert obs.dtype == np.float32


def test_equity_floor_terminates_and_episode_length_truncates():
    n = 50
    close = 100 * 0.8 ** np.arange(n)  # every bar loses 20%
    open_ = close.copy()
    open_[1:] = close[:-1]
    feats = np.zeros((n, 1), dtype=np.float32)
    env = TradingEnv(
        feats,
        open_,
        close,
        EnvConfig(lookback=1, equity_floor=0.5, costs=CostConfig(fee_bps=0, spread_bps=0, slippage_bps=0)),
    )
    env.reset(options={"start": 0})
    done_at = None
    for i in range(10):
        _, _, term, trunc, info = env.step(1)  # long into a crash
        if term:
            done_at = i + 1
            break
    assert done_at == 4 and info["equity"] < 0.5  # 0.8^4 = 0.41 < 0.5 <= 0.8^3
    env2 = TradingEnv(feats, open_, close, EnvConfig(lookback=1, episode_length=5))
    env2.reset(options={"start": 0})
    flags = [env2.step(0)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_bad_inputs_raise_clear_errors():
    feats, o, c = _market(20)
    with pytest.raises(DataError, match="too few"):
        TradingEnv(feats[:5], o[:5], c[:5], EnvConfig(lookback=8))
    bad = feats.copy()
    bad[7, 2] = np.nan
    with pytest.raises(DataError, match="row 7"):
        TradingEnv(bad, o, c, EnvConfig(lookback=4))
    with pytest.raises(DataError, match="start"):
        TradingEnv(feats, o, c, EnvConfig(lookback=4)).reset(options={"start": 1})


def test_no_trade_band_keeps_the_position_for_targets_near_it():
    """Target actions within `no_trade_band` of the position held trade nothing and cost nothing;
    the band is measured from the position held, so a drift of small steps never trades either."""
    feats, o, c = _market()
    env = TradingEnv(feats, o, c, EnvConfig(lookback=1, actions="target", no_trade_band=0.3))
    env.reset(options={"start": 0})
    _, _, _, _, info = env.step(np.array([0.8], dtype=np.float32))
    assert info["position"] == pytest.approx(0.8) and info["cost"] > 0  # outside the band: trades
    for target in (0.6, 0.95, 0.55, 0.75):  # all within 0.3 of 0.8
        _, _, _, _, info = env.step(np.array([target], dtype=np.float32))
        assert info["position"] == pytest.approx(0.8) and info["cost"] == 0.0
    _, _, _, _, info = env.step(np.array([-0.2], dtype=np.float32))
    assert info["position"] == pytest.approx(-0.2) and info["cost"] > 0
    # positive control: without a band every change trades
    plain = TradingEnv(feats, o, c, EnvConfig(lookback=1, actions="target"))
    plain.reset(options={"start": 0})
    plain.step(np.array([0.8], dtype=np.float32))
    _, _, _, _, info = plain.step(np.array([0.6], dtype=np.float32))
    assert info["position"] == pytest.approx(0.6) and info["cost"] > 0


def test_change_actions_hold_or_step_one_rung_of_the_ladder():
    """`env.actions=change`: action 0 holds (free, whatever is held), 1 and 2 move one rung up or
    down the sorted `positions`, and a step off either end of the ladder holds."""
    from ztb_core.rl.actions import DOWN, HOLD, UP

    feats, o, c = _market()
    env = TradingEnv(feats, o, c, EnvConfig(lookback=1, actions="change", positions=[0.0, 1.0, -1.0, 0.5]))
    assert env.action_space.n == 3
    env.reset(options={"start": 0})
    path = []
    for a in (UP, UP, HOLD, UP, UP, HOLD, DOWN, DOWN, DOWN, DOWN, DOWN, HOLD):
        _, _, _, _, info = env.step(a)
        path.append(info["position"])
        assert (info["cost"] == 0.0) == (len(path) == 1 and path[0] == 0.0 or len(path) > 1 and path[-1] == path[-2])
    assert path == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, -1.0, -1.0, -1.0, -1.0]
    # a position off the ladder (a live account's, say) steps to the nearest rung on that side
    assert (
        env.position_for(UP, 0.2) == 0.5 and env.position_for(DOWN, 0.2) == 0.0 and env.position_for(HOLD, 0.2) == 0.2
    )
    # positive control: the same action indices as target positions jump, they do not step
    plain = TradingEnv(feats, o, c, EnvConfig(lookback=1, positions=[0.0, 1.0, -1.0, 0.5]))
    plain.reset(options={"start": 0})
    assert [plain.step(a)[4]["position"] for a in (UP, DOWN, HOLD)] == [1.0, -1.0, 0.0]


def test_change_actions_need_two_rungs():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="two different rungs"):
        EnvConfig(actions="change", positions=[1.0, 1.0])
