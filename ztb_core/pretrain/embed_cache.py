"""Frozen Stage-1 embeddings of a bar series, computed once and cached on disk.

The key is the encoder file's sha256, a hash of the bars (times and OHLCV) and the window
configuration (timeframes, window lengths, market), so a second training run with the same
encoder and data loads the matrix in seconds instead of running the encoder over every bar again.
Files live under `<artifacts>/cache/embeddings/` and are written atomically (temp file + rename):
a killed run never leaves a half-written cache, and an unreadable one is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..data.schema import index_ns
from ..paths import artifacts_dir
from .export import EncoderBundle
from .normalization import data_digest

log = logging.getLogger("ztb.pretrain")
CACHE_VERSION = 1
#: seconds between two progress reports (log line / status message)
REPORT_EVERY_S = 2.0


def embeddings_cache_dir() -> Path:
    return artifacts_dir() / "cache" / "embeddings"


def embedding_key(bundle: EncoderBundle, encoder_sha256: str, m1: pd.DataFrame, market: str) -> str:
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "encoder": encoder_sha256,
            "data": data_digest(
                index_ns(m1.index), m1[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
            ),
            "market": market,
            "timeframes": bundle.timeframes,
            "lengths": bundle.lengths,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def progress_reporter(sink: Callable[[str], None] | None, label: str = "encoder embeddings") -> Callable:
    """A `progress(done, total, elapsed)` callback that logs (and passes to `sink`) one line with
    bars/s and ETA at most every `REPORT_EVERY_S` seconds, and always at the end."""
    last = [-float("inf")]

    def report(done: int, total: int, elapsed: float) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < REPORT_EVERY_S:
            return
        last[0] = now
        rate = done / elapsed if elapsed > 0 else float("nan")
        eta = (total - done) / rate if rate and rate > 0 else float("nan")
        msg = f"{label}: {done:,}/{total:,} bars, {rate:,.0f} bars/s, ETA {eta:.0f} s"
        log.info(msg)
        if sink is not None:
            sink(msg)

    return report


def _load(path: Path, n: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path) as z:
            emb, valid = z["embeddings"], z["valid"]
    except (OSError, KeyError, ValueError) as exc:
        log.warning("%s: unreadable embedding cache (%s); recomputing", path, exc.__class__.__name__)
        return None
    if emb.shape != (n, dim) or valid.shape != (n,):
        log.warning("%s: cached shape %s does not match (%d, %d); recomputing", path, emb.shape, n, dim)
        return None
    return emb, valid


def cached_embeddings(
    bundle: EncoderBundle,
    encoder_sha256: str,
    m1: pd.DataFrame,
    market: str,
    cache_dir: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(embeddings (T, D) float32, valid (T,) bool, cache hit) for the M1 bars `m1`."""
    cache_dir = embeddings_cache_dir() if cache_dir is None else Path(cache_dir)
    path = cache_dir / f"emb-{embedding_key(bundle, encoder_sha256, m1, market)}.npz"
    if path.exists():
        got = _load(path, len(m1), bundle.embedding_dim)
        if got is not None:
            msg = f"encoder embeddings: {len(m1):,} bars from the cache ({path.name})"
            log.info(msg)
            if on_progress is not None:
                on_progress(msg)
            return got[0], got[1], True
    emb = bundle.embed_bars(m1, market, batch_size=batch_size, progress=progress_reporter(on_progress))
    valid = np.asarray(bundle.last_valid, bool)
    with atomic_file(path) as fh:
        np.savez(fh, embeddings=emb, valid=valid)
    return emb, valid, False
