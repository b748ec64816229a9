import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ztb_core.config import validate_config
from ztb_core.data.schema import BAR_COLUMNS
from ztb_core.data.synthetic import STRONG_SIGNAL, SyntheticConfig, generate_market, signal_ceiling
from ztb_core.errors import ConfigError


def _rets(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(df["close"].to_numpy()))


def test_same_seed_same_bars_and_schema():
    cfg = SyntheticConfig(seed=7, n_bars=5000)
    a, b = generate_market(cfg), generate_market(cfg)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 5000
    assert list(a.columns) == list(BAR_COLUMNS)
    assert str(a.index.dtype) == "datetime64[ns, UTC]" and a.index.name == "time"
    assert all(a[c].dtype == np.float64 for c in a.columns)
    assert a.index.is_monotonic_increasing and a.index.is_unique
    c = generate_market(SyntheticConfig(seed=8, n_bars=5000))
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_ohlc_invariants_hold():
    df = generate_market(SyntheticConfig(seed=1, n_bars=20000, market="crypto"))
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["low"] > 0).all() and (df["volume"] > 0).all() and (df["trades"] >= 1).all()


def test_fx_has_no_weekend_bars_and_gaps_at_the_sunday_open():
    df = generate_market(SyntheticConfig(seed=2, n_bars=30000, market="fx"))
    ny = df.index.tz_convert("America/New_York")
    minutes = ny.hour * 60 + ny.minute
    weekend = (
        ((ny.day_of_week == 4) & (minutes >= 17 * 60))
        | (ny.day_of_week == 5)
        | ((ny.day_of_week == 6) & (minutes < 17 * 60))
    )
    assert not weekend.any()
    step = np.diff(df.index.asi8) // 60_000_000_000
    assert (step > 1).sum() >= 2  # ~3 weeks of data: at least two weekends
    reopen = np.flatnonzero(step > 600) + 1
    gaps = np.log(df["open"].to_numpy()[reopen] / df["close"].to_numpy()[reopen - 1])
    assert np.all(gaps != 0)
    assert (df["volume"] == 0).all() and "trades" not in df.columns


def test_crypto_trades_every_minute():
    df = generate_market(SyntheticConfig(seed=3, n_bars=10000, market="crypto"))
    assert (np.diff(df.index.asi8) == 60_000_000_000).all()


def test_stylised_facts_fat_tails_clustering_seasonality():
    df = generate_market(SyntheticConfig(seed=4, n_bars=200_000, market="crypto"))
    r = _rets(df)
    z = (r - r.mean()) / r.std()
    assert (z**4).mean() > 5.0  # excess kurtosis: fat tails
    a = np.abs(r)
    assert np.corrcoef(a[1:], a[:-1])[0, 1] > 0.2  # volatility clustering (USD/JPY 2016: 0.36)
    hour = df.index.hour[1:]
    assert a[hour == 3].mean() > 2.0 * a[hour == 21].mean()  # Tokyo morning vs the quiet hour (USD/JPY: 3x)


def test_defaults_match_usdjpy_2016_statistics():
    """The calibration targets of benchmarks/calibrate_synthetic.py, on an FX calendar."""
    df = generate_market(SyntheticConfig(seed=0, n_bars=250_000))
    t = df.index.asi8
    r = _rets(df)[np.diff(t) == 60_000_000_000]
    assert r.std() == pytest.approx(2.23e-4, rel=0.1)
    rho = np.corrcoef(r[1:], r[:-1])[0, 1]
    assert -0.045 < rho < -0.005  # real: -0.024 (quote bounce); the old default was +0.079
    a = np.abs(r)
    assert np.corrcoef(a[60:], a[:-60])[0, 1] == pytest.approx(0.15, abs=0.06)


def test_bounce_gives_negative_lag1_autocorrelation_and_zero_gives_none():
    base = {"seed": 6, "n_bars": 200_000, "market": "crypto", "fast_vol_of_vol": 0.0, "tail_df": 1000.0}
    flat = _rets(generate_market(SyntheticConfig(**base, bounce=0.0)))
    bouncy = _rets(generate_market(SyntheticConfig(**base, bounce=0.3)))
    assert abs(np.corrcoef(flat[1:], flat[:-1])[0, 1]) < 0.01  # no free signal without a planted one
    assert np.corrcoef(bouncy[1:], bouncy[:-1])[0, 1] == pytest.approx(-0.3 / 1.09, abs=0.02)


def test_train_demo_market_keeps_the_real_lag1_autocorrelation_despite_its_signal():
    from ztb_core.rl.config import TrainConfig

    syn = TrainConfig().data.synthetic
    r = _rets(generate_market(syn))
    r = r[np.diff(generate_market(syn).index.asi8) == 60_000_000_000]
    assert -0.04 < np.corrcoef(r[1:], r[:-1])[0, 1] < -0.01  # USD/JPY 2016: -0.024
    assert np.corrcoef(r[5:], r[:-5])[0, 1] > 0.01  # the planted momentum shows at longer lags


def test_signal_ceiling_is_what_the_train_config_states():
    from ztb_core.rl.config import DEMO_PRICE_CEILING, DEMO_SIGNAL_CEILING, TrainConfig

    cfg = TrainConfig()
    got = signal_ceiling(cfg.data.synthetic, cfg.env.costs.rate)
    assert got.net_sharpe == pytest.approx(DEMO_SIGNAL_CEILING, rel=0.1)
    assert got.gross_sharpe > got.net_sharpe > 0
    prices = signal_ceiling(cfg.data.synthetic, cfg.env.costs.rate, observes="prices")
    assert prices.net_sharpe == pytest.approx(DEMO_PRICE_CEILING, rel=0.1)
    assert 0 < prices.net_sharpe < got.net_sharpe / 2  # seeing only prices costs most of the edge
    # positive control: no signal, no ceiling; a stronger signal, a higher one
    assert signal_ceiling(cfg.data.synthetic.model_copy(update={"signal_strength": 0.0}), 2e-4).net_sharpe == 0.0
    strong = signal_ceiling(cfg.data.synthetic.model_copy(update=STRONG_SIGNAL), cfg.env.costs.rate)
    assert strong.net_sharpe > 3 * got.net_sharpe


def test_the_price_filter_is_the_kalman_filter_of_the_latent_signal():
    """The closed-form gain is the fixed point of the Riccati recursion, and the filtered
    forecast tracks the latent signal better than any other exponential momentum does."""
    from ztb_core.data.synthetic import _forecasts, _simulate, price_filter_gain
    from ztb_core.rl.config import TrainConfig

    syn = TrainConfig().data.synthetic
    gain = price_filter_gain(syn)
    q, r, phi = 1 - syn.signal_persistence**2, (1 - syn.signal_strength) / syn.signal_strength, syn.signal_persistence
    post = 1.0
    for _ in range(5000):
        prior = phi * phi * post + q
        post = prior * r / (prior + r)
    assert gain == pytest.approx(prior / (prior + r), rel=1e-9)
    syn = syn.model_copy(update={"n_bars": 60_000})
    path = _simulate(syn)
    truth = path.expected

    def corr(k: float) -> float:
        y = path.ret / path.sigma / np.sqrt(syn.signal_strength)
        f = lfilter([k], [1.0, -(1.0 - k) * phi], y) * path.sigma
        return float(np.corrcoef(f[:-1], truth[:-1])[0, 1])

    filtered = _forecasts(syn, path, "prices")["expected_return"]
    assert np.corrcoef(filtered[:-1], truth[:-1])[0, 1] == pytest.approx(corr(gain))
    # positive control: a gain four times too fast or too slow tracks the signal worse
    assert corr(gain) > corr(4 * gain) and corr(gain) > corr(gain / 4)


def test_synthetic_market_conflicting_with_the_source_market_is_refused():
    from ztb_core.data.source import DataSourceConfig

    assert DataSourceConfig(market="crypto", synthetic={"market": "crypto"}).market == "crypto"
    assert DataSourceConfig(market="crypto").synthetic.market is None  # unset: the source's market rules
    assert SyntheticConfig().calendar == "fx"
    with pytest.raises(ValueError, match="synthetic.market='crypto' conflicts with market='fx'"):
        DataSourceConfig(synthetic={"market": "crypto"})


def test_signal_strength_makes_returns_predictable():
    cfg = SyntheticConfig(seed=5, n_bars=100_000, market="crypto", signal_strength=0.3, signal_persistence=0.9)
    r = _rets(generate_market(cfg))
    rho = np.corrcoef(r[1:], r[:-1])[0, 1]
    assert rho == pytest.approx(0.3 * 0.9, abs=0.04)
    # a momentum rule (sign of the last 5 returns) earns a positive mean return
    past = pd.Series(r).rolling(5).sum().to_numpy()[:-1]
    pnl = np.sign(past[5:]) * r[6:]
    assert pnl.mean() > 0.2 * r.std() / np.sqrt(10)


def test_config_rejects_bad_values_with_key_names():
    with pytest.raises(ConfigError, match="tail_df"):
        validate_config(SyntheticConfig, {"tail_df": 1.5})
    with pytest.raises(ConfigError, match="signal_strength"):
        validate_config(SyntheticConfig, {"signal_strength": 2})
