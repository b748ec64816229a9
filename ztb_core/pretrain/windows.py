"""The window index: for every anchor M1 bar t, the last completed bar of each timeframe.

A window of timeframe k for anchor t is the `L_k` bars ending at `ends[k][t]`, the last bar of
that timeframe that had closed (and was complete) by the close of M1 bar t. Nothing after t can
enter a window. The index is a handful of `searchsorted` calls (no Python loop per window) and is
cached on disk under a key made of the bar times' hash and the window/split settings; the windows
themselves are gathered per batch with `ends[:, None] + arange(-L + 1, 1)`.

Splits are chronological over the anchors (`chronological_splits` on the M1 rows); an anchor
belongs to a split only if the oldest bar of all its windows opened at or after the split's first
M1 bar, so no window straddles two splits (the automatic embargo) — on top of the configured
`embargo` rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..data.resample import last_completed
from ..data.splits import SPLIT_NAMES, chronological_splits
from ..errors import DataError
from .bars import TimeframeBars

INDEX_VERSION = 2


@dataclass
class WindowIndex:
    anchors: np.ndarray  # int64 (A,): M1 row of each usable anchor, time order
    ends: dict[str, np.ndarray]  # tf -> int64 (A,): last window row at that timeframe
    split_of: np.ndarray  # int8 (A,): 0 train, 1 val, 2 test, -1 none (embargo / straddle)
    lengths: dict[str, int]

    def split(self, name: str) -> np.ndarray:
        """Positions (into `anchors`) of the anchors in split `name`."""
        return np.flatnonzero(self.split_of == SPLIT_NAMES.index(name))

    def rows(self, tf: str, positions: np.ndarray) -> np.ndarray:
        """(B, L) bar rows of the windows of `positions` at `tf`."""
        L = self.lengths[tf]
        return self.ends[tf][positions][:, None] + np.arange(-L + 1, 1, dtype=np.int64)


def times_hash(m1_open_ns: np.ndarray) -> str:
    """Hash of the M1 bar times (all the index depends on, with the market's calendar)."""
    return hashlib.blake2b(np.ascontiguousarray(m1_open_ns, dtype=np.int64).tobytes(), digest_size=12).hexdigest()


def build_window_index(
    m1_open_ns: np.ndarray,
    bars: dict[str, TimeframeBars],
    lengths: dict[str, int],
    train: float,
    val: float,
    test: float,
    embargo: int,
    stride: int = 1,
) -> WindowIndex:
    """Vectorised window index (see the module docstring)."""
    n = len(m1_open_ns)
    candidates = np.arange(0, n, stride, dtype=np.int64)
    ok = np.ones(len(candidates), bool)
    ends: dict[str, np.ndarray] = {}
    oldest = np.full(len(candidates), np.iinfo(np.int64).max, np.int64)
    m1_cand = m1_open_ns[candidates]
    for tf, tfb in bars.items():
        L = lengths[tf]
        if tf == "M1":
            end = candidates.copy()
        else:
            end = last_completed(m1_cand, _htf_frame(tfb), tf)
        start = end - L + 1
        # the first bar of a series can be a partial bucket: never let a window reach it
        first_ok = int(np.argmax(tfb.complete)) if tfb.complete.any() else len(tfb)
        good = start >= first_ok
        ok &= good
        oldest = np.minimum(oldest, np.where(good, tfb.open_ns[np.clip(start, 0, max(len(tfb) - 1, 0))], oldest))
        ends[tf] = end
    slices = chronological_splits(n, train, val, test, embargo)
    split_of = np.full(len(candidates), -1, np.int8)
    for code, name in enumerate(SPLIT_NAMES):
        s = slices[name]
        if s.stop <= s.start:
            continue
        start_ns = m1_open_ns[s.start]
        inside = (candidates >= s.start) & (candidates < s.stop) & ok & (oldest >= start_ns)
        split_of[inside] = code
    keep = ok
    return WindowIndex(
        anchors=candidates[keep],
        ends={tf: e[keep] for tf, e in ends.items()},
        split_of=split_of[keep],
        lengths=dict(lengths),
    )


def _htf_frame(tfb: TimeframeBars):
    """The two columns `last_completed` reads (close_time, complete) as a small DataFrame."""
    close = pd.DatetimeIndex(tfb.close_ns.view("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame({"close_time": close, "complete": tfb.complete})


def index_cache_key(
    times_digest: str,
    market: str,
    lengths: dict[str, int],
    train: float,
    val: float,
    test: float,
    embargo: int,
    stride: int,
) -> str:
    blob = json.dumps(
        {
            "v": INDEX_VERSION,
            "times": times_digest,
            "market": market,
            "lengths": lengths,
            "split": [train, val, test, embargo],
            "stride": stride,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_index(path: Path, index: WindowIndex) -> None:
    """Atomic write (temp file + os.replace): a crash never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"anchors": index.anchors, "split_of": index.split_of, "lengths": np.array(json.dumps(index.lengths))}
    arrays.update({f"end_{tf}": e for tf, e in index.ends.items()})
    with atomic_file(path) as fh:
        # numpy's stub types **kwds as if they could be its bool `allow_pickle`; these are all arrays
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def load_index(path: Path) -> WindowIndex:
    try:
        with np.load(path) as z:
            lengths = json.loads(str(z["lengths"]))
            return WindowIndex(
                anchors=z["anchors"],
                split_of=z["split_of"],
                lengths=lengths,
                ends={tf: z[f"end_{tf}"] for tf in lengths},
            )
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path}: unreadable window-index cache ({exc.__class__.__name__}); delete it to rebuild"
        ) from None


def cached_window_index(
    cache_dir: Path | None,
    m1_open_ns: np.ndarray,
    bars: dict[str, TimeframeBars],
    market: str,
    lengths: dict[str, int],
    train: float,
    val: float,
    test: float,
    embargo: int,
    stride: int = 1,
) -> tuple[WindowIndex, str, bool]:
    """Load the index from the cache or build and store it. Returns (index, key, was_cached)."""
    key = index_cache_key(times_hash(m1_open_ns), market, lengths, train, val, test, embargo, stride)
    path = cache_dir / f"windows-{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        return load_index(path), key, True
    index = build_window_index(m1_open_ns, bars, lengths, train, val, test, embargo, stride)
    if path is not None:
        save_index(path, index)
    return index, key, False
