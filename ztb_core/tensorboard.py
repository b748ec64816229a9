"""Optional TensorBoard logging for the long jobs (`logging.tensorboard: true` in train.yaml and
pretrain.yaml): SB3's and Lightning's own TensorBoard writers, into the run's `logs/tensorboard/`.
The run directory's metrics.jsonl stays the record the console reads; TensorBoard is a second view
for people who already live in it (`tensorboard --logdir artifacts/runs`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic import Field

from .config import ZtbModel
from .errors import ConfigError


class LoggingConfig(ZtbModel):
    tensorboard: bool = Field(
        False,
        description="also write TensorBoard event files into the run's logs/tensorboard/ "
        "(needs the tensorboard package: pip install 'ztb[tensorboard]')",
    )


def tensorboard_dir(run_dir: Path) -> Path:
    return run_dir / "logs" / "tensorboard"


def require_tensorboard() -> None:
    """Fail before a run starts, not after minutes of data loading, when the package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "logging.tensorboard is true but the tensorboard package is not installed: "
            "pip install 'ztb[tensorboard]' (or set logging.tensorboard=false)"
        )
