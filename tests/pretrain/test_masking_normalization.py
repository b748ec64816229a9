import numpy as np

from ztb_core.pretrain.dataset import FixedMaskSet, RandomMaskBatches
from ztb_core.pretrain.normalization import fit_aux_stats, revin
from ztb_core.pretrain.prepare import build_bars, prepare

from .conftest import tiny_config


def _prepared(tmp_path, fx_market, tfs=("M1", "M5", "M15", "H1")):
    cfg = tiny_config(tmp_path, **{"data.market": "fx", "window.timeframes": list(tfs), "window.seq_len": 48})
    return cfg, prepare(cfg, m1=fx_market)


def test_masks_are_synchronised_across_timeframes(tmp_path, fx_market):
    cfg, p = _prepared(tmp_path, fx_market)
    arrays = p.arrays
    pos = p.split_positions("train")[:512]
    ds = RandomMaskBatches(arrays, pos, cfg.mask, seed=0)
    batch = ds[list(range(len(pos)))]
    tfs = arrays.timeframes
    checked = 0
    for i, fine in enumerate(tfs):
        fm = batch[f"mask:{fine}"].numpy()
        fo = arrays.bars[fine].open_ns[arrays.index.rows(fine, pos)]
        fc = arrays.bars[fine].close_ns[arrays.index.rows(fine, pos)]
        for coarse in tfs[i + 1 :]:
            cm = batch[f"mask:{coarse}"].numpy()
            co = arrays.bars[coarse].open_ns[arrays.index.rows(coarse, pos)]
            cc = arrays.bars[coarse].close_ns[arrays.index.rows(coarse, pos)]
            # every coarse bar overlapping a masked fine bar is masked: hidden time is hidden everywhere
            overlap = (co[:, :, None] < fc[:, None, :]) & (cc[:, :, None] > fo[:, None, :]) & fm[:, None, :]
            hit = overlap.any(axis=2)
            checked += int(hit.sum())
            assert cm[hit].all(), (fine, coarse)
    assert checked > 100  # the property was actually exercised
    m1 = batch["mask:M1"].numpy()
    assert 0.08 < m1.mean() < 0.25
    # masked M1 positions come in contiguous blocks of at least min_block bars
    runs = []
    for row in m1:
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
        runs += list(edges[1::2] - edges[::2])
    assert min(runs) >= cfg.mask.min_block


def test_validation_masks_are_fixed_by_seed(tmp_path, fx_market):
    cfg, p = _prepared(tmp_path, fx_market)
    a = FixedMaskSet(p.arrays, p.split_positions("val"), cfg.mask, 128)
    b = FixedMaskSet(p.arrays, p.split_positions("val"), cfg.mask, 128)
    for tf in p.arrays.timeframes:
        assert np.array_equal(a.masks[tf], b.masks[tf])
    other = cfg.mask.model_copy(update={"val_seed": cfg.mask.val_seed + 1})
    c = FixedMaskSet(p.arrays, p.split_positions("val"), other, 128)
    assert not np.array_equal(a.masks["M1"], c.masks["M1"])


def test_statistics_are_fitted_on_the_train_split_only(fx_market):
    bars = build_bars(fx_market, ["M1", "M5"], "fx")
    cut = int(bars["M1"].close_ns[len(bars["M1"]) // 2])
    base = fit_aux_stats(bars, cut, "x")
    later = bars["M1"].close_ns > cut
    bars["M1"].aux[later, 1] += 100.0  # wreck everything after the train split
    assert fit_aux_stats(bars, cut, "x").mean == base.mean
    bars["M1"].aux[~later, 1] += 1.0  # ...but the train part moves them
    assert fit_aux_stats(bars, cut, "x").mean["M1"][1] != base.mean["M1"][1]


def test_per_window_normalisation_ignores_masked_values(tmp_path, fx_market):
    """Leakage: changing hidden prices must not change a single input number."""
    cfg, p = _prepared(tmp_path, fx_market, tfs=("M1", "M5"))
    val = FixedMaskSet(p.arrays, p.split_positions("val"), cfg.mask, 64)
    items = list(range(64))
    before = val[items]
    for tf in ("M1", "M5"):
        rows = p.arrays.index.rows(tf, val.positions)
        hidden = np.unique(rows[val.masks[tf]])
        visible_somewhere = np.unique(rows[~val.masks[tf]])
        only_hidden = np.setdiff1d(hidden, visible_somewhere)  # a bar can be hidden in one window, shown in another
        p.arrays.bars[tf].logp[only_hidden] += 0.05
    after = val[items]
    for tf in ("M1", "M5"):
        assert np.array_equal(before[f"x:{tf}"].numpy(), after[f"x:{tf}"].numpy()), tf
        assert not np.array_equal(before[f"y:{tf}"].numpy(), after[f"y:{tf}"].numpy()), tf


def test_revin_uses_visible_values_only():
    logp = np.zeros((1, 4, 4))
    logp[0, :, :] = np.array([1.0, 2.0, 100.0, 3.0])[:, None]
    vis = np.array([[True, True, False, True]])
    norm, mu, sigma = revin(logp, vis)
    assert mu[0] == 2.0
    assert np.isclose(sigma[0], np.sqrt(2.0 / 3.0))
    assert np.isclose(norm[0, 0, 0], -1.0 / np.sqrt(2.0 / 3.0))
