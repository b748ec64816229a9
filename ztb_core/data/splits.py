"""Chronological train/validation/test splits with an optional embargo between them.

No shuffling: each split lies strictly after the previous one in time, and `embargo` rows
are skipped at each boundary so windows and rolling features cannot straddle two splits.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from ..config import ZtbModel
from ..errors import ConfigError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


class SplitConfig(ZtbModel):
    """Fractions of the (valid) rows per split, in time order, and the embargo between them."""

    train: float = Field(0.7, gt=0, le=1, description="fraction of rows for training (earliest)")
    val: float = Field(0.15, ge=0, le=1, description="fraction of rows for validation (after train)")
    test: float = Field(0.15, ge=0, le=1, description="fraction of rows for the final test (latest)")
    embargo: int = Field(
        0, ge=0, description="rows skipped at each split boundary (>= the longest feature window avoids overlap)"
    )

    @model_validator(mode="after")
    def _fractions_sum_to_at_most_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if total > 1.0 + 1e-9:
            raise ValueError(f"train + val + test must be <= 1, got {total:g}")
        return self

    def slices(self, n: int) -> dict[str, slice]:
        return chronological_splits(n, self.train, self.val, self.test, self.embargo)


def chronological_splits(
    n: int, train: float = 0.7, val: float = 0.15, test: float = 0.15, embargo: int = 0
) -> dict[str, slice]:
    """Row slices `{"train", "val", "test"}` over `n` time-ordered rows.

    Boundaries are `floor(n * cumulative fraction)`; the first `embargo` rows of val and test are
    dropped. Raises ConfigError for bad fractions or when a requested split ends up empty.
    """
    if n < 0:
        raise ConfigError(f"splits: n must be >= 0, got {n}")
    for name, frac in (("train", train), ("val", val), ("test", test)):
        if not 0.0 <= frac <= 1.0:
            raise ConfigError(f"splits: {name} fraction must be within [0, 1], got {frac}")
    if train + val + test > 1.0 + 1e-9:
        raise ConfigError(f"splits: train + val + test must be <= 1, got {train + val + test:g}")
    if embargo < 0:
        raise ConfigError(f"splits: embargo must be >= 0 rows, got {embargo}")
    a = int(round(n * train, 9))
    b = int(round(n * (train + val), 9))
    c = min(n, int(round(n * (train + val + test), 9)))
    out = {"train": slice(0, a), "val": slice(min(a + embargo, b), b), "test": slice(min(b + embargo, c), c)}
    for name, frac in (("train", train), ("val", val), ("test", test)):
        s = out[name]
        if frac > 0 and s.stop - s.start <= 0:
            raise ConfigError(
                f"splits: the {name} split is empty ({n} rows, {name}={frac}, embargo={embargo}); "
                f"use more data or a smaller embargo"
            )
    return out
