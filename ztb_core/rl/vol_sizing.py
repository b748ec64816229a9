"""The volatility forecaster a checkpoint carries for `ztb live`'s sizing.

Training fits `TrainedVolSizing` (HAR-RV + seasonality, `evaluation/vol_sizing.py`) on the train
split when a run starts, with the `vol_sizing` settings of the training config, and stores it in
every checkpoint beside the policy (a resumed run keeps the one its checkpoint has). Where it cannot
be fitted (settings off, bars other than M1, a train split shorter than a week) the checkpoint
stores why instead, so a live session can say it. `ztb eval` fits the same rule on the same split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..evaluation.config import VolSizingConfig
from ..evaluation.errors import EvaluationError
from ..evaluation.vol_sizing import TrainedVolSizing

#: the checkpoint key
STATE_KEY = "vol_sizing"


def times_ns(index: Any) -> np.ndarray:
    """A bar index as int64 nanoseconds since the epoch (UTC)."""
    return np.asarray(index.as_unit("ns").asi8, np.int64)


def fit_vol_sizing_state(cfg: VolSizingConfig, train: Any) -> dict:
    """The checkpoint's `vol_sizing` entry for the train split `train` (a `MarketSlice`): the fitted
    sizing's state, or {"skipped": why} when there is none to fit."""
    if not cfg.enabled:
        return {"skipped": "vol_sizing.enabled is false in the training config"}
    if train.timeframe != "M1":
        return {"skipped": f"the volatility forecaster works on M1 bars; this agent trained on {train.timeframe}"}
    try:
        return TrainedVolSizing.fit(train.close, times_ns(train.index), cfg.horizon, cfg.cap, cfg.band).to_state()
    except EvaluationError as exc:
        return {"skipped": str(exc)}


def summary(state: dict) -> dict:
    """A few numbers of the entry for the run's events (the profile and coefficients stay in the checkpoint)."""
    if "skipped" in state:
        return {"skipped": state["skipped"]}
    sizing = state["sizing"]
    return {
        "horizon": sizing["forecaster"]["h"],
        "target_rv": sizing["target_rv"],
        "cap": sizing["cap"],
        "band": state["band"],
        **state.get("fitted_on", {}),
    }


def load_vol_sizing(state: dict, where: str) -> tuple[TrainedVolSizing | None, str | None]:
    """(the checkpoint's forecaster, None) or (None, why it has none). A damaged entry is a
    CheckpointError naming `where`."""
    entry = state.get(STATE_KEY)
    if entry is None:
        return None, f"{where} stores no volatility forecaster (it was saved before checkpoints carried one)"
    if isinstance(entry, dict) and "skipped" in entry:
        return None, f"{where} stores no volatility forecaster: {entry['skipped']}"
    try:
        return TrainedVolSizing.from_state(entry), None
    except EvaluationError as exc:
        raise CheckpointError(f"{where}: its volatility forecaster cannot be read ({exc})") from None
