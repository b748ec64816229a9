"""Baseline policies evaluated on the same bars and costs as the agent. Each returns target
positions decided after each bar's close (the `backtest` convention), so no baseline sees the
future either."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..pnl import bar_returns, position_returns
from ..trading_costs import CostConfig
from .errors import EvaluationError
from .validation import as_series, check_prices


def _n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise EvaluationError(f"a baseline needs at least 2 bars, got {n!r}")
    return int(n)


def buy_and_hold(n: int) -> np.ndarray:
    """Long one unit of equity from the first decision to the end."""
    return np.ones(_n(n))


def flat(n: int) -> np.ndarray:
    """Never in the market: the zero-return, zero-risk benchmark."""
    return np.zeros(_n(n))


def sma_crossover(close: object, fast: int, slow: int, allow_short: bool = True) -> np.ndarray:
    """Long while SMA(fast) > SMA(slow) of closes up to and including bar t; short (or flat with
    `allow_short=False`) while below; flat until the slow average has `slow` closes."""
    c = as_series(close, "close", min_len=2)
    if not (isinstance(fast, (int, np.integer)) and isinstance(slow, (int, np.integer)) and 1 <= fast < slow):
        raise EvaluationError(
            f"sma_crossover: need integer windows with 1 <= fast < slow, got fast={fast}, slow={slow}"
        )
    csum = np.concatenate(([0.0], np.cumsum(c)))
    pos = np.zeros(c.size)
    if slow > c.size:
        return pos
    t = np.arange(slow - 1, c.size)
    sma_fast = (csum[t + 1] - csum[t + 1 - fast]) / fast
    sma_slow = (csum[t + 1] - csum[t + 1 - slow]) / slow
    short = -1.0 if allow_short else 0.0
    pos[t] = np.where(sma_fast > sma_slow, 1.0, np.where(sma_fast < sma_slow, short, 0.0))
    return pos


def random_policy(
    n: int, seeds: Sequence[int], switch_prob: float = 0.01, levels: Sequence[float] = (-1.0, 0.0, 1.0)
) -> np.ndarray:
    """(len(seeds), n) random position paths: at each bar, with probability `switch_prob`, a new
    position is drawn uniformly from `levels`; start flat. Matching `switch_prob` to the agent's
    rate of position changes gives a baseline with similar turnover and costs."""
    n = _n(n)
    if not 0.0 < switch_prob <= 1.0:
        raise EvaluationError(f"random_policy: switch_prob must be in (0, 1], got {switch_prob}")
    seeds = list(seeds)
    if not seeds:
        raise EvaluationError("random_policy: at least one seed is needed")
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size == 0 or not np.isfinite(lv).all():
        raise EvaluationError(f"random_policy: levels must be finite numbers, got {list(levels)}")
    out = np.empty((len(seeds), n))
    j = np.arange(n)
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        switch = rng.random(n) < switch_prob
        draw = lv[rng.integers(0, lv.size, n)]
        last = np.maximum.accumulate(np.where(switch, j, -1))
        out[i] = np.where(last >= 0, draw[np.maximum(last, 0)], 0.0)
    return out


# --- supervised linear baseline ---------------------------------------------------------------
# A ridge regression of the next holding-period return on the same features the agent sees,
# fitted on the train split only, traded with a hysteresis band chosen on the validation split.
# It is the bar an RL agent has to clear: if a linear model on its own inputs does better, the
# agent has learnt nothing a regression could not.


def holding_returns(open_: object, close: object) -> np.ndarray:
    """(n,) return the position decided after bar t earns until the next decision can change it:
    the intra-bar move of t+1 plus the opening gap of t+2 (the `pnl` convention); NaN for the last
    bar, whose position is never filled."""
    o, c = np.asarray(open_, dtype=np.float64), np.asarray(close, dtype=np.float64)
    y = np.full(o.size, np.nan)
    if o.size < 2:
        return y
    intra = c[1:] / o[1:] - 1.0  # intra[t] = bar t+1
    gap = np.zeros(o.size - 1)
    gap[:-1] = o[2:] / c[1:-1] - 1.0  # the gap into bar t+2 (none after the last bar)
    y[:-1] = intra + gap
    return y


def hysteresis(score: object, band: float) -> np.ndarray:
    """Long while the score is above +band, short below -band, and between them keep the position
    already held (flat before the first signal): a band of one standard deviation turns a noisy
    forecast into few, deliberate trades."""
    z = np.asarray(score, dtype=np.float64)
    if not (math.isfinite(band) and band >= 0):
        raise EvaluationError(f"hysteresis: band must be a finite number >= 0, got {band}")
    signal = np.where(z > band, 1.0, np.where(z < -band, -1.0, np.nan))
    j = np.arange(z.size)
    last = np.maximum.accumulate(np.where(np.isnan(signal), -1, j)) if z.size else j
    return np.where(last >= 0, signal[np.maximum(last, 0)], 0.0)


@dataclass(frozen=True)
class RidgeBaseline:
    """A fitted ridge forecast and the band it trades with. `positions(features)` needs the same
    feature columns as the fit; the scores are in standard deviations of the train forecasts."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    score_std: float
    alpha: float
    band: float
    allow_short: bool
    val_sharpe_per_period: float | None
    train_rows: int
    val_rows: int

    def scores(self, features: object) -> np.ndarray:
        x = _feature_matrix(features, self.coef.size)
        return ((x - self.mean) / self.scale @ self.coef + self.intercept) / self.score_std

    def positions(self, features: object) -> np.ndarray:
        return self.trade(self.scores(features))

    def trade(self, scores: np.ndarray) -> np.ndarray:
        """Positions from scores already computed (the band search scores val once per alpha)."""
        pos = hysteresis(scores, self.band)
        return pos if self.allow_short else np.maximum(pos, 0.0)

    def describe(self) -> dict:
        return {
            "alpha": self.alpha,
            "band_sd": self.band,
            "allow_short": self.allow_short,
            "fitted_on": "train",
            "band_chosen_on": "val",
            "train_rows": self.train_rows,
            "val_rows": self.val_rows,
            "val_sharpe_per_period": self.val_sharpe_per_period,
        }


def _feature_matrix(features: object, n_cols: int | None = None) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or (n_cols is not None and x.shape[1] != n_cols):
        want = f"(T, {n_cols})" if n_cols is not None else "(T, F)"
        raise EvaluationError(f"ridge baseline: features must be a {want} matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise EvaluationError("ridge baseline: features contain NaN or infinity (drop the warm-up rows first)")
    return x


@dataclass(frozen=True)
class _Standardised:
    """What every ridge penalty shares: standardised features and their moments (the expensive
    part, computed once however many penalties are tried)."""

    mean: np.ndarray
    scale: np.ndarray
    xs: np.ndarray  # standardised rows with a target
    gram: np.ndarray  # xs'xs / n
    xy: np.ndarray  # xs'(y - mean y) / (n sd y)
    y_mean: float
    y_sd: float

    def solve(self, alpha: float) -> np.ndarray:
        n_feat = self.gram.shape[0]
        return np.linalg.solve(self.gram + alpha * np.eye(n_feat), self.xy) * self.y_sd


def _standardise(features: object, target: object) -> _Standardised:
    x = _feature_matrix(features)
    y = np.asarray(target, dtype=np.float64)
    if y.shape != (x.shape[0],):
        raise EvaluationError(f"ridge baseline: target has shape {y.shape}, expected ({x.shape[0]},)")
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if y.size <= x.shape[1]:
        raise EvaluationError(f"ridge baseline: {y.size} rows cannot fit {x.shape[1]} features")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # a constant column gets weight 0, not a division by 0
    xs = (x - mean) / scale
    y_mean, y_sd = float(y.mean()), float(y.std()) or 1.0
    gram = xs.T @ xs / y.size
    xy = xs.T @ ((y - y_mean) / y_sd) / y.size
    return _Standardised(mean, scale, xs, gram, xy, y_mean, y_sd)


def fit_ridge(features: object, target: object, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, coef, intercept) of a ridge regression on standardised features. `alpha` is
    relative to the features' correlation matrix (0 = least squares, 1 = heavy shrinkage), so it
    does not depend on the number of rows or the size of the returns. Rows with a NaN target
    are left out."""
    st = _standardise(features, target)
    return st.mean, st.scale, st.solve(alpha), st.y_mean


def fit_ridge_baseline(
    train_features: object,
    train_open: object,
    train_close: object,
    val_features: object,
    val_open: object,
    val_close: object,
    costs: CostConfig,
    alphas: Sequence[float] = (0.01, 0.1, 1.0),
    bands: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
    allow_short: bool = True,
) -> RidgeBaseline:
    """Fit ridge forecasts on the train split for each `alpha`, then choose the (alpha, band) pair
    with the best net Sharpe on the validation split, after the same costs as the agent."""
    if not alphas or not bands or any(a < 0 for a in alphas) or any(b < 0 for b in bands):
        raise EvaluationError(f"ridge baseline: need alphas >= 0 and bands >= 0, got {list(alphas)}, {list(bands)}")
    xt, xv = _feature_matrix(train_features), _feature_matrix(val_features)
    if xv.shape[1] != xt.shape[1]:
        raise EvaluationError(f"ridge baseline: train has {xt.shape[1]} features, val {xv.shape[1]}")
    st = _standardise(xt, holding_returns(train_open, train_close))
    vo, vc = check_prices(val_open, val_close)
    rets = bar_returns(vo, vc)
    best: tuple[float, RidgeBaseline] | None = None
    for alpha in alphas:
        coef = st.solve(float(alpha))
        score_std = float((st.xs @ coef).std()) or 1.0  # the spread of the train forecasts: the band's unit
        z_val = ((xv - st.mean) / st.scale @ coef + st.y_mean) / score_std  # shared by every band
        for band in bands:
            model = RidgeBaseline(
                st.mean,
                st.scale,
                coef,
                st.y_mean,
                score_std,
                float(alpha),
                float(band),
                allow_short,
                None,
                len(xt),
                len(xv),
            )
            r, _ = position_returns(model.trade(z_val), rets, costs.rate)
            sd = float(r.std())
            sharpe = float(r.mean() / sd) if sd > 0 else -math.inf  # a band that never trades loses the tie
            if best is None or sharpe > best[0]:
                best = (sharpe, model)
    assert best is not None
    sharpe, model = best
    return replace(model, val_sharpe_per_period=None if not math.isfinite(sharpe) else sharpe)
