import numpy as np
import pytest

from ztb_core.data.schema import NS_PER_MINUTE, index_ns
from ztb_core.data.splits import SPLIT_NAMES, chronological_splits
from ztb_core.pretrain.prepare import build_bars
from ztb_core.pretrain.windows import build_window_index, cached_window_index

TFS = ["M1", "M5", "M15", "H1", "H4", "D"]
LENGTHS = {"M1": 48, "M5": 48, "M15": 48, "H1": 48, "H4": 24, "D": 5}


@pytest.fixture(scope="module")
def fx_index(fx_market):
    bars = build_bars(fx_market, TFS, "fx")
    m1_ns = index_ns(fx_market.index)
    return m1_ns, bars, build_window_index(m1_ns, bars, LENGTHS, 0.7, 0.15, 0.15, 0)


def test_windows_end_at_the_last_bar_completed_by_the_anchor_close(fx_index):
    m1_ns, bars, idx = fx_index
    rng = np.random.default_rng(0)
    pos = rng.choice(len(idx.anchors), 500, replace=False)
    anchor_close = m1_ns[idx.anchors[pos]] + NS_PER_MINUTE
    for tf in TFS:
        rows = idx.rows(tf, pos)
        close = bars[tf].close_ns[rows]
        # causality: nothing in any window closes after the anchor bar's close
        assert (close <= anchor_close[:, None]).all(), tf
        # right-aligned: the next bar had not closed yet (or does not exist)
        nxt = rows[:, -1] + 1
        has_next = nxt < len(bars[tf])
        assert (bars[tf].close_ns[nxt[has_next]] > anchor_close[has_next]).all(), tf
        # contiguous, complete bars only
        assert (np.diff(rows, axis=1) == 1).all()
        assert bars[tf].complete[rows].all(), tf
    assert (idx.rows("M1", pos)[:, -1] == idx.anchors[pos]).all()


def test_no_window_straddles_two_splits(fx_index, fx_market):
    m1_ns, bars, idx = fx_index
    slices = chronological_splits(len(m1_ns), 0.7, 0.15, 0.15, 0)
    for _code, name in enumerate(SPLIT_NAMES):
        pos = idx.split(name)
        assert len(pos) > 0, name
        start_ns = m1_ns[slices[name].start]
        anchors = idx.anchors[pos]
        assert ((anchors >= slices[name].start) & (anchors < slices[name].stop)).all()
        for tf in TFS:
            first_open = bars[tf].open_ns[idx.rows(tf, pos)[:, 0]]
            assert (first_open >= start_ns).all(), (name, tf)


def test_window_index_cache_hits_and_invalidates(tmp_path, fx_market):
    bars = build_bars(fx_market, ["M1", "M5"], "fx")
    m1_ns = index_ns(fx_market.index)
    lengths = {"M1": 32, "M5": 32}
    a, key_a, cached_a = cached_window_index(tmp_path, m1_ns, bars, "fx", lengths, 0.7, 0.15, 0.15, 0)
    b, key_b, cached_b = cached_window_index(tmp_path, m1_ns, bars, "fx", lengths, 0.7, 0.15, 0.15, 0)
    assert not cached_a and cached_b and key_a == key_b
    assert np.array_equal(a.anchors, b.anchors) and np.array_equal(a.ends["M5"], b.ends["M5"])
    _, key_c, cached_c = cached_window_index(tmp_path, m1_ns, bars, "fx", {"M1": 32, "M5": 16}, 0.7, 0.15, 0.15, 0)
    assert key_c != key_a and not cached_c
    cut = fx_market.iloc[:-1000]
    bars_cut = build_bars(cut, ["M1", "M5"], "fx")
    _, key_d, cached_d = cached_window_index(tmp_path, index_ns(cut.index), bars_cut, "fx", lengths, 0.7, 0.15, 0.15, 0)
    assert key_d != key_a and not cached_d
