"""The backtest follows the shared P&L convention and its trade attribution adds up."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.evaluation import EvaluationError, backtest
from ztb_core.pnl import bar_returns, position_returns
from ztb_core.trading_costs import CostConfig

from .conftest import make_bars


def test_hand_computed_fill_at_next_open():
    open_ = np.array([100.0, 101.0, 103.0, 102.0])
    close = np.array([100.5, 102.0, 102.0, 104.0])
    pos = np.array([1.0, 1.0, 0.0, 0.0])
    costs = CostConfig(fee_bps=10, spread_bps=0, slippage_bps=0)  # 0.001 per unit traded
    bt = backtest(pos, open_, close, costs)
    # bar 1: long filled at its open: intra 102/101-1, cost 0.001 (entry)
    # bar 2: held long through the gap 103/102-1 and the bar; bar 3: gap earned, exit costs 0.001
    expected = np.array([102 / 101 - 1 - 0.001, (103 / 102 - 1) + (102 / 103 - 1), (102 / 102 - 1) - 0.001])
    np.testing.assert_allclose(bt.returns, expected)
    np.testing.assert_allclose(bt.equity, np.concatenate(([1.0], np.cumprod(1 + expected))))
    assert bt.n_trades == 1
    assert bt.trade_entry[0] == 1 and bt.trade_exit[0] == 3
    assert bt.total_turnover == 2.0
    assert bt.exposure == pytest.approx(2 / 3)
    assert bt.fees_paid == pytest.approx(0.001 * 1.0 + 0.001 * bt.equity[2])


def test_agrees_with_pnl_module_and_trades_sum_to_net_pnl():
    open_, close, _ = make_bars(3000, seed=4)
    rng = np.random.default_rng(1)
    pos = np.repeat(rng.choice([-1.0, 0.0, 0.5, 1.0], 300), 10)
    costs = CostConfig()
    bt = backtest(pos, open_, close, costs)
    r, c = position_returns(pos, bar_returns(open_, close), costs.rate)
    np.testing.assert_allclose(bt.returns, r)
    np.testing.assert_allclose(bt.costs, c)
    np.testing.assert_allclose(bt.gross_returns - bt.costs, bt.returns, atol=1e-15)
    # additive attribution: every bit of P&L belongs to exactly one trade
    assert bt.trade_pnl.sum() == pytest.approx(bt.returns.sum(), abs=1e-12)
    runs = np.count_nonzero((pos[:-1] != np.concatenate(([0.0], pos[:-2]))) & (pos[:-1] != 0))
    assert bt.n_trades == runs
    assert np.all(bt.trade_entry < bt.trade_exit)


@pytest.mark.parametrize(
    "pos, open_, close, match",
    [
        ([1, 1], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "positions has 2 values but there are 3 bars"),
        ([1, 1, 1], [1.0, 2.0], [1.0, 2.0, 3.0], "open has 2 bars but close has 3"),
        ([1, np.nan, 1], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "positions: 1 value"),
        ([1, 1, 1], [1.0, 0.0, 3.0], [1.0, 2.0, 3.0], "open: prices must be positive .row 1"),
        ([], [], [], "is empty"),
    ],
)
def test_bad_inputs(pos, open_, close, match):
    with pytest.raises(EvaluationError, match=match):
        backtest(pos, open_, close, CostConfig())
