"""`FeatureMatrix`: what every feature set returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...errors import DataError


@dataclass(frozen=True)
class FeatureMatrix:
    """Features aligned to M1 bars.

    names: one per column; values: float32 (T, F), finite everywhere (0 in warm-up rows);
    index: the M1 bar open times (UTC); valid: bool (T,), False where any feature was still in
    its warm-up. A value in row t uses only bars whose close is at or before bar t's close.
    """

    names: list[str]
    values: np.ndarray
    index: pd.DatetimeIndex
    valid: np.ndarray

    def __post_init__(self) -> None:
        t, f = self.values.shape if self.values.ndim == 2 else (-1, -1)
        if self.values.ndim != 2 or f != len(self.names) or t != len(self.index) or self.valid.shape != (t,):
            raise DataError(
                f"FeatureMatrix: inconsistent shapes values={self.values.shape}, "
                f"names={len(self.names)}, index={len(self.index)}, valid={self.valid.shape}"
            )

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def first_valid(self) -> int:
        """Row of the first valid row (len(index) when none is valid)."""
        hits = np.flatnonzero(self.valid)
        return int(hits[0]) if len(hits) else len(self.index)

    def drop_warmup(self) -> FeatureMatrix:
        """Only the valid rows (the same rows for every consumer, so splits stay aligned)."""
        keep = self.valid
        return FeatureMatrix(list(self.names), self.values[keep], self.index[keep], self.valid[keep])

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, index=self.index, columns=self.names)

    def column(self, name: str) -> np.ndarray:
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise DataError(f"no feature named {name!r}; available: {', '.join(self.names)}") from None


class ColumnWriter:
    """Fills a float32 (T, F) matrix one float64 column at a time, tracking warm-up rows, so the
    full float64 matrix never exists (3.1M x 66 float64 would be 1.6 GB)."""

    def __init__(self, names: list[str], index: pd.DatetimeIndex) -> None:
        self.names = list(names)
        self.index = index
        self.values = np.zeros((len(index), len(names)), dtype=np.float32)
        self.valid = np.ones(len(index), dtype=bool)
        self._filled: set[str] = set()
        self._pos = {name: j for j, name in enumerate(self.names)}

    def put(self, name: str, column: np.ndarray) -> None:
        j = self._pos[name]
        col32 = np.asarray(column, dtype=np.float64).astype(np.float32)
        # NaN marks warm-up; float32 overflow (absurd prices) makes inf: neither row is usable
        ok = np.isfinite(col32)
        self.valid &= ok
        col32[~ok] = 0.0
        self.values[:, j] = col32
        self._filled.add(name)

    def result(self) -> FeatureMatrix:
        missing = [n for n in self.names if n not in self._filled]
        if missing:
            raise DataError(f"feature columns never computed: {', '.join(missing)}")
        return FeatureMatrix(self.names, self.values, self.index, self.valid)
