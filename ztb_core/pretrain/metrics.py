"""Reconstruction metrics on masked positions, accumulated over a whole evaluation set.

Per method (the model or a baseline) and timeframe:
  mse / mae              normalised units (all four price channels, masked positions)
  mse_price / mae_price  price units (exp of the de-normalised log price)
  corr_level             Pearson correlation of masked close levels (reported, never a target:
                         any interpolation already scores about 0.95 on a random walk)
  corr_return            one-step close returns touching a masked bar (either end)
  corr_return_interior   returns with BOTH ends masked: what the filler had to invent (the target)
  mse_return_interior    their mean squared error (normalised units)
  corr_return_boundary   returns with exactly one end masked: the step into / out of a gap, where
  mse_return_boundary    a visible neighbour (the next bar's open) gives most of the answer away
  consistency            share of masked coarse bars (fully covered by the finer window) whose OHLC
                         matches the aggregate of the finer reconstruction within `tol` (coarse units)
  log_spectrum_error     mean |log power spectrum| difference of the close series (masked part filled)

Correlations are pooled over all windows (sums of products), so batch size does not change them.
The return statistics are also kept per window, so `bootstrap` can draw confidence intervals over
windows, paired across methods (the same resampled windows for the model and every baseline).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from .losses import CLOSE, aggregate_fine, composite, to_coarse_units

SPECTRUM_EPS = 1e-4
#: return subsets: all returns touching a masked bar, both ends masked, exactly one end masked
RETURN_KINDS: tuple[str, ...] = ("return", "return_interior", "return_boundary")
#: metrics whose higher value is better (the rest: lower is better)
HIGHER_IS_BETTER = frozenset({"corr_level", "consistency", *(f"corr_{k}" for k in RETURN_KINDS)})
#: the targets a verdict is given on
TARGETS: tuple[str, ...] = ("corr_return_interior", "mse_return_interior")
#: per-window sufficient statistics of a pair (x = prediction, y = truth)
_N, _SX, _SY, _SXX, _SYY, _SXY = range(6)


def return_subsets(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, L-1) selections of one-step returns r_t = c_t - c_{t-1} by how many ends are masked."""
    a, b = mask[:, 1:], mask[:, :-1]
    return {"return": a | b, "return_interior": a & b, "return_boundary": a ^ b}


def pair_stats(x: torch.Tensor, y: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """(B, 6) float64 per-row sums n, sx, sy, sxx, syy, sxy over the selected entries."""
    w = sel.double()
    x, y = x.double() * w, y.double() * w
    return torch.stack([w.sum(1), x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)], dim=1)


def corr_from(s: np.ndarray) -> np.ndarray:
    """Pearson correlation from summed statistics (..., 6); NaN where undefined."""
    n = s[..., _N]
    vx = n * s[..., _SXX] - s[..., _SX] ** 2
    vy = n * s[..., _SYY] - s[..., _SY] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * s[..., _SXY] - s[..., _SX] * s[..., _SY]) / np.sqrt(vx * vy)
    return np.where((n >= 3) & (vx > 0) & (vy > 0), r, np.nan)


def mse_from(s: np.ndarray) -> np.ndarray:
    """Mean squared difference of the pair from summed statistics (..., 6)."""
    n = s[..., _N]
    with np.errstate(invalid="ignore", divide="ignore"):
        v = (s[..., _SXX] - 2 * s[..., _SXY] + s[..., _SYY]) / n
    return np.where(n > 0, v, np.nan)


def value_of(metric: str, s: np.ndarray) -> np.ndarray:
    return corr_from(s) if metric.startswith("corr_") else mse_from(s)


def better(metric: str, a: float, b: float) -> bool:
    """a is strictly better than b for `metric` (NaN is never better)."""
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if metric in HIGHER_IS_BETTER else a < b


class ReconstructionMetrics:
    def __init__(self, timeframes: list[str], tol: float = 0.25):
        self.timeframes = list(timeframes)
        self.tol = tol
        self.sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.level: dict[tuple[str, str], torch.Tensor] = {}
        # (method, tf, return kind) -> list of (B, 6) per-window statistics, batch by batch
        self.windows: dict[tuple[str, str, str], list[torch.Tensor]] = defaultdict(list)

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
            lv = pair_stats(p[..., CLOSE], y[..., CLOSE], m).sum(0)
            self.level[(method, tf)] = self.level.get((method, tf), torch.zeros(6, dtype=torch.float64)) + lv
            rp = p[:, 1:, CLOSE] - p[:, :-1, CLOSE]
            rt = y[:, 1:, CLOSE] - y[:, :-1, CLOSE]
            for kind, sel in return_subsets(m).items():
                self.windows[(method, tf, kind)].append(pair_stats(rp, rt, sel))
            pp = torch.fft.rfft(p[..., CLOSE] - p[..., CLOSE].mean(1, keepdim=True)).abs() ** 2
            pt = torch.fft.rfft(y[..., CLOSE] - y[..., CLOSE].mean(1, keepdim=True)).abs() ** 2
            lse = (torch.log(pp[:, 1:] + SPECTRUM_EPS) - torch.log(pt[:, 1:] + SPECTRUM_EPS)).abs().mean(1)
            s["lse"] += float(lse.sum())
            s["windows"] += lse.numel()
        for fine, coarse in zip(self.timeframes[:-1], self.timeframes[1:], strict=True):
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

    def window_stats(self, method: str, tf: str, kind: str) -> np.ndarray:
        """(W, 6) per-window return statistics of one method, timeframe and return subset."""
        parts = self.windows.get((method, tf, kind))
        return torch.cat(parts).numpy() if parts else np.zeros((0, 6))

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        """{method: {tf: {metric: value}}}; NaN where a metric has no data (e.g. consistency of M1)."""
        out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for (method, tf), s in self.sums.items():
            n = max(s["n"], 1.0)
            row = {
                "mse": s["se"] / n,
                "mae": s["ae"] / n,
                "mse_price": s["se_price"] / n,
                "mae_price": s["ae_price"] / n,
                "corr_level": float(corr_from(self.level[(method, tf)].numpy())),
            }
            for kind in RETURN_KINDS:
                tot = self.window_stats(method, tf, kind).sum(0)
                row[f"corr_{kind}"] = float(corr_from(tot))
                if kind != "return":
                    row[f"mse_{kind}"] = float(mse_from(tot))
                    row[f"n_{kind}"] = float(tot[_N])
            row["consistency"] = s["cons_ok"] / s["cons_n"] if s.get("cons_n") else float("nan")
            row["log_spectrum_error"] = s["lse"] / max(s["windows"], 1.0)
            row["masked_values"] = s["n"]
            out[method][tf] = row
        return dict(out)

    def bootstrap(
        self, metrics: tuple[str, ...] = TARGETS, n_boot: int = 1000, seed: int = 0, level: float = 0.95
    ) -> dict[str, dict[str, dict[str, list[float]]]]:
        """Percentile intervals over windows: {method: {tf: {metric: [lo, hi]}}} (paired differences:
        `compare`)."""
        return {
            m: {tf: {k: v["interval"] for k, v in row.items()} for tf, row in per_tf.items()}
            for m, per_tf in self._boot(metrics, n_boot, seed, level).items()
        }

    def _weights(self, W: int, n_boot: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.multinomial(W, np.full(W, 1.0 / W), size=n_boot).astype(np.float64)  # (R, W)

    def _boot(self, metrics, n_boot, seed, level) -> dict:
        methods = sorted({m for m, _, _ in self.windows})
        out: dict = defaultdict(dict)
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        for tf in self.timeframes:
            W = len(self.window_stats(methods[0], tf, "return")) if methods else 0
            wts = self._weights(W, n_boot, seed) if W else None
            for method in methods:
                row: dict[str, dict[str, Any]] = {}
                for metric in metrics:
                    kind = metric.split("_", 1)[1]
                    s = self.window_stats(method, tf, kind)
                    if wts is None or len(s) != W:
                        row[metric] = {"samples": None, "interval": [float("nan")] * 2}
                        continue
                    vals = value_of(metric, wts @ s)
                    lo, hi = np.nanpercentile(vals, q) if np.isfinite(vals).any() else (float("nan"),) * 2
                    row[metric] = {"samples": vals, "interval": [float(lo), float(hi)]}
                out[method][tf] = row
        return dict(out)

    def compare(
        self,
        model: str = "model",
        baselines: tuple[str, ...] | None = None,
        metrics: tuple[str, ...] = TARGETS + ("corr_return_boundary", "mse_return_boundary"),
        n_boot: int = 1000,
        seed: int = 0,
        level: float = 0.95,
    ) -> dict[str, dict[str, dict]]:
        """The model against the STRONGEST baseline per timeframe and metric, with a paired bootstrap
        interval of the difference (model - strongest; same resampled windows for both).

        {tf: {metric: {model, model_interval, baseline, baseline_value, baseline_interval,
        diff, diff_interval, beats}}}; `beats` is True only when the whole interval of the
        difference lies on the better side."""
        point = self.compute()
        boot = self._boot(metrics, n_boot, seed, level)
        names = baselines or tuple(m for m in point if m != model)
        if not names:
            raise ValueError(f"compare: no baseline to compare {model!r} against")
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        out: dict[str, dict[str, dict]] = {}
        for tf in self.timeframes:
            out[tf] = {}
            for metric in metrics:
                best = names[0]
                for b in names[1:]:
                    if better(metric, point[b][tf][metric], point[best][tf][metric]):
                        best = b
                mv, bv = point[model][tf][metric], point[best][tf][metric]
                ms, bs = boot[model][tf][metric]["samples"], boot[best][tf][metric]["samples"]
                if ms is not None and bs is not None and np.isfinite(ms - bs).any():
                    dlo, dhi = (float(x) for x in np.nanpercentile(ms - bs, q))
                else:
                    dlo = dhi = float("nan")
                up = metric in HIGHER_IS_BETTER
                beats = bool(math.isfinite(dlo) and (dlo > 0 if up else dhi < 0))
                worse = bool(math.isfinite(dlo) and (dhi < 0 if up else dlo > 0))
                out[tf][metric] = {
                    "model": mv,
                    "model_interval": boot[model][tf][metric]["interval"],
                    "baseline": best,
                    "baseline_value": bv,
                    "baseline_interval": boot[best][tf][metric]["interval"],
                    "diff": mv - bv,
                    "diff_interval": [dlo, dhi],
                    "beats": beats,
                    "worse": worse,
                }
        return out
