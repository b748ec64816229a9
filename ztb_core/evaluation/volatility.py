"""Realised-variance targets and the simple volatility forecasters an encoder has to beat.

Everything is vectorised numpy over M1 bars (cumulative sums and one linear filter, no loop
over bars):

* target: the realised variance (sum of squared M1 log returns) of the next `h` returns after a
  bar's close, RV(t, h) = sum r_{t+1..t+h}^2. A return across a gap of more than `GAP_MINUTES`
  (weekend, holiday) is a jump between sessions, not a minute's variation: it is set to 0.
* HAR-RV (Corsi 2009) in logs: log RV(t, h) regressed on the log mean squared return over the
  last h, 4h, one day (1440 bars) and one week (7200 bars: five trading days) — the hour / day /
  week components of the daily model, adapted to an intraday horizon.
* seasonality (Andersen & Bollerslev 1997): the mean squared return per 30-minute bucket of the
  day times a day-of-week factor, fitted on the training rows only; as regressors the log seasonal level of the next h
  wall-clock minutes (known in advance: it only depends on the clock) and of the last h minutes
  (so the regression can deseasonalise the latest component). HAR + these two is the strongest
  simple rule here.
* EWMA / RiskMetrics: lambda 0.94 per horizon-length block, i.e. per-minute decay 0.94^(1/h), on
  squared M1 returns; forecast h times the smoothed per-minute variance.

Regression forecasts live in log space; the level forecast multiplies exp(log forecast) by the
mean of exp(train residual) (Duan's smearing estimate of E[RV]), which QLIKE needs. Losses:
QLIKE (Patton 2011) on levels, MSE of log variance, and the Mincer–Zarnowitz regression of log
realised on log forecast.

`HarSeasonalForecaster` is the reusable rule: fit on a bar history, forecast RV(t, h) for any
bar from the bars up to t only (sizing can use it; nothing here reads the future except the
target).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from .errors import EvaluationError

NS_PER_MINUTE = 60_000_000_000
MINUTES_PER_WEEK = 7 * 1440
#: a bar more than this many minutes after the previous one opens a new session: its return is 0
GAP_MINUTES = 60
#: width of a seasonal bucket (minutes of the week)
SEASON_BUCKET = 30
#: bars in a trading day / a trading week (FX: five days of 1440 minutes)
DAY_BARS, WEEK_BARS = 1440, 7200
#: RiskMetrics decay per horizon-length block
RISKMETRICS_LAMBDA = 0.94
#: floor for variances before taking logs (far below one quiet minute of USD/JPY, ~1e-9)
VAR_FLOOR = 1e-14


def log_returns(close: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
    """(n,) one-bar log returns; 0 for the first bar and for a bar after a gap > GAP_MINUTES."""
    c = np.asarray(close, np.float64)
    if c.ndim != 1 or len(c) != len(times_ns):
        raise EvaluationError(f"log_returns: close {c.shape} and times {np.shape(times_ns)} must be aligned 1-D")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise EvaluationError("log_returns: close prices must be finite and positive")
    r = np.zeros(len(c))
    r[1:] = np.diff(np.log(c))
    gap = np.zeros(len(c), bool)
    gap[1:] = np.diff(np.asarray(times_ns, np.int64)) > GAP_MINUTES * NS_PER_MINUTE
    r[gap] = 0.0
    return r


def trailing_mean(x: np.ndarray, w: int) -> np.ndarray:
    """(n,) mean of x[t-w+1 .. t]; NaN where fewer than w values exist."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1 :] = (c[w:] - c[:-w]) / w
    return out


def future_sum(x: np.ndarray, h: int) -> np.ndarray:
    """(n,) sum of x[t+1 .. t+h]; NaN where fewer than h values follow."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    if len(x) > h:
        out[: len(x) - h] = c[h + 1 :] - c[1 : len(x) - h + 1]
    return out


def target_rv(r: np.ndarray, times_ns: np.ndarray, h: int) -> np.ndarray:
    """(n,) RV of the next h returns; NaN where they are not all there, span more than 2h
    wall-clock minutes (a weekend or holiday inside) or show no price change at all."""
    rv = future_sum(r * r, h)
    t = np.asarray(times_ns, np.int64)
    span = np.full(len(t), np.iinfo(np.int64).max)
    span[: len(t) - h] = t[h:] - t[: len(t) - h]
    rv[span > 2 * h * NS_PER_MINUTE] = np.nan
    rv[rv <= 0] = np.nan
    return rv


def har_windows(h: int) -> tuple[int, ...]:
    """Trailing windows (bars) of the HAR components for horizon h: h, 4h, a day, a week."""
    return tuple(sorted({h, 4 * h, DAY_BARS, WEEK_BARS}))


def har_features(r: np.ndarray, h: int) -> np.ndarray:
    """(n, k) log mean squared return over each HAR window (NaN during warm-up)."""
    r2 = r * r
    return np.stack([np.log(trailing_mean(r2, w) + VAR_FLOOR) for w in har_windows(h)], axis=1)


def minute_of_week(times_ns: np.ndarray) -> np.ndarray:
    """(n,) minutes since Monday 00:00 UTC of each bar's open."""
    minutes = np.asarray(times_ns, np.int64) // NS_PER_MINUTE
    # 1970-01-01 was a Thursday: shift so that 0 is Monday 00:00
    return ((minutes + 3 * 1440) % MINUTES_PER_WEEK).astype(np.int64)


def seasonal_profile(r: np.ndarray, times_ns: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """(MINUTES_PER_WEEK,) per-minute seasonal variance over `fit_rows`: the mean squared return
    of the minute's SEASON_BUCKET-minute bucket of the DAY (pooled over all days) times the
    weekday's factor (its mean squared return over the overall mean). Pooling across days keeps
    the profile from memorising the volatility clusters of a few weeks, which a per-bucket-of-week
    profile does out of sample. Empty buckets get the overall mean."""
    rows = np.asarray(fit_rows, np.int64)
    if rows.size == 0:
        raise EvaluationError("seasonal_profile: no rows to fit the seasonality on")
    mow = minute_of_week(np.asarray(times_ns)[rows])
    r2 = r[rows] ** 2
    overall = max(float(r2.mean()), VAR_FLOOR)

    def means(keys: np.ndarray, n: int) -> np.ndarray:
        s, k = np.bincount(keys, weights=r2, minlength=n), np.bincount(keys, minlength=n)
        return np.where(k > 0, s / np.maximum(k, 1), overall)

    tod = means((mow % 1440) // SEASON_BUCKET, 1440 // SEASON_BUCKET)
    dow = means(mow // 1440, 7) / overall
    per_minute = np.tile(np.repeat(tod, SEASON_BUCKET), 7) * np.repeat(dow, 1440)
    return np.maximum(per_minute, VAR_FLOOR)


def seasonal_features(profile: np.ndarray, times_ns: np.ndarray, h: int) -> np.ndarray:
    """(n, 2) log mean seasonal variance over the next h and the last h wall-clock minutes."""
    c = np.concatenate([[0.0], np.cumsum(np.tile(profile, 3))])  # three weeks: no wrap-around
    m = minute_of_week(times_ns) + MINUTES_PER_WEEK  # the middle week
    ahead = (c[m + 1 + h] - c[m + 1]) / h  # minutes after this bar: m+1 .. m+h
    behind = (c[m + 1] - c[m + 1 - h]) / h  # this minute and the h-1 before it
    return np.log(np.stack([ahead, behind], axis=1))


def ewma_forecast(r: np.ndarray, h: int, lam: float = RISKMETRICS_LAMBDA) -> np.ndarray:
    """(n,) RiskMetrics forecast of RV(t, h): h times the EWMA of squared returns up to t with
    per-minute decay lam^(1/h). Starts from 0 (any start read from the data would look ahead);
    the first few h bars are warm-up."""
    r2 = r * r
    a = lam ** (1.0 / h)
    v = lfilter([1.0 - a], [1.0, -a], r2)
    return h * np.maximum(v, VAR_FLOOR)


# ---- regression ---------------------------------------------------------------------------------


@dataclass
class RidgeFit:
    """Ridge on standardised columns (intercept unpenalised) in log-variance space."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float
    smear: float = 1.0  # mean exp(train residual): level forecast = exp(log forecast) * smear

    def predict_log(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale) @ self.coef + self.intercept

    def predict_level(self, X: np.ndarray) -> np.ndarray:
        return np.exp(self.predict_log(X)) * self.smear

    def raw_coef(self) -> np.ndarray:
        """Coefficients on the original (unstandardised) columns."""
        return self.coef / self.scale


def fit_log_variance_ridge(X: np.ndarray, y: np.ndarray, alpha: float) -> RidgeFit:
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    if len(X) != len(y) or len(y) < X.shape[1] + 2:
        raise EvaluationError(f"fit_log_variance_ridge: {len(y)} rows for {X.shape[1]} columns")
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    ym = float(y.mean())
    k = Z.shape[1]
    coef = np.linalg.solve(Z.T @ Z + alpha * len(y) * np.eye(k), Z.T @ (y - ym))
    fit = RidgeFit(mean, scale, coef, ym, alpha)
    fit.smear = float(np.mean(np.exp(y - fit.predict_log(X))))
    return fit


def fit_ridge_on_val(
    X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray, alphas: tuple[float, ...]
) -> RidgeFit:
    """The ridge whose penalty (per row, on standardised columns) has the lowest val MSE."""
    fits = [fit_log_variance_ridge(X_tr, y_tr, a) for a in alphas]
    errs = [float(np.mean((f.predict_log(X_va) - y_va) ** 2)) for f in fits]
    return fits[int(np.argmin(errs))]


# ---- losses ----------------------------------------------------------------------------------------


def qlike(rv: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Per-sample QLIKE RV/F - log(RV/F) - 1 (0 for a perfect forecast, robust to proxy noise)."""
    q = np.asarray(rv) / np.asarray(forecast)
    return q - np.log(q) - 1.0


def mse_log(rv: np.ndarray, log_forecast: np.ndarray) -> np.ndarray:
    return (np.log(rv) - np.asarray(log_forecast)) ** 2


def mincer_zarnowitz(rv: np.ndarray, log_forecast: np.ndarray) -> dict[str, float]:
    """log RV = a + b log F + e: intercept, slope and R² (a good forecast: a≈0, b≈1)."""
    y, x = np.log(rv), np.asarray(log_forecast, np.float64)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    b = float(xc @ (y - y.mean()) / sxx) if sxx > 0 else 0.0
    a = float(y.mean() - b * x.mean())
    resid = y - a - b * x
    tss = float(((y - y.mean()) ** 2).sum())
    return {"intercept": a, "slope": b, "r2": 1.0 - float(resid @ resid) / tss if tss > 0 else 0.0}


# ---- the reusable rule --------------------------------------------------------------------------------


@dataclass
class HarSeasonalForecaster:
    """HAR-RV + time-of-week seasonality for horizon `h` M1 bars, as one object: `fit` on a bar
    history (rows to fit on), `forecast` RV(t, h) at any rows from bars up to t only."""

    h: int
    profile: np.ndarray = field(default_factory=lambda: np.ones(MINUTES_PER_WEEK))
    fit_: RidgeFit | None = None

    def features(self, close: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        r = log_returns(close, times_ns)
        return np.concatenate([har_features(r, self.h), seasonal_features(self.profile, times_ns, self.h)], axis=1)

    def fit(self, close: np.ndarray, times_ns: np.ndarray, rows: np.ndarray) -> HarSeasonalForecaster:
        r = log_returns(close, times_ns)
        rows = np.asarray(rows, np.int64)
        self.profile = seasonal_profile(r, times_ns, rows)
        X = self.features(close, times_ns)
        y = np.log(target_rv(r, times_ns, self.h))
        ok = rows[np.isfinite(y[rows]) & np.isfinite(X[rows]).all(axis=1)]
        self.fit_ = fit_log_variance_ridge(X[ok], y[ok], 0.0)
        return self

    def forecast(self, close: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        """(n,) expected RV of the next h returns after each bar (NaN during the week of warm-up)."""
        if self.fit_ is None:
            raise EvaluationError("HarSeasonalForecaster: fit it before forecasting")
        return self.fit_.predict_level(self.features(close, times_ns))

    def to_dict(self) -> dict:
        """Everything `from_dict` needs (JSON-ready): store it beside a checkpoint so an online
        consumer rebuilds the same forecaster without the fitting data."""
        if self.fit_ is None:
            raise EvaluationError("HarSeasonalForecaster: fit it before saving")
        f = self.fit_
        return {
            "h": self.h,
            "profile": self.profile.tolist(),
            "mean": f.mean.tolist(),
            "scale": f.scale.tolist(),
            "coef": f.coef.tolist(),
            "intercept": f.intercept,
            "alpha": f.alpha,
            "smear": f.smear,
        }

    @classmethod
    def from_dict(cls, d: dict) -> HarSeasonalForecaster:
        try:
            fit = RidgeFit(
                np.asarray(d["mean"], np.float64),
                np.asarray(d["scale"], np.float64),
                np.asarray(d["coef"], np.float64),
                float(d["intercept"]),
                float(d["alpha"]),
                float(d["smear"]),
            )
            profile = np.asarray(d["profile"], np.float64)
            h = int(d["h"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EvaluationError(f"HarSeasonalForecaster.from_dict: bad or missing field ({exc})") from None
        if profile.shape != (MINUTES_PER_WEEK,):
            raise EvaluationError(
                f"HarSeasonalForecaster.from_dict: profile has {profile.shape}, expected one value a minute of the week"
            )
        return cls(h=h, profile=profile, fit_=fit)


def vol_target_scale(forecast_rv: np.ndarray, target_rv: float, cap: float = 2.0) -> np.ndarray:
    """Volatility-managed exposure (Moreira & Muir 2017): sqrt(target / forecast) variance over the
    same horizon, capped at `cap` (a quiet market must not lever up without bound); 0 where the
    forecast is missing (warm-up), so no position is sized on nothing."""
    f = np.asarray(forecast_rv, np.float64)
    if not target_rv > 0 or not cap > 0:
        raise EvaluationError(f"vol_target_scale: target_rv ({target_rv}) and cap ({cap}) must be positive")
    out = np.zeros_like(f)
    ok = np.isfinite(f) & (f > 0)
    out[ok] = np.minimum(np.sqrt(target_rv / f[ok]), cap)
    return out
