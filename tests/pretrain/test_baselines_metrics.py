"""The naive fillers use everything a simple rule can see and nothing else; the metrics split
interior from boundary returns and compare the model with the strongest filler."""

import numpy as np
import pytest
import torch

from ztb_core.pretrain.baselines import BASELINES, cross_fill, fill, fill_all
from ztb_core.pretrain.dataset import to_tensors
from ztb_core.pretrain.losses import aggregate_fine, composite, to_coarse_units
from ztb_core.pretrain.metrics import ReconstructionMetrics, return_subsets
from ztb_core.pretrain.prepare import prepare

from .conftest import tiny_config


def _ohlc(opens, closes):
    o, c = torch.tensor(opens, dtype=torch.float64), torch.tensor(closes, dtype=torch.float64)
    return torch.stack([o, torch.maximum(o, c), torch.minimum(o, c), c], dim=1)[None]


def test_bridge_pins_the_gap_to_the_next_visible_open_and_keeps_ohlc_consistent():
    y = _ohlc([0, 9, 9, 9, 3, 4], [0, 9, 9, 9, 4, 5])
    mask = torch.tensor([[False, True, True, True, False, False]])
    b = fill("bridge", y, mask)[0]
    assert b[:, 3].tolist() == pytest.approx([0, 1, 2, 3, 4, 5])  # last masked close = next open (3)
    assert b[1:4, 0].tolist() == pytest.approx([0, 1, 2])  # open = previous close
    assert (b[:, 1] >= b[:, [0, 3]].amax(1)).all() and (b[:, 2] <= b[:, [0, 3]].amin(1)).all()
    # channel-wise linear interpolation ignores the open and aims at the next close instead
    assert fill("linear", y, mask)[0, 3, 3].item() == pytest.approx(3.0)
    assert fill("linear", y, mask)[0, 1, 3].item() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def real_batch(tmp_path_factory):
    from .conftest import sine_market

    cfg = tiny_config(tmp_path_factory.mktemp("b"))
    prepared = prepare(cfg, m1=sine_market(12_000))
    pos = prepared.split_positions("val")[:64]
    rng = np.random.default_rng(0)
    return cfg, to_tensors(prepared.arrays.make_batch(pos, rng=rng, mask_cfg=cfg.mask))


def test_no_baseline_reads_a_masked_value(real_batch):
    cfg, batch = real_batch
    tfs = cfg.window.timeframes
    before = fill_all(batch, tfs)
    poisoned = dict(batch)
    for tf in tfs:  # masked truth replaced by garbage: no filler may change
        m = batch[f"mask:{tf}"]
        poisoned[f"y:{tf}"] = torch.where(m[..., None], torch.full_like(batch[f"y:{tf}"], 1e3), batch[f"y:{tf}"])
    after = fill_all(poisoned, tfs)
    for kind in BASELINES:
        for tf in tfs:
            m = batch[f"mask:{tf}"][..., None].expand_as(before[kind][tf])
            assert torch.equal(before[kind][tf][m], after[kind][tf][m]), (kind, tf)
    # positive control: a filler that peeks at the masked truth does change
    peek = torch.where(batch["mask:M1"][..., None], poisoned["y:M1"], before["bridge"]["M1"])
    assert not torch.equal(peek, before["bridge"]["M1"])


def test_cross_fill_aggregates_fine_children_into_masked_coarse_bars(real_batch):
    cfg, batch = real_batch
    out = cross_fill(batch, ["M1", "M5"])
    f_in_c = to_coarse_units(out["M1"], batch["mu:M1"], batch["sigma:M1"], batch["mu:M5"], batch["sigma:M5"])
    agg, has = aggregate_fine(f_in_c, batch["cpos:M1"], batch["y:M5"].shape[1])
    sel = has & batch["mask:M5"]
    assert sel.sum() > 10  # synchronised masks hide coarse bars whose children are mostly visible
    assert torch.allclose(out["M5"][sel].float(), agg[sel], atol=1e-5)
    bridge_m5 = fill("bridge", batch["y:M5"].double(), batch["mask:M5"])
    assert not torch.allclose(out["M5"][sel], bridge_m5[sel])


def test_cross_fill_pins_a_fine_gap_to_a_visible_coarse_close():
    # two M5 bars over ten M1 bars; M1 bars 2..8 masked, the coarse bars left visible (hand-made mask)
    closes = [0.0, 1, 2, 3, 8, 5, 6, 7, 8, 9]
    y1 = _ohlc([0.0] + closes[:-1], closes)
    y5 = _ohlc([0.0, 4.0], [8.0, 9.0])  # M5 bar 0 closes at the close of M1 bar 4 (= 8)
    m1 = torch.zeros(1, 10, dtype=torch.bool)
    m1[0, 2:9] = True
    batch = {
        "y:M1": y1,
        "mask:M1": m1,
        "y:M5": y5,
        "mask:M5": torch.zeros(1, 2, dtype=torch.bool),
        "cpos:M1": torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]]),
    }
    for tf in ("M1", "M5"):
        batch[f"mu:{tf}"] = torch.zeros(1, dtype=torch.float64)
        batch[f"sigma:{tf}"] = torch.ones(1, dtype=torch.float64)
    out = cross_fill(batch, ["M1", "M5"])["M1"][0, :, 3]
    assert out[4].item() == pytest.approx(8.0)  # pinned by the coarse close, not interpolated
    assert fill("bridge", y1, m1)[0, 4, 3].item() != pytest.approx(8.0)


def test_interior_and_boundary_returns_by_hand():
    mask = torch.tensor([[False, True, True, True, False]])
    s = return_subsets(mask)
    assert s["return_interior"][0].tolist() == [False, True, True, False]
    assert s["return_boundary"][0].tolist() == [True, False, False, True]
    assert s["return"][0].tolist() == [True, True, True, True]


def _batch(n=200, L=32, seed=0):
    rng = np.random.default_rng(seed)
    close = np.cumsum(rng.standard_normal((n, L)), axis=1)
    y = torch.tensor(np.stack([close, close, close, close], axis=2))
    mask = torch.zeros(n, L, dtype=torch.bool)
    mask[:, 10:20] = True
    return {
        "y:M1": y,
        "mask:M1": mask,
        "mu:M1": torch.zeros(n, dtype=torch.float64),
        "sigma:M1": torch.full((n,), 0.001, dtype=torch.float64),
    }


def test_compare_picks_the_strongest_baseline_and_needs_the_whole_interval():
    batch = _batch()
    acc = ReconstructionMetrics(["M1"])
    y, m = batch["y:M1"], batch["mask:M1"]
    acc.update("model", {"M1": y}, batch)  # perfect: must beat every baseline
    acc.update("linear", {"M1": fill("linear", y, m)}, batch)
    acc.update("carry", {"M1": fill("carry", y, m)}, batch)
    c = acc.compare("model", ("linear", "carry"), n_boot=200)["M1"]
    assert c["corr_return_interior"]["baseline"] == "linear" and c["corr_return_interior"]["beats"]
    assert c["mse_return_interior"]["beats"]
    # a "model" equal to the linear filler beats nothing (difference exactly zero)
    acc2 = ReconstructionMetrics(["M1"])
    lin = fill("linear", y, m)
    acc2.update("model", {"M1": lin}, batch)
    acc2.update("linear", {"M1": lin}, batch)
    acc2.update("carry", {"M1": fill("carry", y, m)}, batch)
    c2 = acc2.compare("model", ("linear", "carry"), n_boot=200)["M1"]
    assert not c2["mse_return_interior"]["beats"] and not c2["mse_return_interior"]["worse"]
    # a noisy model is worse than the strongest baseline, and says so
    acc3 = ReconstructionMetrics(["M1"])
    acc3.update("model", {"M1": composite(lin + torch.randn_like(lin) * 3, y, m)}, batch)
    acc3.update("linear", {"M1": lin}, batch)
    c3 = acc3.compare("model", ("linear",), n_boot=200)["M1"]
    assert c3["mse_return_interior"]["worse"] and c3["corr_return_interior"]["worse"]
    lo, hi = c3["mse_return_interior"]["model_interval"]
    assert lo <= c3["mse_return_interior"]["model"] <= hi


def test_residual_model_starts_exactly_at_the_bridge_and_reads_only_its_inputs(real_batch):
    from ztb_core.pretrain.model import MultiTimeframeAutoencoder

    cfg, batch = real_batch
    tfs = cfg.window.timeframes
    mcfg = cfg.model.model_copy(update={"residual": "bridge"})
    model = MultiTimeframeAutoencoder(tfs, cfg.window.lengths(), mcfg).eval()
    with torch.no_grad():
        recon, _ = model({tf: batch[f"x:{tf}"] for tf in tfs})
    for tf in tfs:
        m = batch[f"mask:{tf}"]
        want = fill("bridge", batch[f"y:{tf}"], m)
        assert torch.allclose(recon[tf][m], want[m], atol=1e-5), tf
    plain = MultiTimeframeAutoencoder(tfs, cfg.window.lengths(), cfg.model).eval()
    with torch.no_grad():
        r2, _ = plain({tf: batch[f"x:{tf}"] for tf in tfs})
    assert not torch.allclose(
        r2["M1"][batch["mask:M1"]], fill("bridge", batch["y:M1"], batch["mask:M1"])[batch["mask:M1"]]
    )


def test_returns_loss_by_hand_and_weighted_into_the_total(real_batch):
    from ztb_core.pretrain.losses import returns_loss, total_loss

    target = torch.tensor([[0.0, 1.0, 3.0, 2.0, 2.0]])
    pred = torch.tensor([[0.0, 2.0, 2.0, 2.0, 2.0]])
    mask = torch.tensor([[False, True, True, True, False]])
    # returns touching masked bars: (2-0, 0, 0, 0) vs (1, 2, -1, 0)
    assert returns_loss(pred, target, mask).item() == pytest.approx(((1) ** 2 + 2**2 + 1**2 + 0) / 4)
    cfg, batch = real_batch
    recon = {tf: batch[f"y:{tf}"] + 0.1 * torch.randn_like(batch[f"y:{tf}"]) for tf in cfg.window.timeframes}
    lc = cfg.loss.model_copy(update={"returns": 0.0})
    t0, parts0 = total_loss(recon, batch, cfg.window.timeframes, lc)
    t1, parts1 = total_loss(recon, batch, cfg.window.timeframes, lc.model_copy(update={"returns": 2.0}))
    assert "returns" not in parts0 and t1.item() == pytest.approx(t0.item() + 2.0 * parts1["returns"].item(), rel=1e-5)
