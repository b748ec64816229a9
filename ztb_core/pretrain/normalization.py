"""Normalisation without leakage.

* Auxiliary channels (log volume, log gap) are z-scored per timeframe with statistics fitted on
  the bars of the **train split only** (bars that closed by the last train anchor).
* Price channels are normalised per window, RevIN-style, with a location and scale computed from
  the **visible** (unmasked) values only. Including masked values would leak them: the window mean
  and spread carry information about what is hidden (MOMENT excludes them; PatchTST does not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .bars import AUX_CHANNELS, TimeframeBars

#: floor of the per-window scale in log-price units (0.001 % of the price): flat windows stay finite
MIN_WINDOW_STD = 1e-5


@dataclass
class AuxStats:
    mean: dict[str, list[float]]
    std: dict[str, list[float]]
    fitted_until_ns: int
    digest: str

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "fitted_until_ns": int(self.fitted_until_ns), "digest": self.digest}

    @classmethod
    def from_dict(cls, d: dict) -> AuxStats:
        return cls(mean=d["mean"], std=d["std"], fitted_until_ns=int(d["fitted_until_ns"]), digest=d["digest"])

    def apply(self, tf: str, aux: np.ndarray) -> np.ndarray:
        mu = np.asarray(self.mean[tf], np.float32)
        sd = np.asarray(self.std[tf], np.float32)
        return ((aux - mu) / sd).astype(np.float32)


def fit_aux_stats(bars: dict[str, TimeframeBars], train_until_ns: int, data_digest: str) -> AuxStats:
    """Per-timeframe mean/std of the auxiliary channels over bars that closed by `train_until_ns`."""
    mean: dict[str, list[float]] = {}
    std: dict[str, list[float]] = {}
    for tf, tfb in bars.items():
        sel = tfb.aux[(tfb.close_ns <= train_until_ns) & tfb.complete]
        if len(sel) == 0:
            mu, sd = np.zeros(AUX_CHANNELS), np.ones(AUX_CHANNELS)
        else:
            mu = sel.astype(np.float64).mean(axis=0)
            sd = sel.astype(np.float64).std(axis=0)
            sd = np.where(sd > 1e-8, sd, 1.0)  # constant channel (FX volume is always 0): leave it at 0
        mean[tf] = [float(v) for v in mu]
        std[tf] = [float(v) for v in sd]
    return AuxStats(mean, std, int(train_until_ns), stats_digest(data_digest, train_until_ns, list(bars)))


def stats_digest(data_digest: str, train_until_ns: int, timeframes: list[str]) -> str:
    """Key of a statistics set: the data, where the train split ends, and the timeframes."""
    blob = f"{data_digest}:{int(train_until_ns)}:{sorted(timeframes)}".encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def data_digest(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def revin(
    logp: np.ndarray, visible: np.ndarray, min_std: float = MIN_WINDOW_STD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-window location/scale from the visible positions only.

    logp: (B, L, 4) log prices; visible: (B, L) bool. Returns (normalised (B, L, 4) float32,
    mu (B,), sigma (B,)) with one location and scale shared by open/high/low/close so their
    ordering survives normalisation.
    """
    w = visible.astype(np.float64)[:, :, None]
    cnt = np.maximum(w.sum(axis=(1, 2)) * logp.shape[2], 1.0)
    mu = (logp * w).sum(axis=(1, 2)) / cnt
    dev = (logp - mu[:, None, None]) * w
    sigma = np.sqrt((dev * dev).sum(axis=(1, 2)) / cnt)
    sigma = np.maximum(sigma, min_std)
    norm = (logp - mu[:, None, None]) / sigma[:, None, None]
    return norm.astype(np.float32), mu, sigma
