"""Training on streamed bars (`streaming.enabled`): the env trains on a window of the newest
`streaming.capacity_bars` bars taken from the ring buffer (`ztb_core.data.stream`), refreshed at
every rollout start; fresh episodes then start on the new window. A forecast (`forecast.kind`)
is fitted on the first window, the only train bars in memory at the start. One `stream` metrics row per
rollout: buffer fill, dropped and blocked counts, bars/s consumed.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback

from ..data.features import feature_names
from ..data.stream import Rows, StreamProducer
from ..errors import ConfigError, DataError
from ..runs import RunWriter
from .config import TrainConfig
from .forecast import Forecast
from .market import MarketSlice

#: seconds to wait for the first window (the producer reads and computes features meanwhile)
FIRST_WINDOW_TIMEOUT_S = 600.0


class StreamWindow:
    """The newest `capacity` bars consumed from the producer's buffer."""

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.encoder.path:
            raise ConfigError("streaming.enabled: streaming does not support encoder.path yet; unset one of them")
        self.cfg = cfg
        self.names = feature_names(cfg.features)
        self.producer = StreamProducer(cfg.data, cfg.splits, cfg.features, cfg.streaming, len(self.names)).start()
        self.rows = Rows.concat([], len(self.names))
        self._t_last = time.perf_counter()
        self._consumed_last = 0

    def _check(self) -> None:
        if self.producer.error is not None:
            err = self.producer.error
            raise err if isinstance(err, DataError) else DataError(f"streaming producer failed: {err!r}")

    def first(self) -> MarketSlice:
        """Block until the buffer is full (or the source is used up), then take the first window."""
        # "full": no room for another batch (under `block` a push waits for room for its whole batch)
        need = self.cfg.streaming.capacity_bars - self.cfg.streaming.batch_size + 1
        deadline = time.monotonic() + FIRST_WINDOW_TIMEOUT_S
        buf = self.producer.buffer
        while not buf.wait_for(need, 0.2):
            self._check()
            if self.producer.passes > 0 or time.monotonic() > deadline:
                break
        self._check()
        self.refresh()
        if len(self.rows) < self.cfg.env.lookback + 1:
            raise DataError(
                f"streaming: only {len(self.rows)} bars arrived; the env needs env.lookback + 1 = "
                f"{self.cfg.env.lookback + 1} (use more data or a larger streaming.capacity_bars)"
            )
        return self.market()

    def refresh(self) -> int:
        """Move what the buffer holds into the window; returns how many bars arrived."""
        self._check()
        new = self.producer.buffer.get()
        if len(new):
            self.rows = Rows.concat([self.rows, new], len(self.names))[-self.cfg.streaming.capacity_bars :]
        return len(new)

    def market(self) -> MarketSlice:
        r = self.rows
        index = pd.DatetimeIndex(pd.to_datetime(r.time, utc=True))
        bars = pd.DataFrame({"open": r.open, "close": r.close}, index=index)
        return MarketSlice(
            split="train",
            bars=bars,
            features=r.features,
            feature_names=self.names,
            open=r.open,
            close=r.close,
            index=index,
            market=self.cfg.data.market,
            symbol=self.cfg.data.symbol,
            rows=(0, len(r)),
        )

    def stats(self, fill: float) -> dict[str, float]:
        buf = self.producer.buffer
        now = time.perf_counter()
        rate = (buf.consumed - self._consumed_last) / max(now - self._t_last, 1e-9)
        self._t_last, self._consumed_last = now, buf.consumed
        return {
            "fill": round(fill, 4),
            "dropped": buf.dropped,
            "blocked": buf.blocked,
            "blocked_s": round(buf.blocked_s, 3),
            "bars_per_s": round(rate, 1),
            "pushed": buf.pushed,
            "consumed": buf.consumed,
            "window_bars": len(self.rows),
            "passes": self.producer.passes,
        }

    def close(self) -> None:
        self.producer.stop()


class StreamRefresh(BaseCallback):
    """At every rollout start after the first: take the new bars, load the window into every env,
    start fresh episodes on it, and write the `stream` metrics row."""

    def __init__(self, window: StreamWindow, writer: RunWriter, forecast: Forecast | None = None):
        super().__init__()
        self.window, self.writer = window, writer
        self.forecast = forecast  # fitted on the first window: appended to every later one
        self._first = True

    def _on_rollout_start(self) -> None:
        fill = self.window.producer.buffer.fill()
        if self._first:  # the envs were built on the first window
            self._first = False
        elif self.window.refresh():
            m = self.window.market()
            if self.forecast is not None:
                m = self.forecast.augment(m)
            venv = self.training_env  # the model's outermost VecEnv (VecNormalize forwards env_method)
            venv.env_method("load_market", m.features, m.open, m.close)
            # SB3 steps on from _last_obs: the old one belongs to the replaced bars
            self.model._last_obs = venv.reset()  # type: ignore[assignment]
            self.model._last_episode_starts = np.ones(venv.num_envs, dtype=bool)
        self.writer.metric(int(self.num_timesteps), "stream", self.window.stats(fill))

    def _on_step(self) -> bool:
        return True
