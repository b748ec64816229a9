"""Causal feature sets over M1 bars.

`compute_feature_set(name, m1, market) -> FeatureMatrix` with name `technical-66` (66 features
for the RL agent, see docs/features.md) or `stage1-ohlc` (36 channels for the pretraining encoder).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from ...errors import DataError
from ..schema import check_market
from .matrix import FeatureMatrix
from .stage1 import NAMES as STAGE1_NAMES
from .stage1 import compute_stage1
from .technical import NAMES as TECHNICAL_NAMES
from .technical import compute_technical

FEATURE_SETS: dict[str, tuple[Callable[[pd.DataFrame, str], FeatureMatrix], list[str]]] = {
    "technical-66": (compute_technical, TECHNICAL_NAMES),
    "stage1-ohlc": (compute_stage1, STAGE1_NAMES),
}

__all__ = ["FEATURE_SETS", "FeatureMatrix", "compute_feature_set", "feature_names"]


def _lookup(name: str) -> tuple[Callable[[pd.DataFrame, str], FeatureMatrix], list[str]]:
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise DataError(f"unknown feature set {name!r}; available: {', '.join(FEATURE_SETS)}") from None


def feature_names(name: str) -> list[str]:
    return list(_lookup(name)[1])


def compute_feature_set(name: str, m1: pd.DataFrame, market: str = "fx") -> FeatureMatrix:
    """Compute feature set `name` for every M1 bar of `m1` (canonical schema, sorted, unique)."""
    fn, _ = _lookup(name)
    check_market(market)
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in m1.columns]
    if missing:
        raise DataError(f"feature set {name}: bars lack column(s) {', '.join(missing)}")
    return fn(m1, market)
