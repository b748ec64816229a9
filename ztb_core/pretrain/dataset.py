"""Batches of multi-timeframe windows, built whole with vectorised gathers.

`PretrainArrays` holds everything a batch needs as flat numpy arrays (picklable, so DataLoader
workers receive it once). A dataset item is a whole batch: the DataLoader runs with
`batch_size=None` over a `BatchSampler`, so one call gathers B windows per timeframe with a
single fancy index instead of B Python calls plus a collate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .bars import TimeframeBars
from .masking import sample_masks
from .normalization import revin
from .rv_target import RelativeVolTarget
from .windows import WindowIndex

#: input channels per timeframe: 4 normalised prices + 2 aux + visibility flag
IN_CHANNELS = 7


@dataclass
class PretrainArrays:
    timeframes: list[str]
    lengths: dict[str, int]
    bars: dict[str, TimeframeBars]  # aux already z-scored with train-only stats
    index: WindowIndex
    parents: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # fine tf -> (parent, first, last) of next tf
    rv: RelativeVolTarget | None = None  # the rv_aux head's target (loss.rv_aux > 0), else no target in batches

    def make_batch(
        self,
        positions: np.ndarray,
        masks: dict[str, np.ndarray] | None = None,
        rng: np.random.Generator | None = None,
        mask_cfg=None,
    ) -> dict[str, np.ndarray]:
        """Gather windows for anchor `positions`; draw masks with `rng` unless `masks` are given."""
        rows = {tf: self.index.rows(tf, positions) for tf in self.timeframes}
        opens = {tf: self.bars[tf].open_ns[r] for tf, r in rows.items()}
        closes = {tf: self.bars[tf].close_ns[r] for tf, r in rows.items()}
        if masks is None:
            if rng is None or mask_cfg is None:
                raise ValueError("make_batch: without `masks`, both `rng` and `mask_cfg` are needed to draw them")
            masks = sample_masks(
                rng, opens, closes, self.timeframes, mask_cfg.ratio, mask_cfg.min_block, mask_cfg.max_block
            )
        out: dict[str, np.ndarray] = {"positions": positions}
        for tf in self.timeframes:
            r = rows[tf]
            m = masks[tf]
            vis = ~m
            y, mu, sigma = revin(self.bars[tf].logp[r], vis)
            aux = self.bars[tf].aux[r]
            visf = vis.astype(np.float32)[:, :, None]
            # masked positions: prices and volume zeroed; the gap channel is timing, not value, and stays
            x = np.concatenate([y * visf, aux[:, :, :1] * visf, aux[:, :, 1:], visf], axis=2)
            out[f"x:{tf}"] = x
            out[f"y:{tf}"] = y
            out[f"mask:{tf}"] = m
            out[f"mu:{tf}"] = mu
            out[f"sigma:{tf}"] = sigma
        for fine, coarse in zip(self.timeframes[:-1], self.timeframes[1:], strict=True):
            parent, first, last = self.parents[fine]
            rf = rows[fine]
            pg = parent[rf]
            safe = np.maximum(pg, 0)
            cstart = rows[coarse][:, :1]
            pos = pg - cstart
            ok = (pg >= 0) & (pos >= 0) & (pos < self.lengths[coarse]) & (first[safe] >= 0)
            ok &= (first[safe] >= rf[:, :1]) & (last[safe] <= rf[:, -1:])
            out[f"cpos:{fine}"] = np.where(ok, pos, -1)
        if self.rv is not None:
            out["rv"], out["rv_ok"] = self.rv.targets(rows["M1"][:, -1])
        return out


def to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


class RandomMaskBatches(Dataset):
    """Training: item = list of positions -> a batch with fresh masks (seeded by the batch itself,
    so workers and resumes draw the same masks for the same batch)."""

    def __init__(self, arrays: PretrainArrays, positions: np.ndarray, mask_cfg, seed: int):
        self.arrays, self.positions, self.mask_cfg, self.seed = arrays, positions, mask_cfg, seed

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, items) -> dict[str, torch.Tensor]:
        idx = np.asarray(items, dtype=np.int64)
        pos = self.positions[idx]
        rng = np.random.default_rng([self.seed, int(idx[0]), int(idx[-1]), len(idx)])
        return to_tensors(self.arrays.make_batch(pos, rng=rng, mask_cfg=self.mask_cfg))


class FixedMaskSet(Dataset):
    """Validation/test: a fixed anchor sample with masks drawn once from `val_seed`."""

    def __init__(self, arrays: PretrainArrays, positions: np.ndarray, mask_cfg, n_samples: int):
        if len(positions) > n_samples:  # evenly spaced: covers the whole split, same set every run
            positions = positions[np.linspace(0, len(positions) - 1, n_samples).round().astype(np.int64)]
        self.arrays, self.positions = arrays, positions
        rows = {tf: arrays.index.rows(tf, positions) for tf in arrays.timeframes}
        rng = np.random.default_rng(mask_cfg.val_seed)
        self.masks = sample_masks(
            rng,
            {tf: arrays.bars[tf].open_ns[r] for tf, r in rows.items()},
            {tf: arrays.bars[tf].close_ns[r] for tf, r in rows.items()},
            arrays.timeframes,
            mask_cfg.ratio,
            mask_cfg.min_block,
            mask_cfg.max_block,
        )

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, items) -> dict[str, torch.Tensor]:
        idx = np.asarray(items, dtype=np.int64)
        return to_tensors(
            self.arrays.make_batch(self.positions[idx], masks={tf: m[idx] for tf, m in self.masks.items()})
        )
