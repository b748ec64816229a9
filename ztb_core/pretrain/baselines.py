"""Naive fillers for masked positions, scored on the same masks as the model.

A filler sees exactly what the model sees (the visible bars of every timeframe) and nothing else:

* ``linear``: channel-by-channel linear interpolation across the gap;
* ``carry``: last visible value (forward fill);
* ``mean``: the window mean of the visible values;
* ``bridge``: open-aware Brownian-bridge mean. OHLC bars are consistent (a bar's open is, most of
  the time, the previous bar's close: exactly on the synthetic market, in about two thirds of
  USD/JPY minutes), so the gap's last close is pinned to the next visible **open**, and the closes
  in between follow the straight line in log price from the last visible close to it (the expected
  path of a Brownian bridge). Masked opens are the previous close; high/low the max/min of the two.
  On a random walk this is the optimal predictor;
* ``cross``: ``bridge`` plus what coarser and finer timeframes show: a visible coarse bar pins the
  close of its last fine child (coarse -> fine), and a masked coarse bar whose fine children lie
  in the finer window is the aggregate (first open, max high, min low, last close) of those
  children, the visible ones as they are and the masked ones from this filler (fine -> coarse).
  With the synchronised masks (`masking.py`) a coarse bar over a masked fine span is itself
  masked, so the coarse -> fine part only fires on hand-made masks; fine -> coarse fires often.

Edges without a visible bar on one side fall back to the nearest anchor. Everything works in the
per-window normalised units, an affine map of log price, so "linear in log price" is linear here.
"""

from __future__ import annotations

import torch

from .losses import aggregate_fine, to_coarse_units

OPEN, HIGH, LOW, CLOSE = 0, 1, 2, 3
#: fillers of one timeframe (`fill`); `cross` needs all timeframes of a batch (`fill_all`)
SINGLE: tuple[str, ...] = ("linear", "carry", "mean", "bridge")
BASELINES: tuple[str, ...] = SINGLE + ("cross",)


def _neighbours(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest visible bar at or before / at or after each position (-1 / L if none)."""
    B, L = mask.shape
    ar = torch.arange(L, device=mask.device).expand(B, L)
    left = torch.where(~mask, ar, torch.full_like(ar, -1)).cummax(dim=1).values
    right_src = torch.where(~mask, ar, torch.full_like(ar, L)).flip(1)
    right = right_src.cummin(dim=1).values.flip(1)
    return left, right


def interpolate(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(B, L, C) values with positions where `known` is False replaced by the straight line between
    the nearest known positions (nearest known value beyond the first / last one). Only values at
    known positions are read."""
    B, L, C = values.shape
    hidden = ~known
    left, right = _neighbours(hidden)
    has_l, has_r = left >= 0, right < L
    lv = torch.gather(values, 1, left.clamp(0, L - 1)[..., None].expand(B, L, C))
    rv = torch.gather(values, 1, right.clamp(0, L - 1)[..., None].expand(B, L, C))
    lv = torch.where(has_l[..., None], lv, rv)
    rv = torch.where(has_r[..., None], rv, lv)
    ar = torch.arange(L, device=values.device).expand(B, L)
    span = (right - left).clamp_min(1).to(values.dtype)
    frac = torch.where(has_l & has_r, (ar - left).to(values.dtype) / span, torch.zeros_like(span))
    out = lv + (rv - lv) * frac[..., None]
    # a row with no known position at all keeps its values (callers only pass rows with anchors)
    return torch.where(known.any(dim=1, keepdim=True)[..., None], out, values)


def close_anchors(y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (B, L), known (B, L)) of the close series a simple rule can pin: visible closes, and
    the close of a masked bar followed by a visible bar = that bar's open."""
    close = y[..., CLOSE]
    known = ~mask
    next_open = torch.cat([y[:, 1:, OPEN], y[:, -1:, OPEN]], dim=1)
    next_visible = torch.cat([~mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    pin = mask & next_visible
    return torch.where(pin, next_open, close), known | pin


def bars_from_closes(close: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OHLC of masked bars from a filled close series: open = previous close, high/low = max/min."""
    prev = torch.cat([close[:, :1], close[:, :-1]], dim=1)
    ohlc = torch.stack([prev, torch.maximum(prev, close), torch.minimum(prev, close), close], dim=2)
    return torch.where(mask[..., None], ohlc.to(y.dtype), y)


def bridge(
    y: torch.Tensor,
    mask: torch.Tensor,
    extra_values: torch.Tensor | None = None,
    extra_known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Open-aware bridge fill (B, L, 4); `extra_*` add close anchors at masked positions (cross)."""
    values, known = close_anchors(y, mask)
    if extra_values is not None and extra_known is not None:
        add = extra_known & ~known
        values, known = torch.where(add, extra_values, values), known | add
    close = interpolate(values[..., None], known)[..., 0]
    return bars_from_closes(close, y, mask)


def fill(kind: str, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Baseline reconstruction (B, L, C) of `y` with masked positions filled by a one-timeframe `kind`."""
    B, L, C = y.shape
    if kind == "linear":
        out = interpolate(y, ~mask)
    elif kind == "carry":
        left, right = _neighbours(mask)
        src = torch.where(left >= 0, left, right).clamp(0, L - 1)
        out = torch.gather(y, 1, src[..., None].expand(B, L, C))
    elif kind == "mean":
        vis = (~mask).to(y.dtype)[..., None]
        out = ((y * vis).sum(1, keepdim=True) / vis.sum(1, keepdim=True).clamp_min(1)).expand(B, L, C)
    elif kind == "bridge":
        out = bridge(y, mask)
    else:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {SINGLE} (cross: fill_all)")
    return torch.where(mask[..., None], out, y)


def _last_child(cpos: torch.Tensor) -> torch.Tensor:
    """(B, Lf) True at the last fine bar of each coarse bar in `cpos` (coarse position or -1)."""
    nxt = torch.cat([cpos[:, 1:], torch.full_like(cpos[:, :1], -1)], dim=1)
    return (cpos >= 0) & (nxt != cpos)


def cross_fill(batch: dict[str, torch.Tensor], timeframes: list[str]) -> dict[str, torch.Tensor]:
    """The `cross` filler for every timeframe of a batch (finest first, see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    for k, tf in enumerate(timeframes):
        y, m = batch[f"y:{tf}"].double(), batch[f"mask:{tf}"]
        extra_v = extra_k = None
        if k + 1 < len(timeframes):  # coarse -> fine: a visible coarse bar pins its last child's close
            coarse = timeframes[k + 1]
            cpos = batch[f"cpos:{tf}"]
            yc, mc = batch[f"y:{coarse}"].double(), batch[f"mask:{coarse}"]
            safe = cpos.clamp_min(0)
            c_close = torch.gather(yc[..., CLOSE], 1, safe)
            c_vis = torch.gather(~mc, 1, safe)
            mu_f, sig_f = batch[f"mu:{tf}"].double()[:, None], batch[f"sigma:{tf}"].double()[:, None]
            mu_c, sig_c = batch[f"mu:{coarse}"].double()[:, None], batch[f"sigma:{coarse}"].double()[:, None]
            extra_v = (c_close * sig_c + mu_c - mu_f) / sig_f
            extra_k = _last_child(cpos) & c_vis & m
        filled = bridge(y, m, extra_v, extra_k)
        if k > 0:  # fine -> coarse: masked coarse bars with all children in the finer window
            fine = timeframes[k - 1]
            f_in_c = to_coarse_units(
                out[fine], batch[f"mu:{fine}"], batch[f"sigma:{fine}"], batch[f"mu:{tf}"], batch[f"sigma:{tf}"]
            )
            agg, has = aggregate_fine(f_in_c, batch[f"cpos:{fine}"], y.shape[1])
            filled = torch.where((has & m)[..., None], agg.to(filled.dtype), filled)
        out[tf] = torch.where(m[..., None], filled, y)
    return out


def fill_all(batch: dict[str, torch.Tensor], timeframes: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """{baseline: {tf: (B, L, 4)}} for every baseline in `BASELINES` on one batch."""
    res = {kind: {tf: fill(kind, batch[f"y:{tf}"], batch[f"mask:{tf}"]) for tf in timeframes} for kind in SINGLE}
    res["cross"] = cross_fill(batch, timeframes)
    return res
