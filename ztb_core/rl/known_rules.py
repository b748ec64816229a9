"""The DP optimum and the simple band rules of a known-optimum market, played on a run's splits,
and paired intervals for their net P&L as fractions of the optimum's.

What each policy observes, all computed from the bars alone (`observed_state`): the DP policy and
the band rules see the market's exact state (the regime from the wicks, the averages of past
returns); the band rules reduce it to one number, the exact expected return over the next h bars
(h = 1: the one-bar forecast), in standard deviations of its train-split values, and trade it
through a hysteresis band (`baselines.hysteresis`) chosen on val (and h too, for the horizon rule).
A PPO agent with the product's defaults sees less: a ridge forecast of the next bar's return from
the technical features, and the position it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.known_optimum import market_spec, observed_state
from ..evaluation.baselines import hysteresis
from ..evaluation.bootstrap import block_indices
from ..evaluation.errors import EvaluationError
from ..pnl import bar_returns, position_returns
from .dp_optimum import DPSolution, dp_positions, horizon_forecast, solve

BANDS: tuple[float, ...] = tuple(np.round(np.arange(0.0, 3.01, 0.1), 2))
HORIZONS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 400)


@dataclass(frozen=True)
class RulePositions:
    """A rule's positions on the val and test rows, and what it chose on val."""

    name: str
    detail: str
    val: np.ndarray
    test: np.ndarray


def split_pnl(positions: np.ndarray, bars: pd.DataFrame, rows: np.ndarray, rate: float) -> np.ndarray:
    """Net return per bar of positions decided at `rows` of `bars` (the product's P&L function)."""
    rets = bar_returns(bars["open"].to_numpy()[rows], bars["close"].to_numpy()[rows])
    return position_returns(positions, rets, rate)[0]


def known_market_rules(
    kind: str, bars: pd.DataFrame, rate: float, rows: dict[str, np.ndarray], sol: DPSolution | None = None
) -> list[RulePositions]:
    """DP optimum, best one-bar band and best horizon band on the val and test rows (`rows`: integer
    positions into `bars` of the train, val and test splits)."""
    for need in ("train", "val", "test"):
        if need not in rows or len(rows[need]) < 2:
            raise EvaluationError(f"known_market_rules: split {need!r} has no rows")
    spec = market_spec(kind)
    sol = sol if sol is not None else solve(spec, rate)
    seen = observed_state(spec, bars["open"].to_numpy(), bars["high"].to_numpy(), bars["close"].to_numpy())
    out = [
        RulePositions(
            "DP optimum",
            f"gain {sol.gain:.3g}/bar on the grid model",
            dp_positions(sol, seen.regime[rows["val"]], seen.state[rows["val"]]),
            dp_positions(sol, seen.regime[rows["test"]], seen.state[rows["test"]]),
        )
    ]
    # each (horizon, band) pair's val mean net P&L; the rules pick their best on val
    scored: dict[int, list[tuple[float, float, np.ndarray, np.ndarray]]] = {}
    for h in HORIZONS:
        fc = horizon_forecast(spec, seen.regime, seen.state, h)
        scale = float(fc[rows["train"]].std())
        z = fc / scale if scale > 0 else fc
        for band in BANDS:
            val = hysteresis(z[rows["val"]], band)
            test = hysteresis(z[rows["test"]], band)
            scored.setdefault(h, []).append((float(split_pnl(val, bars, rows["val"], rate).mean()), band, val, test))
    one = max(scored[1], key=lambda x: x[0])
    out.append(RulePositions("band, 1-bar forecast", f"band {one[1]:g} sd", one[2], one[3]))
    h_best, best = max(((h, max(v, key=lambda x: x[0])) for h, v in scored.items()), key=lambda hv: hv[1][0])
    out.append(RulePositions("band, horizon forecast", f"h {h_best}, band {best[1]:g} sd", best[2], best[3]))
    return out


@dataclass(frozen=True)
class Fraction:
    point: float
    low: float
    high: float


def paired_fractions(
    series: dict[str, np.ndarray],
    ref: str,
    pairs: tuple[tuple[str, str], ...] = (),
    block: float = 500.0,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Fraction]:
    """Mean net P&L of each series as a fraction of `ref`'s, and for each (a, b) in `pairs` the
    difference a - b in the same units, with paired stationary block-bootstrap intervals (the
    same resampled bars for every series; `block` bars on average, long enough for the slowest
    signal's half-life)."""
    names = list(series)
    if ref not in series:
        raise EvaluationError(f"paired_fractions: reference {ref!r} not among {names}")
    data = np.stack([np.asarray(series[k], dtype=np.float64) for k in names])
    n = data.shape[1]
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_boot, 100):
        idx = block_indices(n, n, min(100, n_boot - start), block, "stationary", rng)
        means.append(data[:, idx].mean(axis=2))  # (series, paths)
    boot = np.concatenate(means, axis=1)
    point = data.mean(axis=1)
    r = names.index(ref)
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, Fraction] = {}

    def put(key: str, pt: float, samples: np.ndarray) -> None:
        lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
        out[key] = Fraction(pt, float(lo), float(hi))

    for i, k in enumerate(names):
        put(k, float(point[i] / point[r]), boot[i] / boot[r])
    for a, b in pairs:
        i, j = names.index(a), names.index(b)
        put(f"{a} - {b}", float((point[i] - point[j]) / point[r]), (boot[i] - boot[j]) / boot[r])
    return out
