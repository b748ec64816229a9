"""The market a training run sees: bars, features and splits, rebuilt from its config.

`prepare_market(cfg, split)` is the single place that turns a `TrainConfig` into arrays, so
training, the periodic evaluation, `ztb eval` and live trading all use exactly the same data,
features and chronological split. With `encoder.path` set, frozen mode appends the encoder's
per-bar embeddings to the features; fine-tune mode keeps the features as they are and attaches
`RawWindows` (the encoder's input windows, built on demand) to each slice. Either way rows still
in the encoder's warm-up count as warm-up.

Rows in warm-up (a feature still undefined) are dropped *before* splitting, so every consumer
splits the same valid rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data import source
from ..data.features import compute_feature_set
from ..data.synthetic import signal_ceiling
from ..errors import ConfigError, DataError
from ..pretrain.embed_cache import cached_embeddings
from ..pretrain.export import EncoderBundle
from .encoder import RawWindows, encoder_fingerprint, load_encoder_checked

if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import TrainConfig

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MarketSlice:
    """One chronological split of the valid rows, ready for the env or a backtest."""

    split: str
    bars: pd.DataFrame  # M1 bars of the split (canonical schema)
    features: np.ndarray  # float32 (T, F), row t uses only bars closed by bar t's close
    feature_names: list[str]
    open: np.ndarray  # float64 (T,)
    close: np.ndarray  # float64 (T,)
    index: pd.DatetimeIndex
    timeframe: str = "M1"
    market: str = "fx"
    symbol: str = ""
    rows: tuple[int, int] = field(default=(0, 0))  # [start, stop) within the valid rows
    windows: RawWindows | None = None  # fine-tune mode: the encoder's raw input windows of these rows

    def __len__(self) -> int:
        return len(self.close)

    def slice(self, start: int = 0, stop: int | None = None) -> MarketSlice:
        """Rows [start, stop) of this slice, features, prices and encoder windows kept aligned."""
        n = len(self)
        a, b, _ = slice(start, stop).indices(n)
        b = max(a, b)
        return replace(
            self,
            bars=self.bars.iloc[a:b],
            features=self.features[a:b],
            open=self.open[a:b],
            close=self.close[a:b],
            index=self.index[a:b],
            rows=(self.rows[0] + a, self.rows[0] + b),
            windows=self.windows[a:b] if self.windows is not None else None,
        )


def _embeddings(
    cfg: TrainConfig, bundle: EncoderBundle, bars: pd.DataFrame, on_progress: Callable[[str], None] | None
) -> tuple[np.ndarray, list[str]]:
    """Frozen embeddings of all bars, from the cache keyed by (encoder sha256, data, windows) or
    computed with progress (bars/s, ETA) logged and passed to `on_progress`."""
    assert cfg.encoder.path is not None  # `bundle` was loaded from it
    emb, valid, _ = cached_embeddings(
        bundle, encoder_fingerprint(cfg.encoder.path), bars, cfg.data.market, on_progress=on_progress
    )
    emb = np.array(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(bars):
        raise DataError(f"encoder {cfg.encoder.path}: embeddings have shape {emb.shape}, expected ({len(bars)}, D)")
    # warm-up rows (windows not yet available) are zeros in embed_bars: mark them invalid like feature warm-up
    emb[~valid] = np.nan
    return emb, [f"enc_{i}" for i in range(emb.shape[1])]


def check_encoder_period(bundle: EncoderBundle, first_eval_time: pd.Timestamp, path: str) -> None:
    """Refuse an encoder whose pretraining period reaches into the PPO validation/test periods:
    its weights would have been fitted on the very bars the agent is selected and scored on."""
    until = pd.Timestamp(int(bundle.stats.fitted_until_ns), tz="UTC")
    if first_eval_time < until:
        raise ConfigError(
            f"encoder.path {path}: the encoder was pretrained on bars up to {until} but this run's "
            f"validation/test periods start at {first_eval_time}; pretrain on data that ends before "
            f"them (pretrain data.end / splits) or move the PPO splits later"
        )


def prepare_splits(
    cfg: TrainConfig, splits: tuple[str, ...] = SPLITS, on_progress: Callable[[str], None] | None = None
) -> dict[str, MarketSlice]:
    """Load bars, compute features once, drop warm-up rows, split chronologically. `on_progress`
    receives one-line progress messages of slow steps (the frozen-encoder embeddings)."""
    for name in splits:
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
    bars = source.load_bars(cfg.data)  # through the module, so a test can swap the loader
    fm = compute_feature_set(cfg.features, bars, cfg.data.market)
    values, names = fm.values, list(fm.names)
    valid = fm.valid.copy()
    builder = bundle = None
    if cfg.encoder.path:
        bundle = load_encoder_checked(cfg.encoder.path)
    if bundle is not None and cfg.encoder.mode == "frozen":
        emb, emb_names = _embeddings(cfg, bundle, bars, on_progress)
        valid &= np.isfinite(emb).all(axis=1)
        values = np.concatenate([values, np.nan_to_num(emb, nan=0.0)], axis=1)
        names += emb_names
    elif bundle is not None:  # finetune: the policy embeds raw windows itself
        builder = bundle.window_builder(bars, cfg.data.market)
        valid &= builder.valid
    keep = np.flatnonzero(valid)
    if len(keep) == 0:
        raise DataError(
            f"data {cfg.data.kind}:{cfg.data.symbol}: no rows left after the feature warm-up "
            f"({len(bars)} bars); use more data"
        )
    bars_v = bars.iloc[keep]
    values_v = np.ascontiguousarray(values[keep], dtype=np.float32)
    open_v = bars_v["open"].to_numpy(np.float64)
    close_v = bars_v["close"].to_numpy(np.float64)
    bounds = cfg.splits.slices(len(keep))
    if bundle is not None:
        first_eval = min((bounds[n].start for n in ("val", "test") if bounds[n].stop > bounds[n].start), default=None)
        if first_eval is not None:
            check_encoder_period(bundle, bars_v.index[first_eval], str(cfg.encoder.path))
    out: dict[str, MarketSlice] = {}
    for name in splits:
        s = bounds[name]
        if s.stop - s.start < cfg.env.lookback + 1:
            raise DataError(
                f"split {name!r} has {s.stop - s.start} rows; it needs at least env.lookback + 1 = "
                f"{cfg.env.lookback + 1} (use more data or change splits.*)"
            )
        windows = None
        if builder is not None:
            windows = RawWindows(builder, keep[s].astype(np.int64))
        out[name] = MarketSlice(
            split=name,
            bars=bars_v.iloc[s],
            features=values_v[s],
            feature_names=names,
            open=open_v[s],
            close=close_v[s],
            index=bars_v.index[s],
            timeframe="M1",
            market=cfg.data.market,
            symbol=cfg.data.symbol,
            rows=(s.start, s.stop),
            windows=windows,
        )
    return out


def prepare_market(train_config: TrainConfig, split: str) -> MarketSlice:
    """Exactly the bars/features of `split` that the run with this config trained or validated on."""
    return prepare_splits(train_config, (split,))[split]


def describe_market(cfg: TrainConfig) -> str:
    """One line on what a run trained on and the best it could have done there: for the synthetic
    market, the net Sharpe (same costs) of a trader who knows the planted signal, and of one who
    sees only past prices but filters them optimally with the market's true parameters; the
    second is the realistic ceiling for an agent."""
    d = cfg.data
    if d.kind != "synthetic":
        return f"market: {d.symbol} from the store ({d.market}); real data, no known ceiling"
    syn = d.synthetic.model_copy(update={"market": d.market})
    if syn.kind != "default":
        return (
            f"market: synthetic {syn.kind} (seed {syn.seed}, {syn.n_bars:,} bars), whose optimal policy is known: "
            f"benchmarks/bench_known_optimum.py scores a run against it"
        )
    knows = signal_ceiling(syn, cfg.env.costs.rate)
    sees = signal_ceiling(syn, cfg.env.costs.rate, observes="prices")
    return (
        f"market: synthetic {d.market}, a research market with a planted momentum signal (signal_strength "
        f"{syn.signal_strength:g}; seed {syn.seed}, {syn.n_bars:,} bars; volatility and seasonality like USD/JPY "
        f"M1 2016, its momentum is not); ceilings at these costs, net Sharpe over all bars: "
        f"{sees.net_sharpe:.1f} for the best filter of past prices (gross {sees.gross_sharpe:.1f}), "
        f"{knows.net_sharpe:.1f} for a trader who knows the signal (gross {knows.gross_sharpe:.1f})"
    )
