"""A leak test that can fail.

On a pure random walk whose bars are OHLC-consistent (each open is the previous close), the
open-aware bridge is the best possible filler: the expected path between the last visible close
and the next visible open is the straight line. A model that beats it on interior returns (both
ends masked) by more than the paired bootstrap interval, on any timeframe, must be seeing masked
values. The positive control feeds the masked closes through a side channel (the volume input of
masked bars) and must trip that alarm on every timeframe; the real pipeline, trained the same
way, must not.
"""

import lightning as L
import numpy as np
import pytest
import torch

from ztb_core.config import config_to_dict
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.pretrain.config import PRETRAIN_TIMEFRAMES
from ztb_core.pretrain.dataset import PretrainArrays
from ztb_core.pretrain.evaluate import bare_trainer, score_module
from ztb_core.pretrain.module import PretrainDataModule, PretrainModule
from ztb_core.pretrain.prepare import prepare

from .conftest import tiny_config

VOLUME = 4  # input channel of log volume; masked bars carry 0 there in the real pipeline
TARGETS = ("corr_return_interior", "mse_return_interior")


@pytest.fixture(scope="module")
def walk_prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leak")
    cfg = tiny_config(
        tmp,
        **{
            "window.timeframes": list(PRETRAIN_TIMEFRAMES),  # every timeframe, D included
            "window.seq_len": 16,
            "splits.train": 0.5,
            "splits.val": 0.25,
            "splits.test": 0.25,
            "mask.val_samples": 384,
            "trainer.max_steps": 60,  # enough for the leaked model to learn the copy (see the control)
            "trainer.epoch_steps": 60,
            "optim.lr": 3e-3,
            "loss.stft": 0.0,
        },
    )
    walk = generate_market(
        SyntheticConfig(
            n_bars=220_000,  # ~150 days 24/7: the 25 % validation split still holds whole 16-day windows
            seed=7,
            market="crypto",
            signal_strength=0.0,
            vol_of_vol=0.0,
            tail_df=1000,
            intraday_amplitude=0.0,
            missing_prob=0.0,
        )
    )
    return cfg, prepare(cfg, m1=walk)


def _leaky_make_batch(original):
    """make_batch plus the leak: masked bars carry their true normalised close in the volume input."""

    def make_batch(self, positions, masks=None, rng=None, mask_cfg=None):
        out = original(self, positions, masks=masks, rng=rng, mask_cfg=mask_cfg)
        for tf in self.timeframes:
            m = out[f"mask:{tf}"]
            out[f"x:{tf}"][..., VOLUME] = np.where(m, out[f"y:{tf}"][..., 3], out[f"x:{tf}"][..., VOLUME])
        return out

    return make_batch


def _train_and_compare(cfg, prepared):
    L.seed_everything(cfg.seed, verbose=False)
    # one thread: the same arithmetic on any machine, and a second one only competes with the other
    # test workers (2 threads: 75 s of CPU on a loaded 2-core machine; 1 thread: 19 s)
    torch.set_num_threads(1)
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
    bare_trainer(cfg).fit(module, datamodule=PretrainDataModule(cfg, prepared))
    acc = score_module(module, prepared, cfg, "val", batch_size=128)
    return acc.compare("model", ("bridge",), TARGETS, n_boot=500, seed=0)


def _alarms(comparison) -> dict[str, list[str]]:
    """Timeframes where the model beats the bridge beyond the interval (the leak signature)."""
    return {metric: [tf for tf, c in comparison.items() if c[metric]["beats"]] for metric in TARGETS}


@pytest.mark.slow
def test_leak_alarm_trips_on_a_side_channel_and_stays_quiet_on_the_real_pipeline(walk_prepared, monkeypatch):
    cfg, prepared = walk_prepared
    tfs = list(cfg.window.timeframes)
    real = _train_and_compare(cfg, prepared)
    assert _alarms(real) == {m: [] for m in TARGETS}, real

    monkeypatch.setattr(PretrainArrays, "make_batch", _leaky_make_batch(PretrainArrays.make_batch))
    leaked = _train_and_compare(cfg, prepared)
    # the positive control: the same test catches the leak on every timeframe
    assert _alarms(leaked) == {m: tfs for m in TARGETS}, leaked
