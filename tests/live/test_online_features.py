"""The live agent's technical-66 features are incremental: one new bar of the rolling buffer costs one
row update whatever the buffer length, the rows equal the offline matrix over the full history, and
the state is rebuilt when the buffer does not continue it."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.data.features import compute_feature_set
from ztb_core.data.features.online import OnlineTechnical
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.live.loop import policy as policy_mod
from ztb_core.live.loop.policy import NotReady, OnlineFeatures


@pytest.fixture(scope="module")
def bars():
    return generate_market(SyntheticConfig(seed=21, n_bars=13000, market="fx", missing_prob=0.01))


@pytest.fixture(scope="module")
def offline(bars):
    return compute_feature_set("technical-66", bars, "fx")


class Counting(OnlineTechnical):
    """Counts full row updates (the per-decision work)."""

    updates = 0

    def update(self, *args, **kwargs):
        Counting.updates += 1
        return super().update(*args, **kwargs)


@pytest.mark.parametrize("buffer", [3000, 12000])
def test_one_row_per_new_bar_whatever_the_buffer(bars, offline, buffer, monkeypatch):
    monkeypatch.setattr(policy_mod, "OnlineTechnical", Counting)

    def whole_buffer(*a, **k):  # the old path must not run for technical-66
        raise AssertionError("compute_feature_set over the buffer")

    monkeypatch.setattr(policy_mod, "compute_feature_set", whole_buffer)
    online = OnlineFeatures("technical-66", "fx", lookback=8)
    start = len(bars) - 40
    online.prime(bars.iloc[start - buffer : start])
    for t in range(start, len(bars)):
        Counting.updates = 0
        window = online.window(bars.iloc[t + 1 - buffer : t + 1])  # the runner's rolling buffer
        assert Counting.updates == 1, f"bar {t}: {Counting.updates} row updates"
        np.testing.assert_allclose(window, offline.values[t - 7 : t + 1], rtol=0, atol=1e-6)


def test_a_gap_in_the_buffer_rebuilds_and_still_matches(bars, offline):
    online = OnlineFeatures("technical-66", "fx", lookback=8)
    online.prime(bars.iloc[:6000])
    t = 11000  # the process was away for 5000 bars: the new buffer does not continue the state
    window = online.window(bars.iloc[t + 1 - 6000 : t + 1])
    np.testing.assert_allclose(window, offline.values[t - 7 : t + 1], rtol=0, atol=1e-6)


def test_warmup_is_not_ready(bars):
    with pytest.raises(NotReady, match="valid rows at the end of 500 bars"):
        OnlineFeatures("technical-66", "fx", lookback=8).window(bars.iloc[:500])


def test_other_feature_sets_keep_the_whole_buffer_path(bars):
    fm = compute_feature_set("stage1-ohlc", bars.iloc[:7000], "fx")
    online = OnlineFeatures("stage1-ohlc", "fx", lookback=4)
    assert online.online is None
    np.testing.assert_array_equal(online.window(bars.iloc[:7000]), fm.values[-4:])


@pytest.mark.slow
def test_frozen_encoder_embeds_only_the_last_rows_exactly(tmp_path, monkeypatch):
    """With a frozen Stage-1 encoder the observation's embedding columns equal `embed_bars` over the
    whole buffer (what training used), though only the last rows' windows are built and embedded."""
    import yaml

    from ztb_core.cli import main
    from ztb_core.pretrain.export import load_encoder

    from ..rl.test_encoder_handoff import TINY_PRETRAIN

    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    cfg_path = tmp_path / "pretrain.yaml"
    cfg_path.write_text(yaml.safe_dump({**TINY_PRETRAIN, "cache_dir": str(tmp_path / "cache")}))
    assert main(["pretrain", "--headless", "--config", str(cfg_path), "--run-id", "enc"]) == 0
    enc = tmp_path / "artifacts" / "runs" / "enc" / "encoder"
    bars = generate_market(SyntheticConfig(seed=2, n_bars=6100, market="crypto"))
    online = OnlineFeatures("technical-66", "crypto", lookback=16, encoder_path=str(enc))
    bundle = load_encoder(enc)
    for t in (6000, 6099):
        buffer = bars.iloc[t + 1 - 6000 : t + 1]
        window = online.window(buffer)
        ref = bundle.embed_bars(buffer, "crypto")[-16:]
        np.testing.assert_array_equal(window[:, 66:], ref)
    # the encoder's warm-up: no windows yet at the start of the data, zeros and not valid
    emb, ok = online._embed_last(bars.iloc[:20], bundle)
    assert not ok.any() and not emb.any()
