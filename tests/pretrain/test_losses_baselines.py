import math

import numpy as np
import pytest
import torch

from ztb_core.pretrain.baselines import fill
from ztb_core.pretrain.losses import aggregate_fine, consistency_loss, correlation_loss, masked_huber, stft_loss
from ztb_core.pretrain.metrics import ReconstructionMetrics


def test_masked_huber_counts_masked_positions_only():
    pred = torch.zeros(1, 3, 4)
    target = torch.zeros(1, 3, 4)
    target[0, 0] = 10.0  # visible: ignored
    target[0, 1] = 0.5  # masked, quadratic zone: 0.5 * 0.25 = 0.125
    target[0, 2] = 3.0  # masked, linear zone: 1 * (3 - 0.5) = 2.5
    mask = torch.tensor([[False, True, True]])
    assert masked_huber(pred, target, mask, delta=1.0).item() == pytest.approx((0.125 + 2.5) / 2)


def _np_stft_mag(x: np.ndarray, n: int) -> np.ndarray:
    hop = max(1, n // 4)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann, as torch.hann_window
    frames = np.stack([x[..., i : i + n] * win for i in range(0, x.shape[-1] - n + 1, hop)], axis=-1)
    return np.abs(np.fft.rfft(frames, axis=-2))


def test_stft_loss_matches_a_hand_computed_spectrum():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((2, 32))
    p = t + 0.3 * rng.standard_normal((2, 32))
    expected = []
    for n in (8, 16):
        st, sp = _np_stft_mag(t, n), _np_stft_mag(p, n)
        sc = np.linalg.norm(st - sp) / (np.linalg.norm(st) + 1e-6)
        mag = np.abs(np.log(st + 1e-6) - np.log(sp + 1e-6)).mean()
        expected.append(sc + mag)
    got = stft_loss(torch.tensor(p, dtype=torch.bfloat16).float(), torch.tensor(t), [8, 16, 64])  # 64 > L: skipped
    exp_val = stft_loss(torch.tensor(p), torch.tensor(t), [8, 16]).item()
    assert exp_val == pytest.approx(float(np.mean(expected)), rel=1e-4)
    assert stft_loss(torch.tensor(t), torch.tensor(t), [8, 16]).item() == pytest.approx(0.0, abs=1e-6)
    # bf16 inputs are computed in float32 (CPU FFT rejects bf16)
    assert math.isfinite(
        stft_loss(torch.tensor(p, dtype=torch.bfloat16), torch.tensor(t, dtype=torch.bfloat16), [8]).item()
    )
    assert math.isfinite(got.item())


def test_consistency_aggregates_fine_ohlc_into_coarse_bars():
    # 4 fine bars -> 2 coarse bars (2 children each); identical normalisation for both windows
    fine = torch.tensor([[[1.0, 2.0, 0.5, 1.5], [1.5, 3.0, 1.0, 2.5], [2.5, 2.6, 2.0, 2.2], [2.2, 2.4, 1.8, 2.0]]])
    cpos = torch.tensor([[0, 0, 1, 1]])
    agg, has = aggregate_fine(fine, cpos, 2)
    assert has.all()
    assert torch.allclose(agg[0, 0], torch.tensor([1.0, 3.0, 0.5, 2.5]))
    assert torch.allclose(agg[0, 1], torch.tensor([2.5, 2.6, 1.8, 2.0]))
    coarse = torch.tensor([[[1.0, 3.0, 0.5, 2.5], [2.5, 2.6, 1.8, 3.0]]])  # second bar's close off by 1.0
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    mask = torch.tensor([[True, True]])
    loss = consistency_loss(fine, coarse, cpos, mask, zero, one, zero, one, delta=1.0)
    assert loss.item() == pytest.approx(0.5 / 8)  # one element off by 1 -> huber 0.5, mean over 2 bars x 4
    # a different fine scale is re-expressed in coarse units first: fine sigma 2 doubles the fine values
    loss2 = consistency_loss(fine / 2, coarse, cpos, mask, zero, one * 2, zero, one, delta=1.0)
    assert loss2.item() == pytest.approx(0.5 / 8)


def test_correlation_loss_phase_and_amplitude_by_hand():
    target = torch.tensor([[0.0, 1.0, 3.0, 2.0, 5.0, 5.0]])
    mask = torch.tensor([[False, True, True, True, False, False]])
    # returns touching the mask: t=1..4 -> target returns [1, 2, -1, 3]
    pred_same = target.clone()
    ph, am = correlation_loss(pred_same, target, mask)
    assert ph.item() == pytest.approx(0.0, abs=1e-5) and am.item() == pytest.approx(0.0, abs=1e-5)
    pred_scaled = torch.tensor([[0.0, 2.0, 6.0, 4.0, 10.0, 0.0]])  # returns doubled (last return untouched by mask)
    ph, am = correlation_loss(pred_scaled, target, mask)
    assert ph.item() == pytest.approx(0.0, abs=1e-5)
    assert am.item() == pytest.approx(math.log(2.0), abs=1e-4)
    r_t = np.array([1.0, 2.0, -1.0, 3.0])
    r_p = np.array([1.0, -2.0, 1.0, 0.0])
    pred = torch.tensor([[0.0, *np.cumsum(r_p).tolist(), 9.0]])
    ph, _ = correlation_loss(pred, target, mask)
    assert ph.item() == pytest.approx(1 - np.corrcoef(r_p, r_t)[0, 1], abs=1e-4)


def test_baselines_fill_gaps_by_hand():
    y = torch.tensor([[[0.0], [9.0], [9.0], [3.0], [4.0]]])
    mask = torch.tensor([[False, True, True, False, True]])
    assert fill("linear", y, mask)[0, :, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0, 3.0])
    assert fill("carry", y, mask)[0, :, 0].tolist() == pytest.approx([0.0, 0.0, 0.0, 3.0, 3.0])
    assert fill("mean", y, mask)[0, :, 0].tolist() == pytest.approx([0.0, 1.5, 1.5, 3.0, 1.5])
    lead = torch.tensor([[True, False, False, False, False]])
    assert fill("linear", y, lead)[0, 0, 0].item() == 9.0  # no left neighbour: nearest visible value


def test_metrics_pool_correlations_and_price_errors():
    L = 8
    y = torch.linspace(-1, 1, L).reshape(1, L, 1).repeat(1, 1, 4)
    mask = torch.zeros(1, L, dtype=torch.bool)
    mask[0, 2:5] = True
    batch = {
        "y:M1": y,
        "mask:M1": mask,
        "mu:M1": torch.tensor([math.log(100.0)], dtype=torch.float64),
        "sigma:M1": torch.tensor([0.01], dtype=torch.float64),
    }
    acc = ReconstructionMetrics(["M1"])
    acc.update("model", {"M1": y + 0.1}, batch)
    r = acc.compute()["model"]["M1"]
    assert r["mse"] == pytest.approx(0.01, rel=1e-6)
    assert r["mae_price"] == pytest.approx(
        np.mean(100 * np.exp(0.01 * (y[0, 2:5, 0].numpy() + 0.1)) - 100 * np.exp(0.01 * y[0, 2:5, 0].numpy())), rel=1e-4
    )
    assert r["corr_level"] == pytest.approx(1.0)
