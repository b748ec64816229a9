"""The evaluation on real USD/JPY minutes (HistData 2016), when the shared data is present."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.evaluation import EvalConfig, evaluate_positions, sma_crossover, validate_report
from ztb_core.paths import shared_data_dir
from ztb_core.trading_costs import CostConfig

pytestmark = pytest.mark.realdata


def _usdjpy(months=("01", "02")):
    from ztb_core.data.importers import read_histdata

    folder = shared_data_dir() / "usdjpy_m1_2016"
    files = [folder / f"DAT_ASCII_USDJPY_M1_2016{m}.csv.gz" for m in months]
    if not all(f.exists() for f in files):
        pytest.skip(f"real USD/JPY minutes not found under {folder}")
    import pandas as pd

    bars = pd.concat([read_histdata(f).bars for f in files]).sort_index()
    return bars[~bars.index.duplicated()]


def test_real_usdjpy_sma_report_is_complete_and_honest():
    bars = _usdjpy()
    open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
    pos = sma_crossover(close, 60, 600)
    cfg = EvalConfig.model_validate(
        {
            "bootstrap": {"n_resamples": 100},
            "monte_carlo": {"n_paths": 200},
            "baselines": {"random_seeds": 5},
            "robustness": {"episodes": 2},
        }
    )
    rep = evaluate_positions(
        pos,
        open_,
        close,
        bars.index,
        CostConfig(fee_bps=0.0, spread_bps=0.6, slippage_bps=0.2),
        "M1",
        "fx",
        cfg,
        meta={"symbol": "USDJPY", "split": "2016-01..02"},
    )
    data = validate_report(rep)
    assert data["meta"]["periods_per_year"] == 260 * 1440
    # months are UTC: the last EST evening of February is already March 1st in UTC
    periods = [p["period"] for p in data["robustness"]["monthly"]["periods"]]
    assert periods[:2] == ["2016-01", "2016-02"] and set(periods) <= {"2016-01", "2016-02", "2016-03"}
    assert sum(p["n_bars"] for p in data["robustness"]["monthly"]["periods"]) == len(close) - 1
    assert data["metrics"]["n_bars"] == len(close) - 1
    assert np.isfinite(data["metrics"]["sharpe"])
    b = data["bootstrap"]["intervals"]["sharpe"]
    assert b["low"] <= data["metrics"]["sharpe"] <= b["high"]
