"""Volatility probe of a Stage-1 encoder: do its frozen embeddings forecast realised variance
better than the strongest simple rule?

Target: log realised variance of the next h M1 returns (h = 60 and 240), sampled every `stride`
M1 bars at the end of each encoder window (the bar whose close the window ends at). Splits are the
encoder's own (`splits` of its config over its own M1 rows, with its embargo), and a sample
belongs to a split only when its whole target lies inside it. Everything is fitted on train;
penalties are chosen on val; losses are scored on test (or, with `holdout_from`, on the rows from
that time on, looked at once). All forecasters are scored on the same rows:

    constant          the train mean (smeared to a level)
    ewma              RiskMetrics (lambda 0.94 per horizon block)
    har               HAR-RV in logs (last h, 4h, day, week)
    har+season        HAR + time-of-day x weekday seasonality: the rule to beat (the simple
                      rule with the lowest val QLIKE is the reference, whichever it is)
    encoder           ridge on the frozen embeddings
    random-<seed>     the same ridge on an encoder of the same shape with random weights
    encoder+har+season, random-<seed0>+har+season   embeddings added to the reference's columns

Loss differences against the reference come with paired stationary block-bootstrap intervals
(`ztb_core.evaluation.bootstrap`): the same resampled rows for both forecasters.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.schema import index_ns
from ..data.source import load_bars
from ..data.splits import chronological_splits
from ..errors import DataError
from ..evaluation.bootstrap import estimate_block_length, percentile_interval, resample_index_chunks
from ..evaluation.volatility import (
    WEEK_BARS,
    RidgeFit,
    ewma_forecast,
    fit_log_variance_ridge,
    fit_ridge_on_val,
    har_features,
    log_returns,
    mincer_zarnowitz,
    mse_log,
    qlike,
    seasonal_features,
    seasonal_profile,
    target_rv,
)
from .export import EncoderBundle, embed_tokens
from .model import MultiTimeframeAutoencoder

log = logging.getLogger("ztb.pretrain")

HORIZONS: tuple[int, ...] = (60, 240)
#: ridge penalties per row on standardised columns, chosen on val
ALPHAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
SIMPLE_RULES: tuple[str, ...] = ("constant", "ewma", "har", "har+season")
REFERENCE_CANDIDATES = SIMPLE_RULES
#: forecast/realised points kept for the report's picture
PLOT_POINTS = 1500


@dataclass
class ProbeSamples:
    times_ns: np.ndarray  # (n,) all M1 bar open times
    close: np.ndarray  # (n,) all M1 closes
    rows: dict[str, np.ndarray]  # split -> sampled M1 rows, time order
    train_rows_all: np.ndarray  # every M1 row of the train split (for the seasonal profile)


def split_rows(
    m1: pd.DataFrame, encoder_rows: int, splits, stride: int, horizon: int, holdout_from: pd.Timestamp | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sampled rows per split: the encoder's chronological slices over its own first
    `encoder_rows` M1 rows; a row counts when its next `horizon` bars lie in the same slice. With
    `holdout_from`, "test" is instead every sampled row from that time on (to the end of `m1`)."""
    sl = chronological_splits(encoder_rows, splits.train, splits.val, splits.test, splits.embargo)
    cand = np.arange(WEEK_BARS, len(m1), stride, dtype=np.int64)
    out = {}
    for name in ("train", "val", "test"):
        s = sl[name]
        out[name] = cand[(cand >= s.start) & (cand + horizon < s.stop)]
    if holdout_from is not None:
        start = int(np.searchsorted(index_ns(m1.index), holdout_from.value))
        out["test"] = cand[(cand >= start) & (cand + horizon < len(m1))]
    return out, np.arange(sl["train"].start, sl["train"].stop, dtype=np.int64)


def random_bundle(bundle: EncoderBundle, seed: int) -> EncoderBundle:
    """The same architecture, windows and statistics with freshly initialised weights (seeded)."""
    torch.manual_seed(seed)
    model = MultiTimeframeAutoencoder(bundle.timeframes, bundle.lengths, bundle.config.model)
    if bundle.model.is_t5:
        raise DataError("volatility probe: random T5 controls are not built; use a transformer encoder")
    return dataclasses.replace(bundle, model=model.eval())


@torch.inference_mode()
def embed_rows(bundle: EncoderBundle, m1: pd.DataFrame, rows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(len(rows), D) embeddings of the windows ending at M1 `rows` (all must be valid)."""
    wb = bundle.window_builder(m1)
    model = bundle.model.eval()
    out = np.zeros((len(rows), bundle.embedding_dim), np.float32)
    for i in range(0, len(rows), batch_size):  # a loop over batches, not bars
        xs = {tf: torch.from_numpy(x) for tf, x in wb.inputs(rows[i : i + batch_size]).items()}
        out[i : i + batch_size] = embed_tokens(model, xs).float().numpy()
    return out


def _loss_block(rv: np.ndarray, level: np.ndarray, logf: np.ndarray) -> dict[str, np.ndarray]:
    return {"qlike": qlike(rv, level), "mse_log": mse_log(rv, logf)}


def paired_bootstrap(
    losses: np.ndarray, ref: int, block: float, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap SEs of each column's mean loss, and the mean difference of every column to column
    `ref` with its standard error and 95 % percentile interval, from the SAME resampled rows."""
    n, k = losses.shape
    means = []
    for idx in resample_index_chunks(n, n_boot, block, "stationary", seed, chunk=max(1, 2_000_000 // (n * k))):
        means.append(losses[idx].mean(axis=1))  # (m, k)
    m = np.concatenate(means, axis=0)
    d = m - m[:, [ref]]
    lo_hi = np.array([percentile_interval(d[:, j], 0.95) if j != ref else (0.0, 0.0) for j in range(k)])
    return m.std(axis=0, ddof=1), d.std(axis=0, ddof=1), lo_hi[:, 0], lo_hi[:, 1]


def run_probe(
    bundle: EncoderBundle,
    m1: pd.DataFrame,
    encoder_rows: int,
    *,
    stride: int = 10,
    seeds: tuple[int, ...] = (0, 1, 2),
    holdout_from: pd.Timestamp | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """The probe's results (JSON-ready dict) for every horizon in HORIZONS."""
    times = index_ns(m1.index)
    close = m1["close"].to_numpy(np.float64)
    r = log_returns(close, times)
    h_max = max(HORIZONS)
    rows, train_all = split_rows(m1, encoder_rows, bundle.config.splits, stride, h_max, holdout_from)
    valid = bundle.window_builder(m1).valid
    targets = {h: np.log(target_rv(r, times, h)) for h in HORIZONS}
    har = {h: har_features(r, h) for h in HORIZONS}
    ok_all = valid & np.all([np.isfinite(targets[h]) for h in HORIZONS], axis=0)
    ok_all &= np.all([np.isfinite(har[h]).all(axis=1) for h in HORIZONS], axis=0)
    rows = {k: v[ok_all[v]] for k, v in rows.items()}
    for k, v in rows.items():
        if len(v) < 50:
            raise DataError(f"volatility probe: only {len(v)} usable {k} samples; use more data or a smaller --stride")
    every = np.concatenate([rows["train"], rows["val"], rows["test"]])
    log.info("volatility probe: embedding %d windows per encoder", len(every))
    encoders = {"encoder": bundle} | {f"random-{s}": random_bundle(bundle, s) for s in seeds}
    emb = {name: embed_rows(b, m1, every) for name, b in encoders.items()}
    n_tr, n_va = len(rows["train"]), len(rows["val"])
    part = {"train": slice(0, n_tr), "val": slice(n_tr, n_tr + n_va), "test": slice(n_tr + n_va, len(every))}
    profile = seasonal_profile(r, times, train_all)

    results: dict = {
        "horizons": {},
        "samples": {k: len(v) for k, v in rows.items()},
        "periods": {k: [str(m1.index[v[0]]), str(m1.index[v[-1]])] for k, v in rows.items()},
        "stride": stride,
        "random_seeds": list(seeds),
        "holdout_from": None if holdout_from is None else str(holdout_from),
    }
    for h in HORIZONS:
        y = targets[h][every]
        base = {
            "har": har[h][every],
            "har+season": np.concatenate([har[h], seasonal_features(profile, times, h)], axis=1)[every],
        }
        ytr, yva = y[part["train"]], y[part["val"]]
        fits: dict[str, tuple[RidgeFit, np.ndarray]] = {}
        for name, X in base.items():
            fits[name] = (fit_log_variance_ridge(X[part["train"]], ytr, 0.0), X)
        const = np.zeros((len(y), 1))
        fits["constant"] = (
            fit_log_variance_ridge(const[part["train"]], ytr, 1.0),
            const,
        )  # a zero column: the train mean
        for name, E in emb.items():
            fits[name] = (fit_ridge_on_val(E[part["train"]], ytr, E[part["val"]], yva, ALPHAS), E)
        for name in ("encoder", f"random-{seeds[0]}"):
            X = np.concatenate([base["har+season"], emb[name]], axis=1)
            fits[f"{name}+har+season"] = (
                fit_ridge_on_val(X[part["train"]], ytr, X[part["val"]], yva, ALPHAS),
                X,
            )
        # forecasts on every sampled row: (log forecast, level forecast)
        fc = {name: (f.predict_log(X), f.predict_level(X)) for name, (f, X) in fits.items()}
        ew = ewma_forecast(r, h)[every]
        fc["ewma"] = (np.log(ew), ew)
        names = list(SIMPLE_RULES) + [n for n in fc if n not in SIMPLE_RULES]
        rv = np.exp(y)
        val_q = {n: float(qlike(rv[part["val"]], fc[n][1][part["val"]]).mean()) for n in SIMPLE_RULES}
        reference = min(REFERENCE_CANDIDATES, key=lambda n: val_q[n])
        te = part["test"]
        per = {n: _loss_block(rv[te], fc[n][1][te], fc[n][0][te]) for n in names}
        ref = names.index(reference)
        block = max(estimate_block_length(per[names[-1]]["qlike"] - per[reference]["qlike"]), 2.0 * h / stride)
        n_te = te.stop - te.start
        pick = np.unique(np.linspace(0, n_te - 1, min(n_te, PLOT_POINTS)).round().astype(np.int64))
        table = {}
        stats = {}
        for loss in ("qlike", "mse_log"):
            L = np.stack([per[n][loss] for n in names], axis=1)
            stats[loss] = paired_bootstrap(L, ref, block, n_boot, seed)
        for j, n in enumerate(names):
            mz = mincer_zarnowitz(rv[te], fc[n][0][te])
            row: dict[str, float | list[float]] = {"mz_" + k: v for k, v in mz.items()}
            for loss in ("qlike", "mse_log"):
                se, dse, lo, hi = stats[loss]
                mean = float(per[n][loss].mean())
                row[loss] = mean
                row[f"{loss}_se"] = float(se[j])
                row[f"{loss}_diff"] = mean - float(per[reference][loss].mean())
                row[f"{loss}_diff_se"] = float(dse[j])
                row[f"{loss}_diff_ci"] = [float(lo[j]), float(hi[j])]
            row["val_qlike"] = float(qlike(rv[part["val"]], fc[n][1][part["val"]]).mean())
            if n in fits:
                row["alpha"] = fits[n][0].alpha
            table[n] = row
        results["horizons"][str(h)] = {
            "reference": reference,
            "block_length": block,
            "forecasters": table,
            "plot": {  # thinned evenly: the picture needs no more
                "times": [str(t) for t in m1.index[every[te][pick]]],
                "realised": y[te][pick].tolist(),
                "reference": fc[reference][0][te][pick].tolist(),
                "encoder": fc["encoder"][0][te][pick].tolist(),
            },
        }
    return results


def encoder_rows(bundle: EncoderBundle) -> int:
    """How many M1 rows the encoder's own data had (its splits are fractions of them)."""
    return len(load_bars(bundle.config.data))


def load_probe_bars(bundle: EncoderBundle, data_end: str | None) -> pd.DataFrame:
    """The encoder's M1 bars, extended to `data_end` (for a held-out period after them)."""
    data = bundle.config.data
    if data_end is not None:
        data = data.model_copy(update={"end": pd.Timestamp(data_end).to_pydatetime()})
    return load_bars(data)


def resolve_reports_dir(path: Path) -> Path:
    """A run directory's reports/ (for a run folder, a checkpoint in it, or its encoder/)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if path.name in ("checkpoints", "encoder"):
        path = path.parent
    return path / "reports"
