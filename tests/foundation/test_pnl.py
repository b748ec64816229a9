import numpy as np
import pytest

from ztb_core.pnl import bar_returns, position_returns, step_return
from ztb_core.trading_costs import CostConfig, cost_rate


def test_hand_computed_example():
    # bars: open/close; decide long after bar0, stay long, flip short after bar2
    o = np.array([100.0, 101.0, 102.0, 103.0])
    c = np.array([101.0, 102.0, 101.0, 104.0])
    rate = cost_rate(fee_bps=10)  # 0.1% per unit traded
    r, cost = position_returns(np.array([1.0, 1.0, -1.0, 0.0]), bar_returns(o, c), rate)
    # bar1: enter long at open 101 -> earns 102/101-1, pays 1 * 0.001
    assert r[0] == pytest.approx(102 / 101 - 1 - 0.001)
    # bar2: long through gap (102/102) and intrabar 101/102
    assert r[1] == pytest.approx(101 / 102 - 1)
    # bar3: long earns the gap 103/101, new short earns -(104/103-1), pays 2 units
    assert r[2] == pytest.approx((103 / 101 - 1) - (104 / 103 - 1) - 0.002)
    assert cost.tolist() == pytest.approx([0.001, 0.0, 0.002])


def test_scalar_step_matches_vectorised():
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 500)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 1e-4, 500))
    pos = rng.choice([-1.0, 0.0, 1.0], size=500)
    rets = bar_returns(open_, close)
    rate = CostConfig(fee_bps=2, spread_bps=3, slippage_bps=1).rate
    r, _ = position_returns(pos, rets, rate)
    prev, scalar = 0.0, []
    for t in range(499):
        step, _ = step_return(prev, pos[t], rets.gap[t + 1], rets.intra[t + 1], rate)
        scalar.append(step)
        prev = pos[t]
    assert np.allclose(r, scalar)
    assert rate == pytest.approx((2 + 1.5 + 1) / 1e4)
