"""Short CPU trainings: the model must learn a learnable signal better than linear interpolation,
and must not beat linear interpolation on a pure random walk (where it is optimal) by more than a
few percent — if it did, masked values would be leaking into the inputs."""

import lightning as L

from ztb_core.config import config_to_dict
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.pretrain.evaluate import evaluate_module
from ztb_core.pretrain.module import PretrainDataModule, PretrainModule
from ztb_core.pretrain.prepare import prepare

from .conftest import sine_market, tiny_config


def _train(cfg, m1):
    prepared = prepare(cfg, m1=m1)
    L.seed_everything(cfg.seed, verbose=False)
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
    trainer = L.Trainer(
        max_steps=cfg.trainer.max_steps,
        max_epochs=-1,
        limit_train_batches=cfg.trainer.epoch_steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=PretrainDataModule(cfg, prepared))
    return evaluate_module(module, prepared, cfg, "val", batch_size=128)


def test_model_beats_linear_interpolation_on_a_learnable_signal(tmp_path):
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 100, "trainer.epoch_steps": 100, "optim.lr": 3e-3})
    res = _train(cfg, sine_market(20_000))
    model, linear = res["model"]["M1"], res["linear"]["M1"]
    assert model["corr_return"] > linear["corr_return"] + 0.1, (model, linear)
    assert model["mse"] < linear["mse"], (model, linear)


def test_no_gain_over_linear_interpolation_on_a_random_walk(tmp_path):
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 100, "trainer.epoch_steps": 100, "optim.lr": 3e-3})
    walk = generate_market(
        SyntheticConfig(
            n_bars=20_000,
            seed=7,
            market="crypto",
            signal_strength=0.0,
            vol_of_vol=0.0,
            tail_df=1000,
            intraday_amplitude=0.0,
        )
    )
    res = _train(cfg, walk)
    model, linear = res["model"]["M1"], res["linear"]["M1"]
    # linear interpolation is the optimal predictor here: a clear win would mean leakage
    assert model["mse"] > 0.95 * linear["mse"], (model, linear)
    assert model["corr_return"] < linear["corr_return"] + 0.05, (model, linear)
