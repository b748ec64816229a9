"""Training losses. Each takes normalised tensors and returns a scalar; `total_loss` weights them.

* masked Huber: reconstruction error on masked positions only;
* multi-resolution STFT: spectral convergence + log-magnitude distance of the close series with
  the masked part filled by the model, at several FFT sizes, always in float32 (CPU FFT rejects
  bf16, and half-precision spectra are too coarse anyway);
* cross-timeframe consistency: coarse bars aggregated from the fine reconstruction (first open,
  max high, min low, last close) must agree with the coarse reconstruction;
* amplitude/phase correlation: on one-step returns touching masked spans, 1 - Pearson correlation
  (phase) plus the absolute log ratio of their standard deviations (amplitude).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6
CLOSE = 3


def composite(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Target where visible, prediction where masked (B, L, C)."""
    return torch.where(mask[..., None], pred, target)


def masked_huber(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    m = mask[..., None].expand_as(pred)
    if not bool(m.any()):
        return pred.sum() * 0.0
    return F.huber_loss(pred[m].float(), target[m].float(), delta=delta)


def stft_loss(pred: torch.Tensor, target: torch.Tensor, ffts: list[int]) -> torch.Tensor:
    """Multi-resolution STFT loss of (B, L) series; resolutions longer than L are skipped."""
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p, t = pred.float(), target.float()
        losses = []
        for n in ffts:
            if p.shape[-1] < n:
                continue
            win = torch.hann_window(n, device=p.device, dtype=torch.float32)
            hop = max(1, n // 4)
            sp = torch.stft(p, n, hop_length=hop, win_length=n, window=win, center=False, return_complex=True).abs()
            st = torch.stft(t, n, hop_length=hop, win_length=n, window=win, center=False, return_complex=True).abs()
            sc = torch.linalg.norm(st - sp) / (torch.linalg.norm(st) + EPS)
            mag = (torch.log(st + EPS) - torch.log(sp + EPS)).abs().mean()
            losses.append(sc + mag)
        if not losses:
            return pred.sum() * 0.0
        return torch.stack(losses).mean()


def aggregate_fine(fine: torch.Tensor, cpos: torch.Tensor, n_coarse: int) -> tuple[torch.Tensor, torch.Tensor]:
    """OHLC of coarse bars built from fine bars. fine: (B, Lf, 4); cpos: (B, Lf) coarse position or -1.
    Returns (agg (B, Lc, 4), has_children (B, Lc) bool)."""
    B, Lf, _ = fine.shape
    fine = fine.float()
    valid = cpos >= 0
    group = torch.where(valid, cpos + torch.arange(B, device=fine.device)[:, None] * n_coarse, B * n_coarse)
    g = group.reshape(-1)
    size = B * n_coarse + 1  # one dump slot for fine bars without a coarse parent
    pos = torch.arange(Lf, device=fine.device).expand(B, Lf).reshape(-1)
    first = torch.full((size,), Lf, device=fine.device, dtype=pos.dtype).scatter_reduce(0, g, pos, "amin")
    last = torch.full((size,), -1, device=fine.device, dtype=pos.dtype).scatter_reduce(0, g, pos, "amax")
    flat = fine.reshape(-1, 4)
    is_first = (pos == first[g]).float()
    is_last = (pos == last[g]).float()
    o = torch.zeros(size, device=fine.device).index_add(0, g, flat[:, 0] * is_first)
    c = torch.zeros(size, device=fine.device).index_add(0, g, flat[:, 3] * is_last)
    h = torch.full((size,), -float("inf"), device=fine.device).scatter_reduce(0, g, flat[:, 1], "amax")
    low = torch.full((size,), float("inf"), device=fine.device).scatter_reduce(0, g, flat[:, 2], "amin")
    agg = torch.stack([o, h, low, c], dim=1)[:-1].reshape(B, n_coarse, 4)
    has = (last[:-1] >= 0).reshape(B, n_coarse)
    return torch.where(has[..., None], agg, torch.zeros_like(agg)), has


def to_coarse_units(
    fine_norm: torch.Tensor, mu_f: torch.Tensor, sig_f: torch.Tensor, mu_c: torch.Tensor, sig_c: torch.Tensor
) -> torch.Tensor:
    """Re-express fine-window normalised prices in the coarse window's normalisation."""
    ratio = (sig_f / sig_c).float()[:, None, None]
    shift = ((mu_f - mu_c) / sig_c).float()[:, None, None]
    return fine_norm.float() * ratio + shift


def consistency_loss(
    fine: torch.Tensor,
    coarse: torch.Tensor,
    cpos: torch.Tensor,
    coarse_mask: torch.Tensor,
    mu_f,
    sig_f,
    mu_c,
    sig_c,
    delta: float = 1.0,
) -> torch.Tensor:
    """Huber distance between coarse reconstructions and the aggregate of fine reconstructions, over
    masked coarse bars that the fine window covers completely. Inputs are composites (visible = truth)."""
    agg, has = aggregate_fine(to_coarse_units(fine, mu_f, sig_f, mu_c, sig_c), cpos, coarse.shape[1])
    sel = has & coarse_mask
    if not bool(sel.any()):
        return coarse.sum() * 0.0
    return F.huber_loss(coarse.float()[sel], agg[sel], delta=delta)


def masked_returns(series: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step differences (B, L-1) and where they touch a masked bar (either end)."""
    return series[:, 1:] - series[:, :-1], mask[:, 1:] | mask[:, :-1]


def returns_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE of one-step returns of (B, L) composite series, over returns touching a masked bar."""
    with torch.autocast(device_type=pred.device.type, enabled=False):
        rp, sel = masked_returns(pred.float(), mask)
        rt, _ = masked_returns(target.float(), mask)
        if not bool(sel.any()):
            return pred.sum() * 0.0
        return ((rp - rt)[sel] ** 2).mean()


def correlation_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(phase, amplitude) losses on masked returns of (B, L) composite series; windows with fewer
    than 3 such returns are skipped."""
    with torch.autocast(device_type=pred.device.type, enabled=False):
        rp, sel = masked_returns(pred.float(), mask)
        rt, _ = masked_returns(target.float(), mask)
        w = sel.float()
        n = w.sum(dim=1)
        ok = n >= 3
        if not bool(ok.any()):
            zero = pred.sum() * 0.0
            return zero, zero
        n = n.clamp_min(1)
        mp = (rp * w).sum(1) / n
        mt = (rt * w).sum(1) / n
        dp, dt = (rp - mp[:, None]) * w, (rt - mt[:, None]) * w
        vp, vt = (dp * dp).sum(1), (dt * dt).sum(1)
        corr = (dp * dt).sum(1) / torch.sqrt(vp * vt + EPS)
        phase = (1.0 - corr)[ok].mean()
        # log std ratio as half the log variance ratio, EPS inside the log: sqrt has an infinite
        # gradient at 0, and a bridge fill across a flat gap predicts returns of variance exactly 0
        amp = (0.5 * (torch.log(vp / n + EPS) - torch.log(vt / n + EPS))).abs()[ok].mean()
        return phase, amp


def total_loss(
    recon: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], timeframes: list[str], cfg
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of all losses (averaged over timeframes / timeframe pairs) and the parts."""
    parts: dict[str, list[torch.Tensor]] = {
        "huber": [],
        "stft": [],
        "consistency": [],
        "phase": [],
        "amplitude": [],
        "returns": [],
    }
    comp = {}
    for tf in timeframes:
        pred, y, m = recon[tf], batch[f"y:{tf}"], batch[f"mask:{tf}"]
        comp[tf] = composite(pred.float(), y, m)
        parts["huber"].append(masked_huber(pred, y, m, cfg.huber_delta))
        if cfg.stft > 0:
            parts["stft"].append(stft_loss(comp[tf][..., CLOSE], y[..., CLOSE], cfg.stft_ffts))
        if cfg.returns > 0:
            parts["returns"].append(returns_loss(comp[tf][..., CLOSE], y[..., CLOSE], m))
        if cfg.correlation > 0:
            ph, am = correlation_loss(comp[tf][..., CLOSE], y[..., CLOSE], m)
            parts["phase"].append(ph)
            parts["amplitude"].append(am)
    if cfg.consistency > 0:
        for fine, coarse in zip(timeframes[:-1], timeframes[1:], strict=True):
            parts["consistency"].append(
                consistency_loss(
                    comp[fine],
                    comp[coarse],
                    batch[f"cpos:{fine}"],
                    batch[f"mask:{coarse}"],
                    batch[f"mu:{fine}"],
                    batch[f"sigma:{fine}"],
                    batch[f"mu:{coarse}"],
                    batch[f"sigma:{coarse}"],
                    cfg.huber_delta,
                )
            )
    means = {k: torch.stack(v).mean() for k, v in parts.items() if v}
    total = cfg.huber * means["huber"]
    if "stft" in means:
        total = total + cfg.stft * means["stft"]
    if "consistency" in means:
        total = total + cfg.consistency * means["consistency"]
    if "phase" in means:
        total = total + cfg.correlation * (means["phase"] + means["amplitude"])
    if "returns" in means:
        total = total + cfg.returns * means["returns"]
    means["total"] = total
    return total, means
