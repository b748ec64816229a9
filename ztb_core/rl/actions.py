"""How a policy's action becomes a position: one mapping for the environment (training), the
loaded agent (evaluation, walk-forward) and the live bot, so all of them trade the same way.

Three designs (`env.actions`):

* `discrete`: action i is the target position `positions[i]` (flat, long, short by default).
  Holding means choosing the position already held, so it depends on the position.
* `change`: three actions, hold / one rung up / one rung down the ladder of `positions`
  (sorted). "Hold" is the same action whatever is held, so it is the cheap default the policy
  can learn once; a step off the ladder's end holds.
* `target`: a continuous target in [-max_position, max_position]; one within `no_trade_band` of
  the position held keeps it, so exploring near the position costs nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .config import EnvConfig

HOLD, UP, DOWN = 0, 1, 2  # the `change` actions


class ActionMap:
    """The position each action leads to from a position held (see the module docstring)."""

    def __init__(self, cfg: EnvConfig):
        self.kind = cfg.actions
        self.table = tuple(float(p) for p in cfg.positions)
        self.ladder = tuple(sorted(set(self.table)))
        self.max_position = cfg.max_position
        self.band = cfg.no_trade_band
        # change actions: (hold, up, down) from each rung, looked up on the environment's hot path
        self._moves = {p: self._moves_from(p) for p in self.ladder}

    @property
    def space(self) -> spaces.Space:
        if self.kind == "discrete":
            return spaces.Discrete(len(self.table))
        if self.kind == "change":
            return spaces.Discrete(3)
        return spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    @property
    def finite(self) -> bool:
        """True when actions and positions are finite sets (the agent's fast greedy replay)."""
        return self.kind != "target"

    @property
    def n_actions(self) -> int:
        return len(self.table) if self.kind == "discrete" else 3

    def _moves_from(self, held: float) -> tuple[float, float, float]:
        above = [p for p in self.ladder if p > held]
        below = [p for p in self.ladder if p < held]
        return held, (above[0] if above else held), (below[-1] if below else held)

    def position(self, action: Any, held: float) -> float:
        """The position one action leads to from `held`."""
        if self.kind == "discrete":
            return self.table[int(action)]
        if self.kind == "change":
            moves = self._moves.get(held)
            return (moves or self._moves_from(held))[int(action)]
        target = max(-1.0, min(1.0, float(np.asarray(action).reshape(-1)[0]))) * self.max_position
        return held if abs(target - held) <= self.band else target

    def positions(self, actions: np.ndarray, held: float) -> np.ndarray:
        """The position each of a batch of alternative actions leads to from the same `held`."""
        a = np.asarray(actions)
        if self.kind == "discrete":
            return np.asarray(self.table, dtype=np.float64)[a.astype(np.int64).reshape(-1)]
        if self.kind == "change":
            moves = self._moves.get(held) or self._moves_from(held)
            return np.asarray(moves, dtype=np.float64)[a.astype(np.int64).reshape(-1)]
        targets = np.clip(a.reshape(-1).astype(np.float64), -1.0, 1.0) * self.max_position
        return np.where(np.abs(targets - held) <= self.band, held, targets)

    def states(self, initial: float) -> tuple[list[float], np.ndarray]:
        """Finite actions only: every position reachable from `initial` (sorted) and the
        transition table next[state, action] -> state index."""
        held = sorted(set(self.ladder) | {float(initial)})
        index = {p: j for j, p in enumerate(held)}
        nxt = np.array([[index[self.position(a, p)] for a in range(self.n_actions)] for p in held], dtype=np.int64)
        return held, nxt
