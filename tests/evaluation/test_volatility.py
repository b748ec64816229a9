"""The simple volatility forecasters on simulated markets whose answer is known: persistent
log-variance (a stochastic-volatility process, the continuous cousin of GARCH/HAR) and an
intraday pattern. HAR must load positively on recent variance and beat a constant forecast;
seasonality must add what the clock explains; nothing may read the future."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ztb_core.data.schema import index_ns
from ztb_core.evaluation.volatility import (
    HarSeasonalForecaster,
    ewma_forecast,
    fit_log_variance_ridge,
    har_features,
    log_returns,
    mincer_zarnowitz,
    qlike,
    seasonal_features,
    seasonal_profile,
    target_rv,
    vol_target_scale,
)

N = 6 * 7 * 1440  # six weeks of 24/7 minutes


def _market(persistence: float, season_amp: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = index_ns(pd.date_range("2021-01-04", periods=N, freq="1min", tz="UTC"))
    # log variance: AR(1) with a half-life of ~ln2/(1-phi) minutes, plus a daily cycle
    eta = rng.standard_normal(N) * 0.15
    lv = lfilter([1.0], [1.0, -persistence], eta)
    hour = (times // 60_000_000_000 // 60) % 24
    lv = lv + season_amp * np.cos(2 * np.pi * hour / 24)
    sigma = 1e-4 * np.exp(lv / 2)
    close = 100 * np.exp(np.cumsum(sigma * rng.standard_normal(N)))
    return close, times


def _split(n):
    train = np.arange(8 * 1440, int(n * 0.6))
    test = np.arange(int(n * 0.6) + 1440, n)
    return train, test


def _score(close, times, h, cols):
    r = log_returns(close, times)
    y = np.log(target_rv(r, times, h))
    train, test = _split(len(r))
    X = cols(r, train)
    ok = lambda rows: rows[np.isfinite(y[rows]) & np.isfinite(X[rows]).all(axis=1)]  # noqa: E731
    tr, te = ok(train), ok(test)
    fit = fit_log_variance_ridge(X[tr], y[tr], 0.0)
    rv = np.exp(y[te])
    return fit, float(qlike(rv, fit.predict_level(X[te])).mean()), rv, y, tr, te


def test_har_recovers_persistence_and_beats_a_constant():
    close, times = _market(persistence=0.999, season_amp=0.0)
    fit, loss_har, rv, y, tr, te = _score(close, times, 60, lambda r, rows: har_features(r, 60))
    # the most recent component carries the signal: positive coefficient
    assert fit.raw_coef()[0] > 0.1, fit.raw_coef()
    constant = np.full(len(te), np.exp(y[tr]).mean())
    assert loss_har < 0.8 * float(qlike(rv, constant).mean())


def test_har_finds_nothing_in_iid_returns():
    """Positive control of the test above: constant volatility gives no HAR edge."""
    close, times = _market(persistence=0.0, season_amp=0.0)
    fit, loss_har, rv, y, tr, te = _score(close, times, 60, lambda r, rows: har_features(r, 60))
    constant = np.full(len(te), np.exp(y[tr]).mean())
    assert loss_har > 0.97 * float(qlike(rv, constant).mean())


def test_seasonality_adds_the_intraday_pattern():
    close, times = _market(persistence=0.95, season_amp=1.0)

    def with_season(r, rows):
        return np.concatenate([har_features(r, 60), seasonal_features(seasonal_profile(r, times, rows), times, 60)], 1)

    _, loss_har, *_ = _score(close, times, 60, lambda r, rows: har_features(r, 60))
    _, loss_season, *_ = _score(close, times, 60, with_season)
    assert loss_season < 0.8 * loss_har


def test_forecaster_object_matches_and_never_reads_ahead():
    close, times = _market(persistence=0.999, season_amp=0.5)
    train, _ = _split(N)
    fc = HarSeasonalForecaster(h=60).fit(close, times, train)
    full = fc.forecast(close, times)
    t = N - 5000
    # truncating the history after bar t leaves its forecast unchanged
    cut = fc.forecast(close[: t + 1], times[: t + 1])
    assert cut[-1] == pytest.approx(full[t], rel=1e-12)
    assert np.isfinite(full[8 * 1440 :]).all()


def test_ewma_and_mz_basics():
    close, times = _market(persistence=0.999, season_amp=0.0)
    r = log_returns(close, times)
    f = ewma_forecast(r, 60)
    cut = ewma_forecast(r[:1000], 60)
    assert f[999] == pytest.approx(cut[-1], rel=1e-12)  # causal
    rv = target_rv(r, times, 60)
    ok = np.isfinite(rv)
    mz = mincer_zarnowitz(rv[ok], np.log(f[ok]))
    assert 0.3 < mz["slope"] < 1.5 and mz["r2"] > 0.1


def test_gap_returns_are_zero_and_targets_skip_weekends():
    times = np.r_[
        index_ns(pd.date_range("2021-01-08 21:00", periods=120, freq="1min", tz="UTC")),
        index_ns(pd.date_range("2021-01-10 22:00", periods=120, freq="1min", tz="UTC")),
    ]
    close = np.r_[np.full(120, 100.0), np.full(120, 110.0)] * np.exp(np.arange(240) * 1e-5)
    r = log_returns(close, times)
    assert r[120] == 0.0  # the weekend jump is not a minute's return
    rv = target_rv(r, times, 60)
    assert np.isnan(rv[100])  # its next 60 bars straddle the weekend
    assert np.isfinite(rv[10]) and np.isfinite(rv[130])


def test_seasonality_adds_nothing_without_a_pattern():
    """Positive control: with no clock pattern the seasonal regressors do not help."""
    close, times = _market(persistence=0.95, season_amp=0.0)

    def with_season(r, rows):
        return np.concatenate([har_features(r, 60), seasonal_features(seasonal_profile(r, times, rows), times, 60)], 1)

    _, loss_har, *_ = _score(close, times, 60, lambda r, rows: har_features(r, 60))
    _, loss_season, *_ = _score(close, times, 60, with_season)
    assert loss_season > 0.95 * loss_har


def test_stored_forecaster_gives_the_same_forecasts():
    close, times = _market(persistence=0.999, season_amp=0.5)
    train, _ = _split(N)
    fc = HarSeasonalForecaster(h=60).fit(close, times, train)
    again = HarSeasonalForecaster.from_dict(json.loads(json.dumps(fc.to_dict())))
    a, b = fc.forecast(close, times), again.forecast(close, times)
    ok = np.isfinite(a)
    assert ok.sum() > N // 2
    np.testing.assert_allclose(b[ok], a[ok], rtol=1e-12)
    scale = vol_target_scale(a, target_rv=float(np.nanmedian(a)), cap=2.0)
    assert scale[~ok].max() == 0.0 and scale[ok].max() <= 2.0
    # quieter forecast -> larger exposure
    i, j = np.nanargmin(a), np.nanargmax(a)
    assert scale[i] > scale[j]
