"""Resampling: brute-force equality, OHLC invariants, FX/crypto day boundaries, edge marking,
and `last_completed` = the last bar closed and complete at each M1 close, never a later one."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ztb_core.data.resample import last_completed, resample
from ztb_core.data.schema import TIMEFRAMES
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.errors import DataError

MIN = pd.Timedelta(minutes=1)


@st.composite
def m1_bars(draw):
    """Random M1 bars: random start (any weekday/DST season), random missing minutes, random OHLC."""
    n = draw(st.integers(1, 400))
    start = pd.Timestamp("2016-01-01", tz="UTC") + MIN * draw(st.integers(0, 366 * 1440))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 7, 61, 239, 1500]), min_size=n, max_size=n))
    times = start + MIN * np.cumsum(np.r_[0, steps[:-1]])
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    o = 100 + rng.standard_normal(n).cumsum() * 0.1
    c = o + rng.standard_normal(n) * 0.05
    h = np.maximum(o, c) + rng.random(n) * 0.05
    lo = np.minimum(o, c) - rng.random(n) * 0.05
    v = rng.integers(0, 5, n).astype(float)
    idx = pd.DatetimeIndex(times, name="time")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": v}, index=idx)


def brute_day_start(t: pd.Timestamp, market: str) -> pd.Timestamp:
    if market == "crypto":
        return t.floor("D")
    # wall-clock arithmetic: subtracting 17 h from an aware timestamp is absolute time and would
    # cross the DST switch at 02:00 on the Sunday it happens (a wrong day for Sunday 17:00-18:00)
    local = t.tz_convert("America/New_York").tz_localize(None)
    day = (local - pd.Timedelta(hours=17)).date()
    return pd.Timestamp(f"{day} 17:00").tz_localize("America/New_York").tz_convert("UTC")


def brute_resample(m1: pd.DataFrame, tf: str, market: str) -> pd.DataFrame:
    groups: dict = {}
    for t, row in m1.iterrows():
        if tf == "D":
            key = brute_day_start(t, market)
        else:
            key = t.floor({"M5": "5min", "M15": "15min", "M30": "30min", "H1": "h", "H4": "4h"}[tf])
        groups.setdefault(key, []).append(row)
    out = {
        k: {
            "open": r[0]["open"],
            "high": max(x["high"] for x in r),
            "low": min(x["low"] for x in r),
            "close": r[-1]["close"],
            "volume": sum(x["volume"] for x in r),
            "n_bars": len(r),
        }
        for k, r in groups.items()
    }
    return pd.DataFrame.from_dict(out, orient="index").sort_index()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m1=m1_bars(), tf=st.sampled_from(["M5", "M15", "M30", "H1", "H4", "D"]), market=st.sampled_from(["fx", "crypto"])
)
def test_resample_equals_brute_force_and_keeps_invariants(m1, tf, market):
    got = resample(m1, tf, market)
    want = brute_resample(m1, tf, market)
    assert list(got.index) == list(want.index)
    for col in ("open", "high", "low", "close", "volume", "n_bars"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy())
    assert (got["high"] >= got[["open", "close"]].max(axis=1)).all()
    assert (got["low"] <= got[["open", "close"]].min(axis=1)).all()
    assert (got["close_time"] > got.index).all()
    # every M1 bar lies inside its bucket
    assert got["n_bars"].sum() == len(m1)
    # interior bars are complete; the edges are complete only when the data covers them whole
    assert got["complete"].iloc[1:-1].all()
    assert got["complete"].iloc[0] == (m1.index[0] == got.index[0]) or len(got) == 1
    assert got["complete"].iloc[-1] == (m1.index[-1] + MIN >= got["close_time"].iloc[-1]) or len(got) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m1=m1_bars(),
    tf=st.sampled_from(["M5", "H1", "H4", "D"]),
    market=st.sampled_from(["fx", "crypto"]),
    cut=st.floats(0, 1),
)
def test_last_completed_is_causal_and_matches_brute_force(m1, tf, market, cut):
    htf = resample(m1, tf, market)
    pos = last_completed(m1.index, htf, tf)
    ends = list(htf["close_time"])
    complete = list(htf["complete"])
    for i, t in enumerate(m1.index):
        ok = [j for j in range(len(htf)) if ends[j] <= t + MIN and complete[j]]
        assert pos[i] == (ok[-1] if ok else -1)
    # the aligned higher-timeframe bar at t is identical when computed from data up to t only
    k = int(cut * (len(m1) - 1))
    head = m1.iloc[: k + 1]
    htf_head = resample(head, tf, market)
    pos_head = last_completed(head.index, htf_head, tf)
    for i in range(k + 1):
        assert (pos_head[i] == -1) == (pos[i] == -1)
        if pos[i] >= 0:
            a = htf.iloc[pos[i]][["open", "high", "low", "close", "volume"]].to_numpy(float)
            b = htf_head.iloc[pos_head[i]][["open", "high", "low", "close", "volume"]].to_numpy(float)
            np.testing.assert_array_equal(a, b)


def _bars_at(times) -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="time")
    n = len(idx)
    p = np.arange(1.0, n + 1)
    return pd.DataFrame({"open": p, "high": p + 0.5, "low": p - 0.5, "close": p, "volume": np.zeros(n)}, index=idx)


def test_fx_day_closes_at_17_new_york_in_winter_and_summer():
    # winter: 17:00 EST = 22:00 UTC; summer: 17:00 EDT = 21:00 UTC
    m1 = _bars_at(["2016-01-05 21:59", "2016-01-05 22:00", "2016-07-05 20:59", "2016-07-05 21:00"])
    d = resample(m1, "D", "fx")
    assert [str(t) for t in d.index] == [
        "2016-01-04 22:00:00+00:00",
        "2016-01-05 22:00:00+00:00",
        "2016-07-04 21:00:00+00:00",
        "2016-07-05 21:00:00+00:00",
    ]
    assert str(d["close_time"].iloc[0]) == "2016-01-05 22:00:00+00:00"
    crypto = resample(_bars_at(["2018-01-21 23:59", "2018-01-22 00:00"]), "D", "crypto")
    assert [str(t) for t in crypto.index] == ["2018-01-21 00:00:00+00:00", "2018-01-22 00:00:00+00:00"]


def test_custom_day_close():
    d = resample(_bars_at(["2016-01-05 06:59", "2016-01-05 07:00"]), "D", "fx", day_close="16:00", day_tz="Asia/Tokyo")
    assert [str(t) for t in d.index] == ["2016-01-04 07:00:00+00:00", "2016-01-05 07:00:00+00:00"]


def test_partial_edge_bars_are_marked_and_never_aligned():
    m1 = _bars_at(pd.date_range("2020-01-06 10:03", "2020-01-06 12:30", freq="min"))  # starts mid-hour, ends mid-hour
    h1 = resample(m1, "H1", "crypto")
    assert list(h1["complete"]) == [False, True, False]
    pos = last_completed(m1.index, h1, "H1")
    t = m1.index
    assert (pos[t < pd.Timestamp("2020-01-06 11:59", tz="UTC")] == -1).all()  # partial 10:00 bar is never used
    assert pos[t == pd.Timestamp("2020-01-06 11:59", tz="UTC")][0] == 1  # 11:00 bar usable at its close (12:00)
    assert (pos[t >= pd.Timestamp("2020-01-06 11:59", tz="UTC")] == 1).all()  # the partial 12:00 bar never is


def test_all_timeframes_on_synthetic_and_m1_identity():
    m1 = generate_market(SyntheticConfig(seed=1, n_bars=20000))
    for tf in TIMEFRAMES:
        out = resample(m1, tf, "fx")
        assert out["n_bars"].sum() == len(m1)
        assert out["open"].iloc[0] == m1["open"].iloc[0] and out["close"].iloc[-1] == m1["close"].iloc[-1]
    same = resample(m1, "M1", "fx")
    np.testing.assert_array_equal(same["close"].to_numpy(), m1["close"].to_numpy())
    np.testing.assert_array_equal(last_completed(m1.index, same, "M1"), np.arange(len(m1)))


def test_unsorted_input_and_unknown_timeframe_raise():
    m1 = _bars_at(["2020-01-06 10:01", "2020-01-06 10:00"])
    with pytest.raises(DataError, match="strictly increasing"):
        resample(m1, "M5", "fx")
    with pytest.raises(DataError, match="unknown timeframe"):
        resample(_bars_at(["2020-01-06 10:00"]), "M2", "fx")
    with pytest.raises(DataError, match="unknown market"):
        resample(_bars_at(["2020-01-06 10:00"]), "M5", "stocks")


def test_fx_day_after_the_spring_dst_switch_starts_at_17_new_york():
    """2016-03-13: New York moves to EDT at 02:00, so that Sunday's session opens at 21:00 UTC;
    the hour 21:00-22:00 UTC belongs to the new day, not to the one that opened on Saturday."""
    t = pd.DatetimeIndex(
        ["2016-03-12 23:00", "2016-03-13 07:00", "2016-03-13 20:59", "2016-03-13 21:43", "2016-03-13 22:10"],
        tz="UTC",
        name="time",
    )
    m1 = pd.DataFrame(
        {"open": 100.0, "high": 101.0, "low": 99.0, "close": [1.0, 2.0, 3.0, 4.0, 5.0], "volume": 0.0}, index=t
    )
    day = resample(m1, "D", "fx")
    assert list(day.index) == [pd.Timestamp("2016-03-12 22:00", tz="UTC"), pd.Timestamp("2016-03-13 21:00", tz="UTC")]
    assert day["close"].tolist() == [3.0, 5.0] and day["n_bars"].tolist() == [3, 2]
