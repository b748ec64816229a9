"""Block-bootstrap confidence intervals that respect serial dependence in bar returns.

Full-length resamples come from `arch` (StationaryBootstrap, CircularBlockBootstrap; block
length from `optimal_block_length` unless given). Resampling *indices* once and gathering every
series with them keeps paired comparisons paired (agent vs baseline on the same resampled bars).
Statistics are computed vectorised over chunks of resamples so memory stays bounded.
"""

from __future__ import annotations

import math
import os
import queue
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import EvaluationError
from .validation import check_returns

METHODS = ("stationary", "circular", "non_overlapping")
STATISTICS = ("sharpe", "total_return", "max_drawdown")
#: elements gathered per chunk (resamples x bars x series): ~32 MB of float64 per array
_CHUNK_ELEMENTS = 4_000_000
#: threads computing resample statistics (numpy kernels release the GIL)
_WORKERS = 2


def estimate_block_length(returns: np.ndarray, method: str = "stationary") -> float:
    """Politis–White optimal block length (via arch), clamped to [1, n/4]."""
    # arch (over 1 s of imports) loads on first use: data.synthetic imports this package
    from arch.bootstrap import optimal_block_length

    r = np.asarray(returns, dtype=np.float64)
    if r.size < 16 or np.ptp(r) == 0.0:
        return 1.0  # too short (or flat) to estimate any dependence: resample single bars
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # arch divides by a zero variance on short or piecewise-constant series; the result is
        # then non-finite and handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        est = optimal_block_length(r)
    col = "stationary" if method == "stationary" else "circular"
    b = float(est[col].iloc[0])
    if not math.isfinite(b):
        b = 1.0
    return float(min(max(b, 1.0), max(1.0, r.size / 4)))


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise EvaluationError(f"bootstrap method {method!r} is not supported; expected one of {', '.join(METHODS)}")


def block_indices(
    n: int, length: int, n_paths: int, block_length: float, method: str, rng: np.random.Generator
) -> np.ndarray:
    """(n_paths, length) indices into a series of n bars, drawn in blocks (vectorised).

    stationary: geometric block lengths with mean `block_length`, wrapping around (Politis–Romano);
    circular: fixed-length blocks starting anywhere, wrapping; non_overlapping: fixed-length blocks
    starting only at multiples of the block length (Carlstein). Used for horizon-length Monte
    Carlo paths, which arch (full-length resamples only) does not draw.
    """
    _check_method(method)
    b = max(1, int(round(block_length)))
    j = np.arange(length)
    if method == "stationary":
        new_block = rng.random((n_paths, length)) < 1.0 / max(block_length, 1.0)
        new_block[:, 0] = True
    else:
        new_block = np.zeros((n_paths, length), dtype=bool)
        new_block[:, ::b] = True
    if method == "non_overlapping":
        n_blocks = max(1, n // b)
        starts = rng.integers(0, n_blocks, size=(n_paths, length)) * b
    else:
        starts = rng.integers(0, n, size=(n_paths, length))
    last = np.maximum.accumulate(np.where(new_block, j, 0), axis=1)
    rows = np.arange(n_paths)[:, None]
    mod = n if method != "non_overlapping" else max(b, (n // b) * b)
    return (starts[rows, last] + (j - last)) % mod


def chunk_sizes(n_resamples: int, chunk: int) -> list[int]:
    return [min(chunk, n_resamples - start) for start in range(0, n_resamples, chunk)]


def chunk_indices(n: int, m: int, block_length: float, method: str, rng: np.random.Generator) -> np.ndarray:
    """(m, n) full-length resample indices drawn with `rng`."""
    _check_method(method)
    if method == "non_overlapping":
        return block_indices(n, n, m, block_length, method, rng)
    # arch (over 1 s of imports) loads on first use: data.synthetic imports this package
    from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap

    cls = StationaryBootstrap if method == "stationary" else CircularBlockBootstrap
    # arch resamples the data it is given; giving it 0..n-1 hands back the indices themselves
    # (as numpy's own index type, so take/bincount need no conversion)
    bs = cls(
        # arch annotates block_size as int, but the stationary bootstrap only uses it as the mean block
        # length (p = 1 / block_size), so a fractional value is valid there
        block_length if method == "stationary" else max(1, int(round(block_length))),  # type: ignore[arg-type]
        np.arange(n, dtype=np.intp),
        seed=rng,
    )
    return np.stack([data[0] for data, _ in bs.bootstrap(m)])


def chunk_generators(seed: int | None, n_chunks: int) -> list[np.random.Generator]:
    """One independent generator per chunk: results do not depend on which thread ran which
    chunk, so the same seed always gives the same intervals."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_chunks)]


def resample_index_chunks(
    n: int, n_resamples: int, block_length: float, method: str, seed: int | None, chunk: int
) -> Iterator[np.ndarray]:
    """The chunks (≤ chunk, n) of resample indices `bootstrap_statistics` uses for this seed."""
    sizes = chunk_sizes(n_resamples, chunk)
    for m, rng in zip(sizes, chunk_generators(seed, len(sizes)), strict=True):
        yield chunk_indices(n, m, block_length, method, rng)


def _max_drawdown_rows(logr: np.ndarray, cum: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Max drawdown (positive fraction) along the last axis of log returns, using caller
    buffers: large temporaries would be page-faulted in afresh on every call."""
    np.cumsum(logr, axis=-1, out=cum)
    np.maximum.accumulate(cum, axis=-1, out=peak)
    np.maximum(peak, 0.0, out=peak)  # equity starts at 1: the first peak is the start
    np.subtract(cum, peak, out=cum)
    return -np.expm1(cum.min(axis=-1))


def point_statistics(
    series: np.ndarray, periods_per_year: float, which: Sequence[str] = STATISTICS
) -> dict[str, np.ndarray]:
    """The statistics of the original (un-resampled) series, per column."""
    s = np.asarray(series, dtype=np.float64)
    s = s.reshape(s.shape[0], -1)
    out: dict[str, np.ndarray] = {}
    if "sharpe" in which:
        mean, sd = s.mean(axis=0), s.std(axis=0, ddof=1)
        out["sharpe"] = np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0) * math.sqrt(periods_per_year)
    logr = np.log1p(s)
    if "total_return" in which:
        out["total_return"] = np.expm1(logr.sum(axis=0))
    if "max_drawdown" in which:
        lt = np.ascontiguousarray(logr.T)
        out["max_drawdown"] = _max_drawdown_rows(lt, np.empty_like(lt), np.empty_like(lt))
    return out


def bootstrap_statistics(
    series: object,
    periods_per_year: float,
    n_resamples: int = 1000,
    block_length: float | None = None,
    method: str = "stationary",
    seed: int | None = None,
    which: Sequence[str] = STATISTICS,
    drawdown_columns: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """Resampled statistics of one series (n,) or several aligned series (n, k) resampled
    jointly (the same resampled bars for every column, so differences stay paired).

    Returns ({statistic: (n_resamples, k)}, block length used). Max drawdown is path dependent
    and the costliest statistic, so it is computed only for `drawdown_columns` (default: all);
    its array has one column per entry there. Sharpe is annualised with `periods_per_year`.
    """
    _check_method(method)
    for w in which:
        if w not in STATISTICS:
            raise EvaluationError(f"unknown bootstrap statistic {w!r}; expected one of {', '.join(STATISTICS)}")
    arr = np.asarray(series, dtype=np.float64)
    if arr.ndim == 1:
        check_returns(arr)
        arr = arr[:, None]
    elif arr.ndim != 2 or arr.shape[0] < 2 or not np.isfinite(arr).all():
        raise EvaluationError("bootstrap: expected finite returns shaped (n,) or (n, k) with n >= 2")
    if n_resamples < 10:
        raise EvaluationError(f"bootstrap: n_resamples must be at least 10, got {n_resamples}")
    n, k = arr.shape
    if block_length is None:
        block_length = estimate_block_length(arr[:, 0], method)
    elif not (block_length >= 1):
        raise EvaluationError(f"bootstrap: block_length must be >= 1, got {block_length}")
    dd_cols = list(range(k)) if drawdown_columns is None else list(drawdown_columns)
    logr = np.log1p(arr)
    # Sharpe and total return are linear in how often each bar is drawn: one bincount per
    # resample and a single matrix product give them for every column at once.
    moments_src = np.concatenate([arr, arr * arr, logr], axis=1)  # (n, 3k)
    dd_src = [np.ascontiguousarray(logr[:, c]) for c in dd_cols]
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // n))
    # numpy releases the GIL in the heavy kernels: two workers (each drawing its chunks' indices
    # with arch, then computing) use both cores. Each owns a set of buffers (no fresh page faults).
    workers = max(1, min(_WORKERS, os.cpu_count() or 1))
    buffers: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(workers):
        buffers.put((np.empty((chunk, n)), np.empty(n), np.empty(n), np.empty(n)))

    def work(idx: np.ndarray) -> dict[str, np.ndarray]:
        m = idx.shape[0]
        res: dict[str, np.ndarray] = {}
        counts_buf, gathered, cum, peak = buffers.get()
        try:
            counts = counts_buf[:m]
            for i in range(m):  # row by row: each count vector stays in cache
                counts[i] = np.bincount(idx[i], minlength=n)
            sums = counts @ moments_src  # (m, 3k)
            s1, s2, sl = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k :]
            if "sharpe" in which:
                mean = s1 / n
                sd = np.sqrt(np.maximum(s2 - n * mean * mean, 0.0) / (n - 1))
                # a resample with no variation (a flat policy) has no risk and no return: Sharpe 0
                res["sharpe"] = np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 1e-300) * math.sqrt(
                    periods_per_year
                )
            if "total_return" in which:
                res["total_return"] = np.expm1(sl)
            if "max_drawdown" in which:
                # one resample at a time: its three working arrays stay in the CPU cache
                dd = np.empty((m, len(dd_cols)))
                for i in range(m):
                    for j, src in enumerate(dd_src):
                        np.take(src, idx[i], out=gathered)
                        dd[i, j] = _max_drawdown_rows(gathered, cum, peak)
                res["max_drawdown"] = dd
        finally:
            buffers.put((counts_buf, gathered, cum, peak))
        return res

    sizes = chunk_sizes(n_resamples, chunk)
    rngs = chunk_generators(seed, len(sizes))

    def draw_and_work(c: int) -> dict[str, np.ndarray]:
        return work(chunk_indices(n, sizes[c], block_length, method, rngs[c]))

    results: list[dict[str, np.ndarray]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ztb-bootstrap") as pool:
        # map keeps chunk order; each worker draws its own indices, so both cores stay busy
        for c, res in enumerate(pool.map(draw_and_work, range(len(sizes)))):
            results.append(res)
            if progress is not None:
                progress(sizes[c])
    parts = {w: [r[w] for r in results] for w in which}
    return {w: np.concatenate(parts[w], axis=0) for w in which}, float(block_length)


@dataclass(frozen=True)
class BootstrapCI:
    statistic: str
    estimate: float
    low: float
    high: float
    confidence: float
    block_length: float
    method: str
    samples: np.ndarray

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0.5 < confidence < 1.0:
        raise EvaluationError(f"confidence must be between 0.5 and 1, got {confidence}")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(
    returns: object,
    statistic: str = "sharpe",
    periods_per_year: float = 1.0,
    n_resamples: int = 1000,
    block_length: float | None = None,
    method: str = "stationary",
    confidence: float = 0.95,
    seed: int | None = None,
) -> BootstrapCI:
    """Percentile confidence interval of `statistic` (sharpe, annualised with `periods_per_year`;
    total_return; max_drawdown as a positive fraction) from a block bootstrap."""
    r = check_returns(returns)
    samples, b = bootstrap_statistics(r, periods_per_year, n_resamples, block_length, method, seed, (statistic,))
    s = samples[statistic][:, 0]
    lo, hi = percentile_interval(s, confidence)
    est = float(point_statistics(r, periods_per_year, (statistic,))[statistic][0])
    return BootstrapCI(statistic, est, lo, hi, confidence, b, method, s)
