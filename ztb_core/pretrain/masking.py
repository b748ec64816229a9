"""Contiguous block masks, synchronised across timeframes in time.

Per window, each timeframe draws contiguous blocks (`min_block`..`max_block` bars, capped so the
expected share is about `ratio`). Every block is a span of **time** [open of its first bar, close
of its last bar). A bar of *any* timeframe is masked when its own time interval overlaps any
masked span: masking a span hides it at every timeframe that covers it, so no coarse bar can
reveal the high/low/close of hidden fine bars, and no fine bar can reveal a hidden coarse bar.

A coarse timeframe draws its blocks only in the older part of its window that no finer window
covers: a coarse block over the recent past would hide most of every finer window (an H4 block
spans a whole M15 window). Fine blocks still hide the coarse bars they overlap.

Validation and test use one fixed mask set drawn with `val_seed`, so numbers are comparable
across runs and against the baselines, which see exactly the same masks.
"""

from __future__ import annotations

import numpy as np


def block_plan(L: int, ratio: float, min_block: int, max_block: int) -> tuple[int, int, int]:
    """(shortest, longest, blocks per window) giving about `ratio * L` masked bars."""
    lo = min(min_block, max(1, L // 2))
    target = ratio * L
    hi = int(min(max_block, max(lo, round(2 * target - lo)), max(lo, L // 2)))
    n_blocks = max(1, int(round(target / ((lo + hi) / 2.0))))
    return lo, hi, n_blocks


def sample_masks(
    rng: np.random.Generator,
    opens: dict[str, np.ndarray],
    closes: dict[str, np.ndarray],
    timeframes: list[str],
    ratio: float,
    min_block: int,
    max_block: int,
) -> dict[str, np.ndarray]:
    """Synchronised masks for a batch.

    opens/closes: tf -> (B, L) int64 bar open / close times of each window (finest timeframe first).
    Returns tf -> (B, L) bool, True = masked.
    """
    B = next(iter(opens.values())).shape[0]
    span_lo: list[np.ndarray] = []
    span_hi: list[np.ndarray] = []
    finer_start = np.full(B, np.iinfo(np.int64).max, np.int64)
    for tf in timeframes:
        o, c = opens[tf], closes[tf]
        L = o.shape[1]
        # leading bars of this window that end before every finer window starts
        region = L if np.all(finer_start == np.iinfo(np.int64).max) else (c <= finer_start[:, None]).sum(axis=1)
        region = np.broadcast_to(np.asarray(region), (B,))
        lo, hi, nb = block_plan(L, ratio, min_block, max_block)
        length = rng.integers(lo, hi + 1, size=(B, nb))
        room = region[:, None] - length + 1
        valid = room > 0
        start = np.floor(rng.random((B, nb)) * np.maximum(room, 1)).astype(np.int64)
        stop = np.minimum(start + length - 1, L - 1)
        rows = np.arange(B)[:, None]
        span_lo.append(np.where(valid, o[rows, start], np.iinfo(np.int64).max))
        span_hi.append(np.where(valid, c[rows, stop], np.iinfo(np.int64).min))
        finer_start = np.minimum(finer_start, o[:, 0])
    s_lo = np.concatenate(span_lo, axis=1)[:, None, :]  # (B, 1, S)
    s_hi = np.concatenate(span_hi, axis=1)[:, None, :]
    out: dict[str, np.ndarray] = {}
    for tf in timeframes:
        o, c = opens[tf][:, :, None], closes[tf][:, :, None]
        out[tf] = np.any((o < s_hi) & (c > s_lo), axis=2)
    return out
