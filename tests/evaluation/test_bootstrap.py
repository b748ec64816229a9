"""Block bootstrap: interval coverage on returns with a known Sharpe, pairing, samplers."""

from __future__ import annotations

import numpy as np
import pytest

from ztb_core.evaluation import EvaluationError, bootstrap_ci, bootstrap_statistics, estimate_block_length
from ztb_core.evaluation.bootstrap import block_indices, point_statistics


@pytest.mark.parametrize("method", ["stationary", "circular"])
def test_sharpe_interval_covers_the_true_sharpe_about_95_percent_of_the_time(method):
    true_sharpe = 0.1  # per period: mean 0.001, sd 0.01
    sims, covered = 200, 0
    rng = np.random.default_rng(2024)
    for i in range(sims):
        r = rng.normal(0.001, 0.01, 500)
        ci = bootstrap_ci(r, "sharpe", periods_per_year=1, n_resamples=200, block_length=3, method=method, seed=i)
        covered += ci.low <= true_sharpe <= ci.high
    coverage = covered / sims
    # binomial sd at 95% over 200 simulations is 1.5 points; percentile intervals run slightly narrow
    assert 0.89 <= coverage <= 0.99, f"coverage {coverage:.3f}"


def test_interval_brackets_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    short = rng.normal(0.0005, 0.01, 300)
    long = rng.normal(0.0005, 0.01, 5000)
    a = bootstrap_ci(short, "sharpe", 252, 300, seed=1)
    b = bootstrap_ci(long, "sharpe", 252, 300, seed=1)
    assert a.low < a.estimate < a.high
    assert (b.high - b.low) < (a.high - a.low) / 2
    assert a.samples.shape == (300,)


def test_max_drawdown_and_total_return_intervals():
    rng = np.random.default_rng(5)
    r = rng.normal(0.0002, 0.01, 1000)
    dd = bootstrap_ci(r, "max_drawdown", n_resamples=300, seed=0)
    tr = bootstrap_ci(r, "total_return", n_resamples=300, seed=0)
    equity = np.cumprod(1 + r)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    assert dd.estimate == pytest.approx(float(1 - (equity / peak).min()))
    assert tr.estimate == pytest.approx(float(equity[-1] - 1))
    assert 0 < dd.low <= dd.high < 1
    assert tr.low < tr.estimate < tr.high


def test_joint_resampling_keeps_columns_paired():
    rng = np.random.default_rng(9)
    r = rng.normal(0.0, 0.01, 800)
    samples, _ = bootstrap_statistics(
        np.column_stack([r, r, 2 * r]), 252, 100, 5.0, "stationary", seed=3, drawdown_columns=[0, 1]
    )
    np.testing.assert_allclose(samples["sharpe"][:, 0], samples["sharpe"][:, 1])
    np.testing.assert_allclose(samples["sharpe"][:, 0], samples["sharpe"][:, 2], rtol=1e-9)  # scale-free
    np.testing.assert_allclose(samples["max_drawdown"][:, 0], samples["max_drawdown"][:, 1])
    assert samples["max_drawdown"].shape == (100, 2)


def test_resampled_statistics_equal_direct_computation_on_the_same_indices():
    rng = np.random.default_rng(11)
    r = rng.normal(0.0003, 0.01, 400)
    samples, b = bootstrap_statistics(r, 252, 20, 4.0, "circular", seed=7)
    from ztb_core.evaluation.bootstrap import resample_index_chunks

    idx = np.concatenate(list(resample_index_chunks(400, 20, 4.0, "circular", 7, chunk=20)))
    for k in range(20):
        direct = point_statistics(r[idx[k]], 252)
        assert samples["sharpe"][k, 0] == pytest.approx(direct["sharpe"][0])
        assert samples["total_return"][k, 0] == pytest.approx(direct["total_return"][0])
        assert samples["max_drawdown"][k, 0] == pytest.approx(direct["max_drawdown"][0])


def test_same_seed_same_interval():
    r = np.random.default_rng(1).normal(0, 0.01, 500)
    a = bootstrap_ci(r, n_resamples=100, seed=42)
    b = bootstrap_ci(r, n_resamples=100, seed=42)
    assert (a.low, a.high) == (b.low, b.high)


def test_block_length_estimate_grows_with_serial_dependence():
    rng = np.random.default_rng(0)
    e = rng.normal(size=5000)
    ar = np.empty_like(e)
    ar[0] = e[0]
    for t in range(1, e.size):
        ar[t] = 0.8 * ar[t - 1] + e[t]
    assert estimate_block_length(ar * 1e-3) > 3 * estimate_block_length(e * 1e-3)


def test_samplers_draw_blocks_of_the_requested_shape():
    rng = np.random.default_rng(0)
    idx = block_indices(1000, 5000, 20, 10.0, "stationary", rng)
    assert idx.shape == (20, 5000) and idx.min() >= 0 and idx.max() < 1000
    breaks = np.count_nonzero(np.diff(idx, axis=1) != 1) / idx[:, 1:].size
    assert breaks == pytest.approx(0.1, abs=0.02)  # mean block length 10
    nb = block_indices(1000, 100, 5, 10.0, "non_overlapping", rng)
    starts = nb[:, ::10]
    assert np.all(starts % 10 == 0)
    np.testing.assert_array_equal(nb[:, 1:10] - nb[:, :9], 1)
    cb = block_indices(1000, 100, 5, 10.0, "circular", rng)
    np.testing.assert_array_equal((cb[:, 1:10] - cb[:, :9]) % 1000, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "jackknife"}, "bootstrap method 'jackknife'"),
        ({"statistic": "sortino"}, "unknown bootstrap statistic"),
        ({"n_resamples": 5}, "at least 10"),
        ({"block_length": 0.5}, "block_length must be >= 1"),
        ({"confidence": 0.3}, "confidence"),
    ],
)
def test_bad_arguments(kwargs, match):
    r = np.random.default_rng(0).normal(0, 0.01, 100)
    with pytest.raises(EvaluationError, match=match):
        bootstrap_ci(r, **kwargs)


def test_bad_series():
    with pytest.raises(EvaluationError, match="is empty"):
        bootstrap_ci([])
    with pytest.raises(EvaluationError, match="NaN"):
        bootstrap_ci([0.01, np.nan, 0.02, 0.0])
    with pytest.raises(EvaluationError, match="volatility is zero"):
        bootstrap_ci(np.full(100, 0.001))


def test_very_short_series_resample_single_bars_instead_of_failing():
    r = np.array([0.01, -0.02, 0.015, -0.005])
    ci = bootstrap_ci(r, n_resamples=50, seed=0)
    assert ci.block_length == 1.0 and ci.low <= ci.high


def test_results_do_not_depend_on_threads_or_chunking_order(monkeypatch):
    import ztb_core.evaluation.bootstrap as bmod

    r = np.random.default_rng(2).normal(0.0001, 0.01, 200_000)  # 20 resamples a chunk -> 3 chunks
    two, _ = bootstrap_statistics(r, 252, 45, 8.0, "stationary", seed=5)
    monkeypatch.setattr(bmod, "_WORKERS", 1)
    one, _ = bootstrap_statistics(r, 252, 45, 8.0, "stationary", seed=5)
    for key in two:
        np.testing.assert_array_equal(two[key], one[key])
    assert len(set(np.round(two["sharpe"][:, 0], 12))) == 45  # every resample is a different draw
