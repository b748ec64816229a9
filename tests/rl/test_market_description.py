"""The end-of-run message names the market and, for the synthetic one, its planted-signal ceiling."""

from __future__ import annotations

import re

from ztb_core.config import load_config
from ztb_core.rl.config import DEMO_PRICE_CEILING, DEMO_SIGNAL_CEILING, TrainConfig
from ztb_core.rl.market import describe_market


def test_synthetic_market_states_its_ceilings_at_the_run_costs():
    line = describe_market(TrainConfig())
    assert "synthetic fx, a research market with a planted momentum signal (signal_strength 0.03" in line
    assert "calibrated" not in line  # its momentum is not USD/JPY's (docs/rl-experiments.md, the market)
    prices = float(re.search(r"net Sharpe over all bars: ([0-9.]+) for the best filter of past prices", line).group(1))
    knows = float(re.search(r"([0-9.]+) for a trader who knows the signal", line).group(1))
    assert abs(prices - DEMO_PRICE_CEILING) < 0.1 * DEMO_PRICE_CEILING
    assert abs(knows - DEMO_SIGNAL_CEILING) < 0.1 * DEMO_SIGNAL_CEILING
    # higher costs, lower ceilings: the figures are computed for the run's own costs
    dear = describe_market(load_config(TrainConfig, None, ["env.costs.fee_bps=5"]))
    assert float(re.search(r"([0-9.]+) for a trader who knows", dear).group(1)) < knows
    assert float(re.search(r"all bars: ([0-9.]+) for the best filter", dear).group(1)) < prices


def test_known_optimum_market_points_to_its_benchmark():
    cfg = load_config(TrainConfig, None, ["data.synthetic.kind=known_regime", "data.synthetic.n_bars=5000"])
    line = describe_market(cfg)
    assert line.startswith("market: synthetic known_regime (seed 0, 5,000 bars), whose optimal policy is known")
    assert "bench_known_optimum.py" in line


def test_store_market_says_there_is_no_known_ceiling():
    cfg = load_config(TrainConfig, None, ["data.kind=store", "data.symbol=USDJPY"])
    assert describe_market(cfg) == "market: USDJPY from the store (fx); real data, no known ceiling"
