"""Reconstruction metrics on masked positions, accumulated over a whole evaluation set.

Per method (the model or a baseline) and timeframe:
  mse / mae            normalised units (all four price channels, masked positions)
  mse_price / mae_price  price units (exp of the de-normalised log price)
  corr_level           Pearson correlation of masked close levels (reported; no target: linear
                       interpolation already scores about 0.95 on a random walk)
  corr_return          Pearson correlation of one-step close returns touching masked spans (the
                       honest one: linear interpolation scores about 0.2-0.3)
  consistency          share of masked coarse bars (fully covered by the finer window) whose OHLC
                       matches the aggregate of the finer reconstruction within `tol` (coarse units)
  log_spectrum_error   mean |log power spectrum| difference of the close series (masked part filled)
Correlations are pooled over all windows (sums of products), so batch size does not change them.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from .losses import CLOSE, aggregate_fine, composite, masked_returns, to_coarse_units

SPECTRUM_EPS = 1e-4


class _Pearson:
    __slots__ = ("n", "sx", "sy", "sxx", "syy", "sxy")

    def __init__(self) -> None:
        self.n = self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double(), y.double()
        self.n += x.numel()
        self.sx += float(x.sum())
        self.sy += float(y.sum())
        self.sxx += float((x * x).sum())
        self.syy += float((y * y).sum())
        self.sxy += float((x * y).sum())

    def value(self) -> float:
        if self.n < 3:
            return float("nan")
        vx = self.n * self.sxx - self.sx**2
        vy = self.n * self.syy - self.sy**2
        if vx <= 0 or vy <= 0:
            return float("nan")
        return (self.n * self.sxy - self.sx * self.sy) / math.sqrt(vx * vy)


class ReconstructionMetrics:
    def __init__(self, timeframes: list[str], tol: float = 0.25):
        self.timeframes = list(timeframes)
        self.tol = tol
        self.sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.level: dict[tuple[str, str], _Pearson] = defaultdict(_Pearson)
        self.ret: dict[tuple[str, str], _Pearson] = defaultdict(_Pearson)

    @torch.no_grad()
    def update(self, method: str, recon: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        comps = {}
        for tf in self.timeframes:
            y, m = batch[f"y:{tf}"].double(), batch[f"mask:{tf}"]
            p = composite(recon[tf].double(), y, m)
            comps[tf] = p
            s = self.sums[(method, tf)]
            mm = m[..., None].expand_as(y)
            err = (p - y)[mm]
            s["n"] += err.numel()
            s["se"] += float((err * err).sum())
            s["ae"] += float(err.abs().sum())
            mu, sig = batch[f"mu:{tf}"].double()[:, None, None], batch[f"sigma:{tf}"].double()[:, None, None]
            perr = (torch.exp(p * sig + mu) - torch.exp(y * sig + mu))[mm]
            s["se_price"] += float((perr * perr).sum())
            s["ae_price"] += float(perr.abs().sum())
            self.level[(method, tf)].add(p[..., CLOSE][m], y[..., CLOSE][m])
            rp, sel = masked_returns(p[..., CLOSE], m)
            rt, _ = masked_returns(y[..., CLOSE], m)
            self.ret[(method, tf)].add(rp[sel], rt[sel])
            pp = torch.fft.rfft(p[..., CLOSE] - p[..., CLOSE].mean(1, keepdim=True)).abs() ** 2
            pt = torch.fft.rfft(y[..., CLOSE] - y[..., CLOSE].mean(1, keepdim=True)).abs() ** 2
            lse = (torch.log(pp[:, 1:] + SPECTRUM_EPS) - torch.log(pt[:, 1:] + SPECTRUM_EPS)).abs().mean(1)
            s["lse"] += float(lse.sum())
            s["windows"] += lse.numel()
        for fine, coarse in zip(self.timeframes[:-1], self.timeframes[1:]):
            f_in_c = to_coarse_units(
                comps[fine],
                batch[f"mu:{fine}"],
                batch[f"sigma:{fine}"],
                batch[f"mu:{coarse}"],
                batch[f"sigma:{coarse}"],
            )
            agg, has = aggregate_fine(f_in_c, batch[f"cpos:{fine}"], comps[coarse].shape[1])
            sel = has & batch[f"mask:{coarse}"]
            dev = (agg.double() - comps[coarse]).abs().amax(dim=2)[sel]
            s = self.sums[(method, coarse)]
            s["cons_n"] += dev.numel()
            s["cons_ok"] += float((dev <= self.tol).sum())

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        """{method: {tf: {metric: value}}}; NaN where a metric has no data (e.g. consistency of M1)."""
        out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for (method, tf), s in self.sums.items():
            n = max(s["n"], 1.0)
            out[method][tf] = {
                "mse": s["se"] / n,
                "mae": s["ae"] / n,
                "mse_price": s["se_price"] / n,
                "mae_price": s["ae_price"] / n,
                "corr_level": self.level[(method, tf)].value(),
                "corr_return": self.ret[(method, tf)].value(),
                "consistency": s["cons_ok"] / s["cons_n"] if s.get("cons_n") else float("nan"),
                "log_spectrum_error": s["lse"] / max(s["windows"], 1.0),
                "masked_values": s["n"],
            }
        return dict(out)
