"""Online technical-66 (one bar at a time, state rebuilt from the buffer on restart) equals the offline
feature matrix: every one of the 66 columns to 1e-9 and the valid mask exactly, over long FX (weekend
gaps, missing minutes) and crypto replays with restarts in the middle."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest

from ztb_core.data.features import compute_feature_set
from ztb_core.data.features import technical as technical_mod
from ztb_core.data.features.matrix import ColumnWriter
from ztb_core.data.features.online import OnlineTechnical
from ztb_core.data.features.technical import NAMES
from ztb_core.data.schema import index_ns
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.errors import DataError

TOL = 1e-9


def offline64(bars: pd.DataFrame, market: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The offline columns before their float32 cast (float64 (T, 66), NaN in warm-up), plus the
    float32 matrix and valid mask `compute_feature_set` returns."""
    cols: dict[str, np.ndarray] = {}

    class Capture(ColumnWriter):
        def put(self, name: str, column: np.ndarray) -> None:
            cols[name] = np.array(column, dtype=np.float64)
            super().put(name, column)

    with mock.patch.object(technical_mod, "ColumnWriter", Capture):
        fm = compute_feature_set("technical-66", bars, market)
    return np.stack([cols[n] for n in NAMES], axis=1), fm.values, fm.valid


def replay(bars: pd.DataFrame, market: str, restarts: list[int], buffer: int | None):
    """Online rows for every bar, restarting (state rebuilt from the last `buffer` bars, all when None)
    before each index in `restarts`; returns float64 rows, float32 rows, valid flags and segment starts."""
    on = OnlineTechnical(market)
    n = len(bars)
    r64, r32, valid = np.full((n, len(NAMES)), np.nan), np.zeros((n, len(NAMES)), np.float32), np.zeros(n, bool)
    cols = [bars[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    times = index_ns(bars.index)
    seg_from = {0: 0}
    for i in range(n):
        if i in restarts:
            lo = 0 if buffer is None else max(0, i - buffer)
            on = OnlineTechnical(market)  # a new process: nothing carried over but the bars
            on.rebuild(bars.iloc[lo:i])
            seg_from[i] = lo
        r64[i] = on.update(int(times[i]), *(c[i] for c in cols))
        rows, ok = on.window(1)
        r32[i], valid[i] = rows[-1], ok[-1]
    return r64, r32, valid, seg_from


def assert_same(online: np.ndarray, offline: np.ndarray, where: str) -> None:
    nan_on, nan_off = np.isnan(online), np.isnan(offline)
    bad = np.argwhere(nan_on != nan_off)
    assert not len(bad), f"{where}: warm-up differs at row/col {bad[:3].tolist()} ({[NAMES[j] for _, j in bad[:3]]})"
    diff = np.abs(np.where(nan_on, 0.0, online - offline))
    if diff.max() > TOL:
        i, j = np.unravel_index(diff.argmax(), diff.shape)
        raise AssertionError(f"{where}: {NAMES[j]} row {i}: online {online[i, j]!r} offline {offline[i, j]!r}")


def check_replay(bars: pd.DataFrame, market: str, restarts: list[int], buffer: int | None) -> None:
    r64, r32, valid, seg_from = replay(bars, market, restarts, buffer)
    bounds = sorted(seg_from) + [len(bars)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        lo = seg_from[a]
        ref64, ref32, ref_valid = offline64(bars.iloc[lo:b], market)  # offline over what the process held
        k = a - lo
        assert_same(r64[a:b], ref64[k:], f"{market} rows {a}..{b} (state from bar {lo})")
        np.testing.assert_array_equal(valid[a:b], ref_valid[k:], err_msg=f"{market} valid mask rows {a}..{b}")
        # the float32 rows are the float64 ones rounded: a 1e-16 difference can round one ulp apart
        np.testing.assert_array_max_ulp(r32[a:b], ref32[k:], maxulp=1)


@pytest.fixture(scope="module")
def fx_bars() -> pd.DataFrame:
    # starts on a Thursday so the replay crosses a weekend gap; missing minutes inside the week
    cfg = SyntheticConfig(seed=3, n_bars=9000, market="fx", missing_prob=0.02, start="2021-03-04T13:07:00Z")
    return generate_market(cfg)


@pytest.fixture(scope="module")
def crypto_bars() -> pd.DataFrame:
    return generate_market(SyntheticConfig(seed=4, n_bars=8000, market="crypto", start="2021-03-06T21:30:00Z"))


def test_fx_replay_with_restarts_equals_offline(fx_bars):
    gaps = np.flatnonzero(np.diff(index_ns(fx_bars.index)) > 3600 * 10**9)
    assert len(gaps), "the replay must cross a weekend"
    # restarts: right after the weekend reopen, mid-week, and one with a short buffer (state mid-warm-up)
    restarts = [int(gaps[0]) + 2, 5003, 7777]
    check_replay(fx_bars, "fx", restarts, buffer=3000)


def test_crypto_replay_with_restarts_equals_offline(crypto_bars):
    check_replay(crypto_bars, "crypto", [1500, 4321, 6000], buffer=1200)


def test_restart_with_long_buffer_equals_full_history(crypto_bars):
    """A restart from a buffer longer than the warm-up gives the rows of the full history."""
    r64, _, valid, _ = replay(crypto_bars, "crypto", [7000], buffer=6000)
    full64, _, full_valid = offline64(crypto_bars, "crypto")
    np.testing.assert_array_equal(valid[7000:], full_valid[7000:])
    assert valid[7000:].all()
    assert_same(r64[7000:], full64[7000:], "restart from 6000 bars vs full history")


def test_flat_and_zero_volume_windows_are_exact():
    """Flat prices (mean exactly the value, std 0): neutral values offline and online alike."""
    idx = pd.date_range("2022-01-03 00:00", periods=700, freq="min", tz="UTC")
    c = np.r_[np.linspace(100, 101, 300), np.full(400, 100.1)]
    bars = pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": np.zeros(700)}, index=idx)
    check_replay(bars, "crypto", [450], buffer=250)
    _, r32, _, _ = replay(bars, "crypto", [], None)
    for name in ("zscore_60", "cci_20", "bb_pctb_20", "volume_z_60"):
        assert r32[-1, NAMES.index(name)] == 0.0


def test_sync_feeds_only_new_bars_and_rebuilds_on_a_gap(crypto_bars):
    on = OnlineTechnical("crypto", keep=16)
    assert on.sync(crypto_bars.iloc[:3000]) == 3000
    assert on.sync(crypto_bars.iloc[1:3002]) == 2  # the rolling buffer moved by two bars
    assert on.sync(crypto_bars.iloc[2:3002]) == 0
    assert on.sync(crypto_bars.iloc[3500:5000]) == 1500  # does not continue the state: rebuilt
    _, ref32, ref_valid = offline64(crypto_bars.iloc[3500:5000], "crypto")
    rows, ok = on.window(16)
    np.testing.assert_array_max_ulp(rows, ref32[-16:], maxulp=1)
    np.testing.assert_array_equal(ok, ref_valid[-16:])


def test_out_of_order_bar_is_refused(crypto_bars):
    on = OnlineTechnical("crypto")
    on.extend(crypto_bars.iloc[:10])
    with pytest.raises(DataError, match="not after the last one"):
        on.extend(crypto_bars.iloc[5:6])


def test_parity_check_catches_a_wrong_state(crypto_bars):
    """Positive control: a restart that skips one bar of the buffer (a state one bar off) fails."""
    on = OnlineTechnical("crypto")
    on.rebuild(crypto_bars.iloc[:2999].drop(crypto_bars.index[2950]))
    row = on.update(
        int(index_ns(crypto_bars.index[2999:3000])[0]),
        *crypto_bars.iloc[2999][["open", "high", "low", "close", "volume"]],
    )
    ref64, _, _ = offline64(crypto_bars.iloc[:3000], "crypto")
    with pytest.raises(AssertionError):
        assert_same(row[None, :], ref64[-1:], "control")
