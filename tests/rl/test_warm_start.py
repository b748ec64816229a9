"""`warm_start`: a new run starts from another run's policy weights (walk-forward folds use it);
the step count, optimizer and observation statistics are the new run's own."""

from __future__ import annotations

import pytest
import torch

from ztb_core.errors import CheckpointError, ConfigError
from ztb_core.evaluation.selection import choose_checkpoint
from ztb_core.rl.checkpoints import load_checkpoint_file, load_latest_valid
from ztb_core.rl.trainer import run_training

from .conftest import events, tiny_cfg


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("ZTB_KILL", str(root / "global.stop"))
        outcome = run_training(tiny_cfg("eval.every_steps=256", total=512), run_id="src", progress=False)
        yield outcome, root


def _first_policy(run_dir):
    """The policy of the new run's first checkpoint (128 steps: one update after the warm start)."""
    found = load_latest_valid(run_dir / "checkpoints")
    assert found is not None and found[0]["step"] == 128
    return found[1]["policy"]


def test_a_new_run_starts_from_the_source_policy(source, monkeypatch):
    outcome, root = source
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    src = load_checkpoint_file(choose_checkpoint(outcome.run_dir, "best").target)[1]["policy"]
    # a learning rate of 1e-12 keeps the weights where they started, so the first checkpoint shows them
    warm = run_training(
        tiny_cfg(f"warm_start={outcome.run_dir}", "ppo.learning_rate=1e-12", total=128), run_id="warm", progress=False
    )
    cold = run_training(tiny_cfg("ppo.learning_rate=1e-12", "seed=1", total=128), run_id="cold", progress=False)
    assert warm.state == "completed" and warm.step == 128  # its own step count, from 0
    got, control = _first_policy(warm.run_dir), _first_policy(cold.run_dir)
    assert all(torch.allclose(got[k], src[k], atol=1e-6) for k in src)
    assert not all(torch.allclose(control[k], src[k], atol=1e-3) for k in src)  # positive control: a cold start differs
    (ev,) = [e for e in events(warm.run_dir) if e["event"] == "warm_started"]
    assert "best" in ev["why"] and ev["checkpoint"].endswith(".ckpt.zst")


def test_a_network_of_another_shape_fails_clearly_without_a_run(source, monkeypatch):
    outcome, root = source
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    before = sorted(p.name for p in (root / "artifacts" / "runs").iterdir())
    with pytest.raises(ConfigError, match="warm_start .* does not fit .*net_arch"):
        run_training(tiny_cfg(f"warm_start={outcome.run_dir}", "ppo.net_arch=[16]", total=128), progress=False)
    with pytest.raises(CheckpointError, match="no such checkpoint file, run directory or run id"):
        run_training(tiny_cfg("warm_start=no-such-run", total=128), progress=False)
    assert sorted(p.name for p in (root / "artifacts" / "runs").iterdir()) == before
