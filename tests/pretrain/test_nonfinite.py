"""A non-finite loss or gradient stops a pretrain run at once, naming the step, the loss term and
the batch; the run ends `failed` and the checkpoint written before stays the last good one. And
the cause seen on real USD/JPY (flat prices inside a mask: sqrt(0) in the amplitude loss) is gone."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import ztb_core.pretrain.module as module_mod
from ztb_core.config import config_to_dict
from ztb_core.manifest import verified_checkpoint
from ztb_core.paths import runs_dir
from ztb_core.pretrain.guard import NonFiniteLossError
from ztb_core.pretrain.losses import correlation_loss
from ztb_core.pretrain.runner import run_pretrain

from .conftest import tiny_config


def test_flat_prediction_inside_a_mask_has_finite_correlation_gradients():
    # a bridge fill across a flat gap predicts identical returns: their variance is exactly 0
    target = torch.cumsum(torch.randn(4, 32), dim=1)
    pred = target.clone()
    mask = torch.zeros(4, 32, dtype=torch.bool)
    mask[:, 10:20] = True
    pred[:, 9:21] = pred[:, 9:10]  # flat across the mask and its boundaries
    pred.requires_grad_(True)
    phase, amp = correlation_loss(pred, target, mask)
    (phase + amp).backward()
    assert torch.isfinite(phase) and torch.isfinite(amp)
    assert torch.isfinite(pred.grad).all()


def _config_file(tmp_path):
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 12, "trainer.epoch_steps": 4, "trainer.log_every": 1})
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    return path


def _poison(monkeypatch, from_step: int, how: str):
    """Make one loss term non-finite (value, or only its gradient) from optimizer step `from_step`."""
    real = module_mod.total_loss
    calls = {"n": 0}

    def total_loss(recon, batch, timeframes, cfg):
        total, parts = real(recon, batch, timeframes, cfg)
        if torch.is_grad_enabled():
            calls["n"] += 1
        if torch.is_grad_enabled() and calls["n"] > from_step:
            anchor = next(iter(recon.values()))
            if how == "value":
                bad = parts["huber"] * float("nan")
                parts = {**parts, "huber": bad}
            else:  # finite value 0, gradient 0 * inf = NaN
                bad = torch.sqrt((anchor * 0.0).sum())
                parts = {**parts, "amplitude": bad}
            total = total + bad
            parts["total"] = total
        return total, parts

    monkeypatch.setattr(module_mod, "total_loss", total_loss)


@pytest.mark.parametrize(("how", "term", "what"), [("value", "huber", "loss"), ("grad", "amplitude", "gradient")])
def test_non_finite_stops_the_run_naming_step_term_and_batch(tmp_path, monkeypatch, how, term, what):
    _poison(monkeypatch, from_step=6, how=how)
    with pytest.raises(NonFiniteLossError) as info:
        run_pretrain(str(_config_file(tmp_path)), run_id="nan-run")
    msg = str(info.value)
    assert f"non-finite {what} at step 6" in msg
    assert term in msg and "window positions" in msg
    assert info.value.step == 6 and info.value.terms == [term]

    run = runs_dir() / "nan-run"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed"
    assert "step 6" in status["message"]
    # the checkpoint of the last finished epoch (step 4) is intact, verified and finite
    last = verified_checkpoint(run / "checkpoints" / "last.ckpt")
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_a_clean_run_is_not_stopped(tmp_path):
    """Positive control for the guard: the same tiny run without poison completes."""
    run_pretrain(str(_config_file(tmp_path)), run_id="clean-run")
    status = json.loads((runs_dir() / "clean-run" / "status.json").read_text())
    assert status["state"] == "completed"
