"""A short CPU training must learn a learnable signal better than the strongest naive filler on
interior returns (the random-walk side, where no model may beat the open-aware bridge, is the
leak test in test_leak.py)."""

import lightning as L

from ztb_core.config import config_to_dict
from ztb_core.pretrain.baselines import BASELINES
from ztb_core.pretrain.evaluate import bare_trainer, score_module
from ztb_core.pretrain.module import PretrainDataModule, PretrainModule
from ztb_core.pretrain.prepare import prepare

from .conftest import sine_market, tiny_config


def _train(cfg, m1):
    prepared = prepare(cfg, m1=m1)
    L.seed_everything(cfg.seed, verbose=False)
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
    bare_trainer(cfg).fit(module, datamodule=PretrainDataModule(cfg, prepared))
    return score_module(module, prepared, cfg, "val", batch_size=128)


def test_model_beats_the_strongest_baseline_on_a_learnable_signal(tmp_path):
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 100, "trainer.epoch_steps": 100, "optim.lr": 3e-3})
    acc = _train(cfg, sine_market(20_000))
    cmp = acc.compare("model", BASELINES, ("corr_return_interior", "mse_return_interior"), n_boot=300)["M1"]
    assert cmp["corr_return_interior"]["beats"], cmp
    assert cmp["mse_return_interior"]["beats"], cmp
