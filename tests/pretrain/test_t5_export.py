import numpy as np
import pytest
import torch

from ztb_core.config import config_to_dict
from ztb_core.errors import CheckpointError, ConfigError
from ztb_core.pretrain.config import T5Options
from ztb_core.pretrain.export import load_encoder, read_payload, save_encoder, save_payload
from ztb_core.pretrain.module import PretrainModule
from ztb_core.pretrain.prepare import prepare
from ztb_core.pretrain.t5 import build_t5_encoder

from .conftest import sine_market, tiny_config


@pytest.fixture()
def t5_folder(tmp_path, monkeypatch):
    from transformers import T5Config, T5EncoderModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model = T5EncoderModel(T5Config(vocab_size=8, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    folder = tmp_path / "tiny-t5"
    model.save_pretrained(folder)
    return folder, model


def test_t5_pretrained_weights_load_from_a_local_folder(t5_folder):
    folder, saved = t5_folder
    loaded = build_t5_encoder(T5Options(init="pretrained", path=str(folder)))
    for (name, a), (_, b) in zip(saved.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_missing_t5_weights_is_a_clear_error_never_a_random_fallback(t5_folder, tmp_path):
    folder, _ = t5_folder
    only_config = tmp_path / "config-only"
    only_config.mkdir()
    (only_config / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ConfigError, match="pretrained T5 weights not found locally"):
        build_t5_encoder(T5Options(init="pretrained", path=str(only_config)))
    with pytest.raises(ConfigError, match="needs model.t5.path"):
        build_t5_encoder(T5Options(init="pretrained"))
    # random init from the folder's architecture is allowed and says so in the config
    assert build_t5_encoder(T5Options(init="random", path=str(only_config))).config.d_model == 32


def test_t5_backbone_trains_with_frozen_stage_and_differential_lr(tmp_path, t5_folder):
    folder, _ = t5_folder
    cfg = tiny_config(
        tmp_path,
        **{
            "model.backbone": "t5",
            "model.t5.init": "pretrained",
            "model.t5.path": str(folder),
            "model.t5.patch_len": 8,
        },
    )
    p = prepare(cfg, m1=sine_market(8_000))
    module = PretrainModule(config_to_dict(cfg), p.arrays.lengths, p.stats.to_dict())
    opt = module.configure_optimizers()["optimizer"]
    assert len(opt.param_groups) == 2
    backbone_ids = {id(q) for q in module.model.backbone_parameters()}
    assert {id(q) for q in opt.param_groups[1]["params"]} == backbone_ids
    assert opt.param_groups[0]["max_lr"] / opt.param_groups[1]["max_lr"] == pytest.approx(cfg.model.t5.lr_ratio)
    from ztb_core.pretrain.dataset import FixedMaskSet
    from ztb_core.pretrain.losses import total_loss
    from ztb_core.pretrain.module import inputs

    batch = FixedMaskSet(p.arrays, p.split_positions("train"), cfg.mask, 64)[list(range(16))]
    module._set_backbone_trainable(False)  # staged unfreezing: the first epochs train everything else
    recon, _ = module.model(inputs(batch, module.timeframes))
    total_loss(recon, batch, module.timeframes, cfg.loss)[0].backward()
    assert all(q.grad is None for q in module.model.backbone_parameters())
    assert all(q.grad is not None for q in module.model.decoders.parameters())
    module._set_backbone_trainable(True)
    assert all(q.requires_grad for q in module.model.backbone_parameters())
    # export and reload without the original folder: the architecture travels with the encoder
    path = save_encoder(module, tmp_path / "enc")
    for f in folder.iterdir():
        f.unlink()
    bundle = load_encoder(path)
    assert bundle.embedding_dim == 2 * cfg.model.bottleneck


def test_encoder_embeddings_are_causal_and_match_the_model(tmp_path):
    cfg = tiny_config(tmp_path)
    m1 = sine_market(8_000)
    p = prepare(cfg, m1=m1)
    module = PretrainModule(config_to_dict(cfg), p.arrays.lengths, p.stats.to_dict())
    bundle = load_encoder(save_encoder(module, tmp_path / "enc"))
    full = bundle.embed_bars(m1)
    assert full.shape == (len(m1), bundle.embedding_dim) and full.dtype == np.float32
    valid = bundle.last_valid
    assert not valid[:100].any() and valid[-100:].all()
    assert np.all(full[~valid] == 0)
    cut = 6_000
    prefix = bundle.embed_bars(m1.iloc[:cut])
    # row t only sees bars completed by t's close: later bars change nothing before the cut
    np.testing.assert_allclose(prefix[valid[:cut]], full[:cut][valid[:cut]], rtol=1e-5, atol=1e-6)
    changed = m1.copy()
    changed.iloc[cut:, :4] *= 1.01
    np.testing.assert_allclose(bundle.embed_bars(changed)[:cut], full[:cut], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "sets, says",
    [
        (
            ["model.backbone=t5", "model.t5.init=pretrained", "model.t5.path={missing}"],
            "pretrained T5 weights not found locally (no folder {missing}",
        ),
        (
            ["model.backbone=t5", "model.t5.init=pretrained", "model.t5.path={config_only}"],
            "folder {config_only} has no model.safetensors",
        ),
        (["data.kind=store", "data.symbol=NOPE"], "data.symbol='NOPE': no M1 data at"),
    ],
)
def test_bad_config_fails_before_any_run_folder_exists(tmp_path, t5_folder, sets, says):
    import os
    import subprocess
    import sys

    from ztb_core.paths import REPO_ROOT

    folder, _ = t5_folder
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text((folder / "config.json").read_text())
    names = {"missing": str(tmp_path / "no-such-t5"), "config_only": str(config_only)}
    art = tmp_path / "art"
    env = {**os.environ, "ZTB_ARTIFACTS": str(art), "ZTB_DATA": str(tmp_path / "data"), "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "ztb_core.cli", "pretrain", "--headless"]
    for item in sets:
        argv += ["--set", item.format(**names)]
    res = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert says.format(**names) in " ".join(res.stderr.split()), res.stderr  # rich may wrap long lines
    assert not (art / "runs").exists() or not any((art / "runs").iterdir())


def test_t5_encoder_file_without_its_architecture_is_a_checkpoint_error(tmp_path):
    cfg = tiny_config(tmp_path)
    p = prepare(cfg, m1=sine_market(8_000))
    module = PretrainModule(config_to_dict(cfg), p.arrays.lengths, p.stats.to_dict())
    path = save_encoder(module, tmp_path / "enc")
    assert load_encoder(path).embedding_dim == 2 * cfg.model.bottleneck  # control: the intact file loads
    payload = read_payload(path)
    payload["config"]["model"]["backbone"] = "t5"  # says T5, but carries no t5_config to rebuild it from
    bad = save_payload(payload, tmp_path / "bad")
    with pytest.raises(
        CheckpointError, match=r"bad/encoder.pt: model.backbone is t5 but the encoder stores no t5_config"
    ):
        load_encoder(bad)
