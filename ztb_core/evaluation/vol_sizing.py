"""Volatility-targeted sizing (Moreira & Muir 2017) of any position series, and its evaluation
against the same policy at constant size.

The scale at bar t is sqrt(target / forecast_t), capped, where forecast_t is the HAR-RV +
seasonality forecast (`HarSeasonalForecaster`) of the realised variance of the next `horizon` M1
returns, computed from the bars up to t only; the position decided after bar t's close becomes
position_t * scale_t. The forecaster is fitted on the agent's TRAIN split only, and the target is
the variance at which the average scale over the train bars is exactly 1 (so the vol-targeted
policy carries the same average size as the constant one on train, and any Sharpe change comes from
timing the size, not from holding more of it). A scaled position trades whenever the scale moves, so
both variants go through the same backtest: costs are charged on the scaled turnover.

Rebalancing the size every bar as the forecast drifts costs more than it earns at M1 (on USD/JPY a
vol-targeted buy-and-hold trades about a thousand units over four months). `band` holds the
applied scale until the forecast's scale moves more than that fraction away from it (or the
policy's own position changes, which trades anyway): `hold_step` is that rule for one bar, used by
the offline `held_scale` and by any online loop alike.

`VolSizing` is what a live process needs to compute the same scale (`to_dict`/`from_dict`), and
`VolSizing.scale_last` is the bar-by-bar (online) form of `VolSizing.scale`; `OnlineScale` adds the
band's state, so a live loop applies exactly what `held_scale` applies offline. `TrainedVolSizing`
is what a training checkpoint stores: the fitted sizing, the band and the train bars it was fitted on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..trading_costs import CostConfig
from .backtest import backtest
from .comparison import compare_returns
from .errors import EvaluationError
from .metrics import performance_metrics
from .volatility import WEEK_BARS, HarSeasonalForecaster, vol_target_scale

#: bars a forecast at the last bar needs: the longest HAR window (a week) and the close before it
ONLINE_BUFFER_BARS = WEEK_BARS + 1
#: bisection steps for the target variance (log space: far below float64 resolution after 200)
_BISECT_STEPS = 200


def _check_bars(close: object, times_ns: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(close, np.float64)
    t = np.asarray(times_ns, np.int64)
    if c.ndim != 1 or c.shape != t.shape:
        raise EvaluationError(f"{what}: close {c.shape} and times {t.shape} must be aligned 1-D arrays")
    if c.size > 1 and np.any(np.diff(t) <= 0):
        raise EvaluationError(f"{what}: bar times must be strictly increasing")
    return c, t


def target_for_unit_mean(forecast: np.ndarray, cap: float) -> float:
    """The target variance T with mean(min(sqrt(T / f), cap)) = 1 over the finite forecasts f
    (monotone in T: bisection in log space). Needs cap > 1, else a mean of 1 is out of reach."""
    f = np.asarray(forecast, np.float64)
    f = f[np.isfinite(f) & (f > 0)]
    if f.size == 0:
        raise EvaluationError("vol sizing: no finite forecast on the train bars (fewer than a week of bars?)")
    if not cap > 1.0:
        raise EvaluationError(f"vol sizing: cap {cap} must exceed 1 for an average scale of 1")
    # mean scale at T = geometric-mean forecast is near 1; bracket generously around it
    centre = float(np.exp(np.mean(np.log(f))))
    lo, hi = math.log(centre) - 50.0, math.log(centre) + 50.0
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        if np.mean(np.minimum(np.sqrt(math.exp(mid) / f), cap)) < 1.0:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


@dataclass
class VolSizing:
    """A fitted forecaster, the target variance and the cap: everything that makes the scale."""

    forecaster: HarSeasonalForecaster
    target_rv: float
    cap: float

    @classmethod
    def fit(cls, close: object, times_ns: object, horizon: int, cap: float) -> VolSizing:
        """Fit on the train bars only: the forecaster on every train row, the target so that the
        average scale over the train rows with a forecast is 1."""
        c, t = _check_bars(close, times_ns, "vol sizing fit")
        if c.size <= WEEK_BARS + horizon:
            raise EvaluationError(
                f"vol sizing: the train split has {c.size} bars; the forecaster needs more than a week "
                f"({WEEK_BARS} M1 bars) plus the horizon ({horizon})"
            )
        fc = HarSeasonalForecaster(h=horizon).fit(c, t, np.arange(c.size))
        return cls(fc, target_for_unit_mean(fc.forecast(c, t), cap), cap)

    def scale(self, close: object, times_ns: object) -> np.ndarray:
        """(n,) scale at every bar from the bars up to it (0 during the forecaster's week of warm-up)."""
        c, t = _check_bars(close, times_ns, "vol sizing")
        return vol_target_scale(self.forecaster.forecast(c, t), self.target_rv, self.cap)

    def scale_last(self, close: object, times_ns: object) -> float:
        """The scale at the LAST bar of a buffer of recent bars, for a live loop that appends one bar
        at a time: it reads only the last `ONLINE_BUFFER_BARS` bars (a longer buffer gives the same
        value), and equals `scale(...)[t]` on the full history."""
        c, t = _check_bars(close, times_ns, "vol sizing (online)")
        if c.size == 0:
            raise EvaluationError("vol sizing (online): the bar buffer is empty")
        c, t = c[-ONLINE_BUFFER_BARS:], t[-ONLINE_BUFFER_BARS:]
        return float(self.scale(c, t)[-1])

    def to_dict(self) -> dict:
        return {"forecaster": self.forecaster.to_dict(), "target_rv": self.target_rv, "cap": self.cap}

    @classmethod
    def from_dict(cls, d: dict) -> VolSizing:
        try:
            fc = HarSeasonalForecaster.from_dict(d["forecaster"])
            target, cap = float(d["target_rv"]), float(d["cap"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EvaluationError(f"VolSizing.from_dict: bad or missing field ({exc})") from None
        if not (target > 0 and cap > 0):
            raise EvaluationError(f"VolSizing.from_dict: target_rv ({target}) and cap ({cap}) must be positive")
        return cls(fc, target, cap)


_SIDE_KEYS = ("sharpe", "total_return", "annualised_volatility", "max_drawdown", "turnover", "fees_paid")


def hold_step(held: float, previous_position: float, position: float, raw: float, band: float) -> float:
    """The scale applied at this bar: the raw one when the policy's position changed, nothing is
    held yet, the raw scale is 0 (warm-up) or it moved more than `band` (relative) from the held
    one; otherwise the held one."""
    if position != previous_position or held <= 0.0 or raw <= 0.0 or abs(raw - held) > band * held:
        return raw
    return held


def held_scale(scale: np.ndarray, positions: np.ndarray, band: float) -> np.ndarray:
    """(n,) the applied scale under the rebalancing band (band 0: the raw scale, unchanged).
    Sequential by nature (each bar depends on what is held), and reads nothing after bar t."""
    s, p = np.asarray(scale, np.float64), np.asarray(positions, np.float64)
    if band < 0:
        raise EvaluationError(f"vol sizing: the rebalancing band ({band}) must be >= 0")
    if band == 0.0:
        return s.copy()
    out = np.empty_like(s)
    held, prev = 0.0, float("nan")
    for t, (raw, pos) in enumerate(zip(s.tolist(), p.tolist(), strict=True)):
        held = hold_step(held, prev, pos, raw, band)
        out[t], prev = held, pos
    return out


@dataclass
class OnlineScale:
    """`held_scale` one bar at a time: the scale a live loop applies at its newest bar, from a buffer
    of recent bars and the policy's position decided there. It keeps what `held_scale` threads
    through its loop (the held scale, the previous position), so bar by bar it gives the same values."""

    sizing: VolSizing
    band: float
    held: float = 0.0
    previous: float = math.nan

    def step(self, close: object, times_ns: object, position: float) -> tuple[float, float]:
        """(raw scale, applied scale) at the last bar of the buffer; advances the state."""
        raw = self.sizing.scale_last(close, times_ns)
        self.held = hold_step(self.held, self.previous, float(position), raw, self.band)
        self.previous = float(position)
        return raw, self.held


def _utc_iso(t_ns: int) -> str:
    return str(np.datetime64(int(t_ns), "ns").astype("datetime64[s]")) + "Z"


@dataclass(frozen=True)
class TrainedVolSizing:
    """A `VolSizing` fitted on an agent's train split, the rebalancing band it is applied with, and
    what it was fitted on (bars, first and last bar time): the `vol_sizing` entry of a checkpoint."""

    sizing: VolSizing
    band: float
    fitted_on: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, close: object, times_ns: object, horizon: int, cap: float, band: float) -> TrainedVolSizing:
        if band < 0:
            raise EvaluationError(f"vol sizing: the rebalancing band ({band}) must be >= 0")
        c, t = _check_bars(close, times_ns, "vol sizing fit")
        sizing = VolSizing.fit(c, t, horizon, cap)
        return cls(sizing, float(band), {"bars": int(c.size), "first": _utc_iso(t[0]), "last": _utc_iso(t[-1])})

    def describe(self) -> str:
        f = self.fitted_on
        return (
            f"HAR-RV + seasonality forecast of the next {self.sizing.forecaster.h} M1 bars' variance, "
            f"target {self.sizing.target_rv:.3g}, cap {self.sizing.cap:g}, band {self.band:g}; fitted on "
            f"{f.get('bars', '?')} train bars {f.get('first', '?')} .. {f.get('last', '?')}"
        )

    def to_state(self) -> dict:
        return {"sizing": self.sizing.to_dict(), "band": self.band, "fitted_on": dict(self.fitted_on)}

    @classmethod
    def from_state(cls, d: dict) -> TrainedVolSizing:
        if not isinstance(d, dict) or "sizing" not in d or "band" not in d:
            raise EvaluationError("TrainedVolSizing.from_state: expected the fields sizing and band")
        try:
            band = float(d["band"])
        except (TypeError, ValueError):
            raise EvaluationError(f"TrainedVolSizing.from_state: band {d['band']!r} is not a number") from None
        if not band >= 0:
            raise EvaluationError(f"TrainedVolSizing.from_state: band ({band}) must be >= 0")
        return cls(VolSizing.from_dict(d["sizing"]), band, dict(d.get("fitted_on") or {}))


def _side(bt, ppy: float) -> dict:
    m = performance_metrics(bt.returns, ppy, positions=bt.positions, costs_paid=bt.costs, allow_constant=True)
    return {k: m.get(k) for k in _SIDE_KEYS}


def compare_sizing(
    policies: dict[str, np.ndarray],
    open_: np.ndarray,
    close: np.ndarray,
    scale: np.ndarray,
    costs: CostConfig,
    periods_per_year: float,
    n_resamples: int,
    confidence: float,
    seed: int,
    band: float = 0.0,
    block_length: float | None = None,
) -> dict[str, dict]:
    """Per policy: constant size vs the same positions times `scale` (held within `band`, see
    `held_scale`), both net of `costs` on the bars where the scale exists (from the first bar with
    a forecast on), with the paired block bootstrap interval of the annualised Sharpe difference
    (vol-targeted minus constant)."""
    s = np.asarray(scale, np.float64)
    live = np.flatnonzero(s > 0)
    if live.size == 0 or s.size - live[0] < 3:
        raise EvaluationError("vol sizing: fewer than 3 bars with a volatility forecast in the evaluated data")
    k = int(live[0])
    o, c = np.asarray(open_, np.float64)[k:], np.asarray(close, np.float64)[k:]
    out: dict[str, dict] = {}
    for i, (name, pos) in enumerate(policies.items()):
        p = np.asarray(pos, np.float64)
        if p.shape != s.shape:
            raise EvaluationError(f"vol sizing: policy {name!r} has {p.size} positions for {s.size} bars")
        const, scaled = backtest(p[k:], o, c, costs), backtest(p[k:] * held_scale(s[k:], p[k:], band), o, c, costs)
        if np.ptp(const.returns) == 0.0:
            continue  # a policy that never holds anything has nothing to size
        cmp = compare_returns(
            scaled.returns,
            const.returns,
            name,
            0.0,
            periods_per_year,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed + i,
            block_length=block_length,
        )
        out[name] = {
            "constant": _side(const, periods_per_year),
            "vol_target": _side(scaled, periods_per_year),
            "difference": {"sharpe": {"estimate": cmp.estimate, "low": cmp.low, "high": cmp.high}, "word": cmp.word},
        }
    return out


def vol_sizing_section(
    sizing: VolSizing,
    scale: np.ndarray,
    policies: dict[str, np.ndarray],
    open_: np.ndarray,
    close: np.ndarray,
    costs: CostConfig,
    periods_per_year: float,
    n_resamples: int,
    confidence: float,
    seed: int,
    history_bars: int,
    band: float = 0.0,
    source: str = "fitted by ztb eval on the train split",
) -> dict:
    """The report's `vol_sizing` section (JSON-ready); `source` says where the forecaster came from."""
    s = np.asarray(scale, np.float64)
    live = s[s > 0]
    return {
        "method": "Moreira-Muir volatility targeting: position x min(sqrt(target / forecast), cap); "
        "HAR-RV + seasonality forecast from bars up to the decision bar, fitted on the train split; "
        "target: average scale 1 on train",
        "source": source,
        "horizon_bars": sizing.forecaster.h,
        "cap": sizing.cap,
        "band": band,
        "target_rv": sizing.target_rv,
        "history_bars": int(history_bars),
        "n_bars_scored": int(s.size - (np.flatnonzero(s > 0)[0] if live.size else s.size)),
        "scale": {
            "mean": float(live.mean()) if live.size else None,
            "min": float(live.min()) if live.size else None,
            "max": float(live.max()) if live.size else None,
            "fraction_capped": float(np.mean(live >= sizing.cap)) if live.size else None,
        },
        "confidence": confidence,
        "policies": compare_sizing(
            policies, open_, close, s, costs, periods_per_year, n_resamples, confidence, seed, band
        ),
        "forecaster": sizing.to_dict(),
    }
