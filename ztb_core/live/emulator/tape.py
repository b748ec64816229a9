"""The trade stream the emulator replays: sorted executions as numpy arrays.

Ids are the tape position + 1, so they increase with time like an exchange's trade ids even
though bitFlyer's raw ids do not (within a `loaded` batch they descend).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...data.synthetic import SyntheticConfig, generate_market
from ...errors import DataError
from ...paths import shared_data_dir

BITFLYER_DIR = "btcjpy_trades_2018"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TradeTape:
    ts_ms: np.ndarray  # int64, non-decreasing
    price: np.ndarray  # float64
    size: np.ndarray  # float64, > 0
    side: np.ndarray  # int8: +1 buy aggressor, -1 sell aggressor
    name: str = "tape"

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        if n == 0:
            raise DataError(f"{self.name}: the trade tape is empty")
        if not (len(self.price) == len(self.size) == len(self.side) == n):
            raise DataError(f"{self.name}: tape columns differ in length")
        if np.any(np.diff(self.ts_ms) < 0):
            raise DataError(f"{self.name}: trade times must be sorted")

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(1, len(self) + 1, dtype=np.int64)

    @classmethod
    def random_walk(
        cls,
        n: int = 20_000,
        start_ms: int = 1_516_460_400_000,
        price: float = 1_200_000.0,
        mean_gap_ms: float = 500.0,
        vol_bps: float = 2.0,
        seed: int = 0,
    ) -> TradeTape:
        """A seeded random-walk tape (log-price steps of `vol_bps`), for tests and demos."""
        rng = np.random.default_rng(seed)
        gaps = rng.exponential(mean_gap_ms, n).astype(np.int64)
        ts = start_ms + np.cumsum(gaps)
        steps = rng.normal(0.0, vol_bps * 1e-4, n)
        prices = np.round(price * np.exp(np.cumsum(steps)))
        sizes = np.round(rng.exponential(0.02, n) + 0.001, 8)
        side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
        return cls(ts, prices.astype(np.float64), sizes, side, name=f"random_walk(seed={seed})")


def load_bitflyer(days: int = 1, data_dir: Path | None = None) -> TradeTape:
    """The first `days` daily files of real bitFlyer BTC/JPY executions, sorted by (exec_date, id)."""
    folder = Path(data_dir) if data_dir else shared_data_dir() / BITFLYER_DIR
    files = sorted(folder.glob("bitflyer.execution.*.BTC_JPY.csv.gz"))
    if not files:
        raise DataError(
            f"{folder}: no bitflyer.execution.*.BTC_JPY.csv.gz files (set ZTB_SHARED_DATA or use --source synthetic)"
        )
    frames = []
    for path in files[:days]:
        try:
            df = pd.read_csv(
                path,
                usecols=["id", "exec_date", "side", "price", "size"],
                dtype={"id": "int64", "side": "string", "price": "float64", "size": "float64"},
            )
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: cannot read bitFlyer executions ({exc})") from None
        df["ts"] = pd.to_datetime(df["exec_date"], utc=True, format="ISO8601")
        frames.append(df.drop(columns="exec_date"))
    df = pd.concat(frames, ignore_index=True).sort_values(["ts", "id"], kind="stable")
    # a few hundred executions a day carry no exec_date: their time is unknown, so they are left out
    dropped = int(df["ts"].isna().sum())
    df = df[df["ts"].notna() & (df["size"] > 0) & df["price"].notna()]
    if dropped:
        log.info("bitFlyer tape: left out %d executions without exec_date", dropped)
    ts_ms = pd.DatetimeIndex(df["ts"]).as_unit("ms").asi8.astype(np.int64)
    side = np.where(df["side"].fillna("").to_numpy(str) == "SELL", -1, 1).astype(np.int8)
    return TradeTape(
        ts_ms,
        df["price"].to_numpy(np.float64),
        df["size"].to_numpy(np.float64),
        side,
        name=f"bitflyer {files[0].name}..{files[min(days, len(files)) - 1].name}",
    )


def tape_from_bars(bars, seed: int = 0, price_step: float | None = None) -> TradeTape:
    """Four trades per M1 bar (open, the nearer extreme, the other extreme, close) at 0/15/30/45 s,
    each a quarter of the bar's volume: a tick stream whose bars rebuild the input bars."""
    n = len(bars)
    if n == 0:
        raise DataError("synthetic market: no bars to turn into trades")
    start = (bars.index.asi8 // 1_000_000).astype(np.int64)
    o, h, low, c = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    vol = bars["volume"].to_numpy(np.float64) if "volume" in bars else np.ones(n)
    vol = np.where(vol > 0, vol, 0.04)
    high_first = np.abs(h - o) < np.abs(o - low)
    first = np.where(high_first, h, low)
    second = np.where(high_first, low, h)
    ts = (start[:, None] + np.array([0, 15_000, 30_000, 45_000])[None, :]).ravel()
    price = np.stack([o, first, second, c], axis=1).ravel()
    if price_step:
        price = np.round(price / price_step) * price_step
    size = np.repeat(np.round(vol / 4.0, 8), 4)
    size = np.where(size > 0, size, 0.001)
    rng = np.random.default_rng(seed)
    side = np.where(rng.random(len(ts)) < 0.5, 1, -1).astype(np.int8)
    return TradeTape(ts, price, size, side, name="synthetic")


def load_synthetic(days: float, seed: int) -> TradeTape:
    """The data package's synthetic crypto market (24/7 M1 bars at BTC/JPY-like prices) as trades."""
    cfg = SyntheticConfig(
        seed=seed,
        n_bars=max(1, int(days * 1440)),
        market="crypto",
        base_price=1_200_000.0,
        bar_vol=6e-4,
        volume_scale=2.0,
    )
    return tape_from_bars(generate_market(cfg), seed=seed, price_step=1.0)
