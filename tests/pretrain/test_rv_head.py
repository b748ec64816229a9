"""The auxiliary realised-variance head (`loss.rv_aux`): its target is the log realised variance of
the next h M1 returns relative to the M1 window's own (a gap return counts 0), it learns a
volatility pattern the window's shape reveals, and it leaves the exported encoder unchanged."""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from ztb_core.config import config_to_dict
from ztb_core.data.schema import utc_index
from ztb_core.pretrain.bars import timeframe_bars
from ztb_core.pretrain.config import PretrainConfig
from ztb_core.pretrain.evaluate import bare_trainer
from ztb_core.pretrain.export import load_encoder, save_encoder
from ztb_core.pretrain.module import PretrainDataModule, PretrainModule
from ztb_core.pretrain.prepare import prepare
from ztb_core.pretrain.rv_target import RelativeVolTarget

from .conftest import tiny_config


def vol_cycle_market(n: int = 24_000, period: int = 240, seed: int = 0, gap_at: int | None = None) -> pd.DataFrame:
    """A 24/7 random walk whose volatility swings by e^±1 over a 240-minute cycle: whether the next
    hour is calmer or wilder than the window is written in the window's shape (its phase)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    sigma = 2e-4 * np.exp(np.sin(2 * np.pi * t / period))
    logc = np.log(100.0) + np.cumsum(sigma * rng.standard_normal(n))
    times = pd.date_range("2021-01-01", periods=n, freq="1min", tz="UTC")
    if gap_at is not None:  # a two-day hole, like a weekend, and the price jumps across it
        times = times.where(t < gap_at, times + pd.Timedelta(days=2))
        logc[gap_at:] += 0.01
    close = np.exp(logc)
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + 1e-5),
            "low": np.minimum(open_, close) * (1 - 1e-5),
            "close": close,
            "volume": np.ones(n),
        },
        index=utc_index(pd.DatetimeIndex(times)),
    )


def test_the_target_is_the_log_variance_ahead_minus_inside_the_window_and_a_gap_counts_zero():
    m1 = vol_cycle_market(2_000, gap_at=1_000)
    bars, _ = timeframe_bars(m1, "M1", "crypto")
    target = RelativeVolTarget.from_bars(bars, (60, 240), window=32)
    close = np.log(m1["close"].to_numpy())
    r = np.diff(close, prepend=close[0])
    r[1_000] = 0.0  # the return across the two-day hole

    def direct(e: int, h: int) -> float:
        inside = np.mean(r[e - 30 : e + 1] ** 2)  # the window's 31 returns (rows e-31..e)
        return float(np.clip(np.log(np.mean(r[e + 1 : e + h + 1] ** 2)) - np.log(inside), -5, 5))

    rows = np.array([100, 980, 1_500, 1_939, 1_940, 1_999])
    got, ok = target.targets(rows)
    assert ok.tolist() == [[True, True], [True, True], [True, True], [True, False], [False, False], [False, False]]
    for i, e in enumerate(rows):
        for j, h in enumerate((60, 240)):
            if ok[i, j]:
                assert got[i, j] == pytest.approx(direct(int(e), h), abs=1e-5)
            else:
                assert got[i, j] == 0.0
    # control: counted as a return, the hole's jump would change the row whose hour ahead spans it
    r_kept = np.diff(close, prepend=close[0])
    kept = np.log(np.mean(r_kept[981:1041] ** 2)) - np.log(np.mean(r_kept[950:981] ** 2))
    assert abs(kept - got[1, 0]) > 0.5


def test_the_head_needs_m1_in_the_window(tmp_path):
    with pytest.raises(ValueError, match="add M1 to window.timeframes"):
        tiny_config(tmp_path, **{"loss.rv_aux": 1.0, "window.timeframes": ["M5", "M15"]})


def _head_mse(module: PretrainModule, dm: PretrainDataModule) -> tuple[float, float]:
    """(the head's MSE on the validation windows, the MSE of the train targets' mean there)."""
    preds, targets, oks = [], [], []
    module.eval()
    with torch.no_grad():
        for batch in dm.fixed_loader("val"):
            _, embedding = module.model({tf: batch[f"x:{tf}"] for tf in module.timeframes})
            preds.append(module.rv_head(embedding))
            targets.append(batch["rv"])
            oks.append(batch["rv_ok"])
    module.train()
    p, t, ok = torch.cat(preds), torch.cat(targets), torch.cat(oks)
    arrays = dm.prepared.arrays
    t_train, ok_train = arrays.rv.targets(arrays.index.rows("M1", arrays.index.split("train"))[:, -1])
    mean = torch.tensor([t_train[ok_train[:, j], j].mean() for j in range(t_train.shape[1])])
    return float(((p - t) ** 2)[ok].mean()), float(((mean - t) ** 2)[ok].mean())


def test_the_head_learns_a_volatility_cycle_and_the_export_is_the_encoder_alone(tmp_path):
    cfg: PretrainConfig = tiny_config(
        tmp_path,
        **{"loss.rv_aux": 1.0, "trainer.max_steps": 200, "trainer.epoch_steps": 200, "optim.lr": 3e-3},
    )
    prepared = prepare(cfg, m1=vol_cycle_market())
    L.seed_everything(0, verbose=False)
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
    dm = PretrainDataModule(cfg, prepared)
    before, constant = _head_mse(module, dm)
    assert before > 0.8 * constant  # control: untrained, the head is no better than the train mean
    bare_trainer(cfg).fit(module, datamodule=dm)
    after, constant = _head_mse(module, dm)
    assert after < 0.6 * constant, (after, constant)  # the cycle explains over 40 % of the targets
    # the head is not part of the encoder: the export holds the `model.` weights only and loads
    bundle = load_encoder(save_encoder(module, tmp_path / "encoder"))
    assert bundle.embedding_dim == module.model.embedding_dim
    assert not any(k.startswith("rv_head") for k in bundle.model.state_dict())
