"""Where a job's M1 bars come from: the synthetic market or the store.

`DataSourceConfig` is embedded in the train/pretrain/eval/live configs; `load_bars(cfg)` returns
M1 bars in the canonical schema (see `schema.py`), cut to [start, end).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pandas as pd
from pydantic import Field, model_validator

from ..config import ZtbModel
from ..errors import DataError
from .schema import MarketKind, utc_index
from .store import read_bars
from .synthetic import SyntheticConfig, generate_market


class DataSourceConfig(ZtbModel):
    """M1 bars for a job: the synthetic market (default, runs anywhere) or a stored symbol."""

    kind: Literal["synthetic", "store"] = Field(
        "synthetic", description="synthetic: generated market; store: imported data"
    )
    symbol: str = Field(
        "SYNTH", min_length=1, description="store symbol (e.g. USDJPY, BTC_JPY); a label for synthetic data"
    )
    market: MarketKind = Field(
        "fx",
        description="fx (17:00 New York day, weekend gaps) or crypto (24/7, 00:00 UTC day); "
        "also sets the synthetic market's calendar",
    )
    start: datetime | None = Field(
        None, description="first bar open time to use (UTC if no offset); none = from the beginning"
    )
    end: datetime | None = Field(None, description="exclusive end time (UTC if no offset); none = to the end")
    synthetic: SyntheticConfig = Field(
        default_factory=SyntheticConfig, description="generator settings when kind=synthetic"
    )
    data_dir: str | None = Field(None, description="store folder; none = $ZTB_DATA or artifacts/data")

    @model_validator(mode="after")
    def _one_market(self) -> DataSourceConfig:
        """`market` drives the calendar, the day close and the generator; a synthetic market that
        names another one is a contradiction, refused rather than silently overwritten."""
        if self.synthetic.market is not None and self.synthetic.market != self.market:
            raise ValueError(
                f"synthetic.market={self.synthetic.market!r} conflicts with market={self.market!r}: "
                f"set market (it also sets the synthetic calendar) and drop synthetic.market"
            )
        return self


def _utc(ts: datetime | None) -> pd.Timestamp | None:
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def load_bars(cfg: DataSourceConfig) -> pd.DataFrame:
    """M1 bars per the config, restricted to [start, end). Raises DataError when nothing is left."""
    start, end = _utc(cfg.start), _utc(cfg.end)
    if start is not None and end is not None and end <= start:
        raise DataError(f"data source: end {end} must be after start {start}")
    if cfg.kind == "synthetic":
        # the source's market is authoritative: one switch flips calendar, day close and generator
        bars = generate_market(cfg.synthetic.model_copy(update={"market": cfg.market}))
        if start is not None:
            bars = bars[bars.index >= start]
        if end is not None:
            bars = bars[bars.index < end]
    else:
        bars = read_bars(cfg.symbol, "M1", start, end, cfg.data_dir)
    if len(bars) == 0:
        raise DataError(
            f"data source {cfg.kind}:{cfg.symbol}: no M1 bars between {start or 'the start'} and {end or 'the end'}"
        )
    bars.index = utc_index(bars.index)
    return bars
