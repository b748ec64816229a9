"""Naive fillers for masked positions, scored on the same masks as the model.

* linear interpolation across the gap (the optimal predictor on a random walk),
* last-value carry (forward fill),
* the window mean of the visible values.
Edges without a visible bar on one side fall back to the nearest visible value.
"""

from __future__ import annotations

import torch

BASELINES: tuple[str, ...] = ("linear", "carry", "mean")


def _neighbours(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest visible bar at or before / at or after each position (-1 / L if none)."""
    B, L = mask.shape
    ar = torch.arange(L, device=mask.device).expand(B, L)
    left = torch.where(~mask, ar, torch.full_like(ar, -1)).cummax(dim=1).values
    right_src = torch.where(~mask, ar, torch.full_like(ar, L)).flip(1)
    right = right_src.cummin(dim=1).values.flip(1)
    return left, right


def fill(kind: str, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Baseline reconstruction (B, L, C) of `y` with masked positions filled by `kind`."""
    B, L, C = y.shape
    left, right = _neighbours(mask)
    has_l, has_r = left >= 0, right < L
    lv = torch.gather(y, 1, left.clamp(0, L - 1)[..., None].expand(B, L, C))
    rv = torch.gather(y, 1, right.clamp(0, L - 1)[..., None].expand(B, L, C))
    lv = torch.where(has_l[..., None], lv, rv)
    rv = torch.where(has_r[..., None], rv, lv)
    if kind == "linear":
        ar = torch.arange(L, device=y.device).expand(B, L)
        span = (right - left).clamp_min(1).to(y.dtype)
        frac = torch.where(has_l & has_r, (ar - left).to(y.dtype) / span, torch.zeros_like(span))
        out = lv + (rv - lv) * frac[..., None]
    elif kind == "carry":
        out = lv
    elif kind == "mean":
        vis = (~mask).to(y.dtype)[..., None]
        out = ((y * vis).sum(1, keepdim=True) / vis.sum(1, keepdim=True).clamp_min(1)).expand(B, L, C)
    else:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}")
    return torch.where(mask[..., None], out, y)
