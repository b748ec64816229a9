"""The agent's bar buffer is sized from what its features read (`history_needed`), not a fixed number:
a buffer of exactly that many bars gives, at every moment of the day (the worst is just before the
daily close) and across the 25-hour New York day when DST ends, the same valid last row as the
features computed over the whole history; a few bars fewer does not (positive controls)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ztb_core.data.features import compute_feature_set
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.live.loop.policy import feature_history, history_needed

NEED = feature_history("technical-66")


def crypto_bars(start: str, days: int) -> pd.DataFrame:
    return generate_market(SyntheticConfig(seed=4, n_bars=days * 1440, market="crypto", start=start))


def last_row_matches(bars: pd.DataFrame, full, t: int, n: int, market: str) -> bool:
    """Is the last row of the features over the `n` bars ending at `t` valid and equal to row `t` of
    the features over the whole history?"""
    fm = compute_feature_set("technical-66", bars.iloc[t + 1 - n : t + 1], market)
    return bool(fm.valid[-1]) and np.allclose(fm.values[-1], full.values[t], rtol=0, atol=1e-6)


def ends_at(bars: pd.DataFrame, times: list[str]) -> list[int]:
    return [int(bars.index.get_loc(pd.Timestamp(x, tz="UTC"))) for x in times]


@pytest.fixture(scope="module")
def crypto():
    bars = crypto_bars("2024-03-04T00:00:00Z", 7)
    return bars, compute_feature_set("technical-66", bars, "crypto")


def test_the_need_covers_every_minute_of_the_day(crypto):
    bars, full = crypto
    # 23:58 UTC is the worst moment (the day before yesterday must be whole); the others sample the day
    ends = ends_at(bars, ["2024-03-08T23:58", "2024-03-09T23:58", "2024-03-09T23:59", "2024-03-10T00:00"])
    ends += list(range(len(bars) - 1440, len(bars), 97))
    for t in ends:
        assert last_row_matches(bars, full, t, NEED, "crypto"), f"bar {bars.index[t]}"


def test_positive_control_a_shorter_buffer_misses_the_worst_minute(crypto):
    bars, full = crypto
    (t,) = ends_at(bars, ["2024-03-08T23:58"])
    assert not last_row_matches(bars, full, t, 3 * 1440 - 2, "crypto")  # 00:01 of the first day: partial


def test_the_long_new_york_day_is_covered():
    """An FX-trained agent on 24/7 bars (the default agent on a crypto venue): the FX day that ends on
    Sunday 3 Nov 2024 at 17:00 New York lasts 25 hours (DST ends at 02:00)."""
    bars = crypto_bars("2024-10-29T00:00:00Z", 8)
    full = compute_feature_set("technical-66", bars, "fx")
    (t,) = ends_at(bars, ["2024-11-04T21:58"])  # Monday 16:58 New York (EST): the 25-hour day is prev1
    assert last_row_matches(bars, full, t, NEED, "fx")
    assert not last_row_matches(bars, full, t, NEED - 2, "fx")  # positive control: the slack is needed


def test_lookback_and_encoder_add_to_the_need():
    class Enc:  # the two fields `encoder_history` reads from an EncoderBundle
        timeframes = ["M1", "H1"]
        lengths = {"M1": 64, "H1": 96}

    assert history_needed("technical-66", 1) == NEED == 3 * 1440 + 60
    assert history_needed("technical-66", 32) == NEED + 31
    assert history_needed("technical-66", 1, Enc()) == int(98 * 60 * 1.1) + 1 + 10 > NEED
    assert history_needed("stage1-ohlc", 1) == NEED
