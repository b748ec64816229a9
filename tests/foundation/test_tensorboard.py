"""`logging.tensorboard: true`: SB3's and Lightning's own TensorBoard writers put readable event
files into the run's logs/tensorboard/; off by default (no event files)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ztb_core.cli import main
from ztb_core.config import config_to_dict
from ztb_core.pretrain.runner import run_pretrain

from ..pretrain.conftest import tiny_config
from ..rl.conftest import TINY


def _scalar_tags(run_dir: Path) -> set[str]:
    tags: set[str] = set()
    for events in (run_dir / "logs" / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


@pytest.mark.parametrize("enabled", [True, False])
def test_training_writes_sb3_scalars_only_when_enabled(artifacts, enabled):
    sets = [a for s in (*TINY, f"logging.tensorboard={str(enabled).lower()}") for a in ("--set", s)]
    assert main(["train", "--headless", "--no-progress", "--total-timesteps", "256", *sets]) == 0
    (run_dir,) = (artifacts / "runs").iterdir()
    tags = _scalar_tags(run_dir)
    if enabled:
        assert {"train/policy_gradient_loss", "train/approx_kl", "train/value_loss"} <= tags
    else:
        assert tags == set() and not (run_dir / "logs" / "tensorboard").exists()


def test_pretraining_writes_lightning_scalars(artifacts, tmp_path):
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 10, "logging.tensorboard": True})
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    run_dir = run_pretrain(str(path), headless=True)
    assert any(tag.startswith("train") for tag in _scalar_tags(run_dir)), _scalar_tags(run_dir)
