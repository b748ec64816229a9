"""On the real files in ../shared/data (skipped with a reason when absent)."""

import numpy as np
import pandas as pd
import pytest

from ztb_core.data import store
from ztb_core.data.features import compute_feature_set
from ztb_core.data.importers import read_histdata
from ztb_core.data.ingest import DataConfig, dataset_info, import_files
from ztb_core.data.resample import last_completed, resample
from ztb_core.data.validate import ValidationConfig

pytestmark = pytest.mark.realdata


def test_usdjpy_histdata_import_and_features(shared_data):
    files = sorted(shared_data("usdjpy_m1_2016").glob("DAT_ASCII_USDJPY_M1_2016*.csv.gz"))
    assert len(files) == 8
    res = import_files(files[5:7], "histdata", "USDJPY")  # June-July 2016: includes the Brexit spike
    rep = res.report
    assert res.merge.rows_after == rep.rows_out > 60_000
    assert rep.gaps_unexpected == 0 and rep.gaps_market_closed >= 8  # every weekend is a closed-market gap
    bars = store.read_bars("USDJPY")
    assert str(bars.index[0]) == "2016-06-01 05:00:00+00:00"  # first line 20160601 000000 EST = UTC-5
    info = dataset_info("USDJPY")
    assert info["timeframes"]["D"]["rows"] >= 40
    # HistData's fixed EST puts the summer week end at 22:00 UTC, an hour after 17:00 New York (EDT):
    # each summer Friday leaves a 60-bar daily bar. Read as New York local time, every day is whole.
    d = resample(bars, "D", "fx")
    short = d["n_bars"].iloc[1:-1] < 1000
    assert short.sum() >= 8 and (d["n_bars"].iloc[1:-1][short] <= 60).all()
    ny = read_histdata(files[6], tz="America/New_York").bars
    assert (resample(ny, "D", "fx")["n_bars"].iloc[1:-1] > 1000).all()
    fm = compute_feature_set("technical-66", bars, "fx")
    assert np.isfinite(fm.values).all() and fm.valid.mean() > 0.9
    brexit = int(fm.index.searchsorted(pd.Timestamp("2016-06-24", tz="UTC")))
    assert abs(fm.column("ret_60")[brexit : brexit + 600]).max() > 0.01


def test_bitflyer_trades_import(shared_data):
    files = sorted(shared_data("btcjpy_trades_2018").glob("bitflyer.execution.*.BTC_JPY.csv.gz"))
    cfg = DataConfig(validation=ValidationConfig(daily_maintenance_utc=["19:00-19:15"], gaps="report"))
    res = import_files(files, "bitflyer-trades", "BTC_JPY", cfg=cfg)
    rep = res.report
    assert res.market == "crypto" and rep.rows_out == 9878
    assert rep.gaps_market_closed == 7  # daily maintenance 04:00 JST
    starts = [g.start for g in rep.unexpected_gaps]
    assert "2018-01-26T14:29:00+00:00" in starts  # the file that starts late
    bars = store.read_bars("BTC_JPY")
    assert (bars["trades"] >= 1).all() and bars["trades"].sum() > 900_000
    h1 = resample(bars, "H1", "crypto")
    pos = last_completed(bars.index, h1, "H1")
    assert (
        h1["close_time"].to_numpy()[pos[pos >= 0]] <= (bars.index[pos >= 0] + np.timedelta64(1, "m")).to_numpy()
    ).all()
