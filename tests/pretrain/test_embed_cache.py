"""The frozen-encoder hand-off: embeddings cached by (encoder sha256, data, windows), progress
with bars/s and ETA while they are computed, and an encoder pretrained into the PPO
validation/test periods refused."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ztb_core.config import config_to_dict
from ztb_core.errors import ConfigError
from ztb_core.manifest import sha256_file
from ztb_core.pretrain.embed_cache import cached_embeddings, progress_reporter
from ztb_core.pretrain.export import load_encoder, save_encoder
from ztb_core.pretrain.module import PretrainModule
from ztb_core.pretrain.prepare import prepare
from ztb_core.rl.market import check_encoder_period

from .conftest import sine_market, tiny_config


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enc")
    cfg = tiny_config(tmp)
    m1 = sine_market(8_000)
    prepared = prepare(cfg, m1=m1)
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
    path = save_encoder(module, tmp / "encoder")
    return path, m1


def test_embeddings_are_cached_by_encoder_data_and_reported_with_rate_and_eta(encoder, tmp_path, monkeypatch):
    path, m1 = encoder
    bundle = load_encoder(path)
    sha = sha256_file(path)
    monkeypatch.setattr("ztb_core.pretrain.embed_cache.REPORT_EVERY_S", 0.0)
    msgs: list[str] = []
    emb, valid, hit = cached_embeddings(bundle, sha, m1, "crypto", tmp_path, on_progress=msgs.append, batch_size=512)
    assert not hit and emb.shape == (len(m1), bundle.embedding_dim)
    assert len(msgs) >= 3 and all("bars/s" in m and "ETA" in m for m in msgs), msgs
    assert msgs[-1].startswith(f"encoder embeddings: {int(valid.sum()):,}/{int(valid.sum()):,} bars")
    assert [p.name for p in tmp_path.iterdir()] == [next(tmp_path.glob("emb-*.npz")).name]  # no temp file left

    def boom(*a, **k):
        raise AssertionError("the encoder ran although the cache holds these embeddings")

    monkeypatch.setattr(type(bundle), "embed_bars", boom)
    msgs.clear()
    emb2, valid2, hit2 = cached_embeddings(bundle, sha, m1, "crypto", tmp_path, on_progress=msgs.append)
    assert hit2 and np.array_equal(emb, emb2) and np.array_equal(valid, valid2)
    assert "from the cache" in msgs[0]
    # another encoder file or other bars: a different key, so the encoder runs (positive control)
    with pytest.raises(AssertionError, match="the encoder ran"):
        cached_embeddings(bundle, "0" * 64, m1, "crypto", tmp_path)
    with pytest.raises(AssertionError, match="the encoder ran"):
        cached_embeddings(bundle, sha, m1.iloc[:-1], "crypto", tmp_path)


def test_an_unreadable_cache_is_recomputed(encoder, tmp_path):
    path, m1 = encoder
    bundle = load_encoder(path)
    sha = sha256_file(path)
    emb, _, _ = cached_embeddings(bundle, sha, m1, "crypto", tmp_path)
    (f,) = tmp_path.glob("emb-*.npz")
    f.write_bytes(b"torn")
    emb2, _, hit = cached_embeddings(bundle, sha, m1, "crypto", tmp_path)
    assert not hit and np.allclose(emb, emb2)


def test_progress_reporter_throttles_but_always_reports_the_end():
    msgs: list[str] = []
    rep = progress_reporter(msgs.append)
    for done in range(100, 1000, 100):
        rep(done, 1000, done / 500.0)
    rep(1000, 1000, 2.0)
    assert len(msgs) == 2 and msgs[-1] == "encoder embeddings: 1,000/1,000 bars, 500 bars/s, ETA 0 s"


def test_an_encoder_pretrained_into_the_evaluation_period_is_refused():
    until = pd.Timestamp("2016-06-01", tz="UTC")
    bundle = SimpleNamespace(stats=SimpleNamespace(fitted_until_ns=until.value))
    check_encoder_period(bundle, pd.Timestamp("2016-06-01", tz="UTC"), "enc.pt")  # ends exactly before: fine
    with pytest.raises(ConfigError, match="pretrained on bars up to 2016-06-01.*validation/test periods start"):
        check_encoder_period(bundle, pd.Timestamp("2016-05-31 23:59", tz="UTC"), "enc.pt")


def test_the_ablation_control_is_an_encoder_of_the_same_shape_with_fresh_weights(encoder, tmp_path):
    import torch

    from ztb_core.rl.stage1_ablation import random_encoder_like

    path, m1 = encoder
    trained = load_encoder(path)
    control = load_encoder(random_encoder_like(path, tmp_path / "random", seed=3))
    assert control.embedding_dim == trained.embedding_dim and control.lengths == trained.lengths
    assert control.stats.to_dict() == trained.stats.to_dict()  # same inputs, only the weights differ
    a, b = trained.model.state_dict(), control.model.state_dict()
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    again = load_encoder(random_encoder_like(path, tmp_path / "random2", seed=3))
    assert all(torch.equal(b[k], again.model.state_dict()[k]) for k in b)  # seeded
