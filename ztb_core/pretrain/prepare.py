"""From a config (or given M1 bars) to the arrays batches are cut from: bars per timeframe,
train-only statistics and the window index, with both cached on disk."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write_json
from ..data.schema import NS_PER_MINUTE, index_ns
from ..data.source import load_bars
from ..data.splits import chronological_splits
from ..errors import DataError
from ..paths import artifacts_dir
from .bars import TimeframeBars, child_spans, timeframe_bars
from .config import PretrainConfig
from .dataset import PretrainArrays
from .normalization import AuxStats, data_digest, fit_aux_stats, stats_digest
from .rv_target import RelativeVolTarget
from .windows import cached_window_index


@dataclass
class Prepared:
    arrays: PretrainArrays
    stats: AuxStats
    index_key: str
    index_cached: bool
    market: str
    timings: dict[str, float] = field(default_factory=dict)

    def split_positions(self, name: str) -> np.ndarray:
        return self.arrays.index.split(name)


def cache_dir_for(cfg: PretrainConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else artifacts_dir() / "cache" / "pretrain"


def build_bars(m1: pd.DataFrame, timeframes: list[str], market: str) -> dict[str, TimeframeBars]:
    return {tf: timeframe_bars(m1, tf, market)[0] for tf in timeframes}


def prepare(cfg: PretrainConfig, m1: pd.DataFrame | None = None, use_cache: bool = True) -> Prepared:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if m1 is None:
        m1 = load_bars(cfg.data)
    timings["load_s"] = time.perf_counter() - t0
    market = cfg.data.market
    tfs = list(cfg.window.timeframes)
    lengths = cfg.window.lengths()
    t0 = time.perf_counter()
    bars = build_bars(m1, tfs, market)
    timings["resample_s"] = time.perf_counter() - t0
    m1_ns = index_ns(m1.index)
    cache = cache_dir_for(cfg) if use_cache else None
    t0 = time.perf_counter()
    sp = cfg.splits
    index, key, cached = cached_window_index(
        cache, m1_ns, bars, market, lengths, sp.train, sp.val, sp.test, sp.embargo, cfg.window.anchor_stride
    )
    timings["index_s"] = time.perf_counter() - t0
    if len(index.split("train")) == 0:
        longest = max(lengths[tf] for tf in tfs)
        raise DataError(
            f"pretrain: no usable training windows in {len(m1)} M1 bars for timeframes {tfs} with "
            f"up to {longest} bars per window; use more data or shorter window.seq_len / window.seq_len_per_tf"
        )
    if len(index.split("val")) == 0 and sp.val > 0:
        raise DataError(
            f"pretrain: the validation split ({sp.val:.0%} of {len(m1)} M1 bars) holds no whole window: "
            f"the longest window spans more time than the split; use more data or shorter windows "
            f"(window.seq_len_per_tf, e.g. D: 16)"
        )
    # statistics: bars that closed by the end of the train split only
    s = chronological_splits(len(m1), sp.train, sp.val, sp.test, sp.embargo)["train"]
    train_until = int(m1_ns[s.stop - 1]) + NS_PER_MINUTE
    t0 = time.perf_counter()
    digest = data_digest(m1_ns, m1[["open", "high", "low", "close", "volume"]].to_numpy(np.float64))
    stats = _cached_stats(cache, bars, train_until, digest)
    timings["stats_s"] = time.perf_counter() - t0
    for tf, tfb in bars.items():
        tfb.aux = stats.apply(tf, tfb.aux)
    parents = {fine: child_spans(bars[fine], bars[coarse]) for fine, coarse in zip(tfs[:-1], tfs[1:], strict=True)}
    rv = (
        RelativeVolTarget.from_bars(bars["M1"], tuple(cfg.loss.rv_horizons), lengths["M1"])
        if cfg.loss.rv_aux > 0
        else None
    )
    arrays = PretrainArrays(timeframes=tfs, lengths=lengths, bars=bars, index=index, parents=parents, rv=rv)
    return Prepared(arrays=arrays, stats=stats, index_key=key, index_cached=cached, market=market, timings=timings)


def _cached_stats(cache: Path | None, bars: dict[str, TimeframeBars], train_until: int, digest: str) -> AuxStats:
    if cache is None:
        return fit_aux_stats(bars, train_until, digest)
    path = cache / f"stats-{stats_digest(digest, train_until, list(bars))}.json"
    if path.exists():
        try:
            return AuxStats.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError):
            pass  # unreadable cache: refit and rewrite it below
    stats = fit_aux_stats(bars, train_until, digest)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, stats.to_dict())
    return stats
