"""The gymnasium trading environment.

One step = one bar. After bar t has closed the agent sees the last `lookback` rows of features
(rows t-lookback+1 .. t) plus its current position, and picks a target position; the order fills
at the open of bar t+1 and the reward is the change in log equity over bar t+1 net of costs,
computed by `ztb_core.pnl.step_return` — the same convention as the evaluation backtest and the
paper broker, so their numbers agree.

Speed: everything is precomputed. Features live in one contiguous float32 array, so a window is
a contiguous slice taken with a single copy; bar returns are Python floats (scalar
indexing into lists is several times faster than into numpy arrays); `step` touches no pandas.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import DataError
from ..pnl import bar_returns, step_return
from .actions import ActionMap
from .config import EnvConfig
from .encoder import FEATURES_KEY, POSITION_KEY, raw_key


def obs_dim(lookback: int, n_features: int) -> int:
    """Length of a flat observation: the window, then the current position."""
    return lookback * n_features + 1


class TradingEnv(gym.Env):
    """Trade one instrument bar by bar. See the module docstring for timing and reward.

    `features` (T, F) float32, `open_`/`close` (T,) prices of the same bars. Episodes start at a
    random decision index (the first one with a full window onwards) unless `reset(options=
    {"start": t})` names one; they end on the equity floor (terminated), after
    `episode_length` steps or at the last bar (truncated).
    """

    metadata = {"render_modes": []}

    def __init__(self, features: np.ndarray, open_: np.ndarray, close: np.ndarray, cfg: EnvConfig):
        super().__init__()
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2:
            raise DataError(f"TradingEnv: features must be 2-D (T, F), got shape {feats.shape}")
        n, f = feats.shape
        if len(open_) != n or len(close) != n:
            raise DataError(f"TradingEnv: {n} feature rows but {len(open_)} opens and {len(close)} closes")
        if n < cfg.lookback + 1:
            raise DataError(f"TradingEnv: {n} bars is too few for a {cfg.lookback}-bar lookback plus one step")
        if not np.isfinite(feats).all():
            bad = int(np.argwhere(~np.isfinite(feats))[0][0])
            raise DataError(f"TradingEnv: non-finite feature value in row {bad}")
        self.cfg = cfg
        self.n_features, self.lookback = f, cfg.lookback
        self._win = cfg.lookback * f
        self._set_data(feats, open_, close)
        self._rate = cfg.costs.rate
        self._first = cfg.lookback - 1  # first decision index with a full window
        self._ep_len = cfg.episode_length
        self._log_floor = math.log(cfg.equity_floor)
        self._dd_w = cfg.reward.drawdown_penalty if cfg.reward.kind == "log_return_drawdown" else 0.0
        self._scale = cfg.reward.scale
        self._penalty = cfg.reward.turnover_penalty
        big = float(np.finfo(np.float32).max)  # finite bounds: features are finite by construction
        self.observation_space = spaces.Box(-big, big, shape=(obs_dim(cfg.lookback, f),), dtype=np.float32)
        self.actions = ActionMap(cfg)
        self.action_space = self.actions.space
        # plain target-position table: the hot path indexes it directly
        self._table = self.actions.table if cfg.actions == "discrete" else ()
        self._t = self._first
        self._pos = 0.0
        self._log_eq = 0.0
        self._peak = 0.0
        self._steps = 0
        self._turnover = 0.0  # episode totals, reported in the info (VecMonitor keeps the last one)
        self._costs = 0.0

    def _set_data(self, feats: np.ndarray, open_: np.ndarray, close: np.ndarray) -> None:
        self.n_bars = len(feats)
        # one spare element at the end: an observation is copied as window + 1 element in a single
        # copy and that last element is then overwritten with the position (never a feature value)
        self._flat = np.concatenate([feats.reshape(-1), np.zeros(1, dtype=np.float32)])
        rets = bar_returns(open_, close)
        self._gap: list[float] = rets.gap.tolist()
        self._intra: list[float] = rets.intra.tolist()
        self._last = self.n_bars - 2  # last decision index that still has a next bar to fill on

    def load_market(self, features: np.ndarray, open_: np.ndarray, close: np.ndarray) -> None:
        """Replace the bars (streaming: the window refreshed between rollouts). Same feature count;
        the caller resets the episodes, since the decision index refers to the old bars."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.n_features:
            raise DataError(f"TradingEnv.load_market: features must be (T, {self.n_features}), got {feats.shape}")
        if len(open_) != len(feats) or len(close) != len(feats) or len(feats) < self.lookback + 1:
            raise DataError(
                f"TradingEnv.load_market: {len(feats)} feature rows, {len(open_)} opens, {len(close)} closes "
                f"(need equal lengths and at least {self.lookback + 1})"
            )
        if not np.isfinite(feats).all():
            raise DataError("TradingEnv.load_market: non-finite feature value")
        self._set_data(feats, open_, close)
        self._t = min(self._t, self._last)

    # ---- helpers ------------------------------------------------------------------------
    def position_for(self, action: Any, held: float) -> float:
        """The position an action leads to from `held`, the position now (`ActionMap.position`)."""
        return self.actions.position(action, held)

    def _obs(self) -> np.ndarray:
        s = (self._t - self._first) * self.n_features
        obs = self._flat[s : s + self._win + 1].copy()
        obs[-1] = self._pos
        return obs

    @property
    def equity(self) -> float:
        return math.exp(self._log_eq)

    @property
    def position(self) -> float:
        return self._pos

    @property
    def t(self) -> int:
        """Index of the last closed bar (the decision index)."""
        return self._t

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "start" in options:
            start = int(options["start"])
            if not self._first <= start <= self._last:
                raise DataError(f"TradingEnv.reset: start {start} outside [{self._first}, {self._last}]")
        else:
            start = int(self.np_random.integers(self._first, self._last + 1))
        self._t = start
        self._pos = float(options.get("position", 0.0)) if options else 0.0
        self._log_eq = 0.0
        self._peak = 0.0
        self._steps = 0
        self._turnover = 0.0
        self._costs = 0.0
        return self._obs(), {"t": start}

    def step(self, action):
        # hot path: locals only, one copy for the observation, no numpy scalars
        new = self._table[action] if self._table else self.position_for(action, self._pos)
        t1 = self._t + 1
        r, cost = step_return(self._pos, new, self._gap[t1], self._intra[t1], self._rate)
        log_r = math.log1p(r) if r > -1.0 + 1e-12 else -30.0
        log_eq = self._log_eq + log_r
        reward = log_r
        if cost:
            self._turnover += abs(new - self._pos)
            self._costs += cost
            reward -= self._penalty * cost
        if self._dd_w:
            dd_before = self._peak - self._log_eq
            peak = self._peak = max(self._peak, log_eq)
            reward -= self._dd_w * max(0.0, (peak - log_eq) - dd_before)
        elif log_eq > self._peak:
            self._peak = log_eq
        self._log_eq = log_eq
        self._pos = new
        self._t = t1
        self._steps += 1
        terminated = log_eq < self._log_floor
        truncated = not terminated and (self._steps >= self._ep_len or t1 > self._last)
        s = (t1 - self._first) * self.n_features
        obs = self._flat[s : s + self._win + 1].copy()
        obs[-1] = new
        return (
            obs,
            reward * self._scale,
            terminated,
            truncated,
            {
                "equity": math.exp(log_eq),
                "position": new,
                "cost": cost,
                "turnover": self._turnover,
                "costs": self._costs,
                "penalty": self._penalty * self._costs,
            },
        )


class EncoderTradingEnv(TradingEnv):
    """`TradingEnv` for fine-tune mode: a `spaces.Dict` observation.

    `features` (lookback * F,) is the same flat window as `TradingEnv`'s (without the position),
    `position` (1,) the position held, and `x:{tf}` (L_tf, 7) the Stage-1 encoder's input window
    of each timeframe for the decision bar, gathered from `windows` (a `RawWindows` aligned with
    `features` row for row). Timing, reward and costs are `TradingEnv`'s.
    """

    def __init__(self, features: np.ndarray, open_: np.ndarray, close: np.ndarray, cfg: EnvConfig, windows: Any):
        super().__init__(features, open_, close, cfg)
        if len(windows) != self.n_bars:
            raise DataError(f"EncoderTradingEnv: {self.n_bars} feature rows but {len(windows)} encoder window rows")
        self.windows = windows
        self._fkey, self._pkey = FEATURES_KEY, POSITION_KEY
        self.observation_space = dict_space(cfg.lookback, self.n_features, windows.shapes)

    def _dict_obs(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        obs = self.windows.at(self._t)
        obs[self._fkey] = flat[:-1]
        obs[self._pkey] = flat[-1:]
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        flat, info = super().reset(seed=seed, options=options)
        return self._dict_obs(flat), info

    def step(self, action):
        flat, reward, terminated, truncated, info = super().step(action)
        return self._dict_obs(flat), reward, terminated, truncated, info


def dict_space(lookback: int, n_features: int, raw_shapes: dict[str, tuple[int, int]]) -> spaces.Dict:
    """Fine-tune mode's observation space (see `EncoderTradingEnv`)."""
    big = float(np.finfo(np.float32).max)
    parts: dict[str, spaces.Space] = {
        FEATURES_KEY: spaces.Box(-big, big, shape=(lookback * n_features,), dtype=np.float32),
        POSITION_KEY: spaces.Box(-big, big, shape=(1,), dtype=np.float32),
    }
    for tf, shape in raw_shapes.items():
        parts[raw_key(tf)] = spaces.Box(-big, big, shape=tuple(shape), dtype=np.float32)
    return spaces.Dict(parts)
