"""An exponential moving average of the policy's weights over PPO updates.

PPO's greedy policy on this task moves a lot from one update to the next (periodic validation
Sharpe jumping by 10 between evaluations 50k steps apart) and drifts late in training
(docs/rl-experiments.md). Averaging the weights of the last updates (Polyak averaging, as in
stochastic weight averaging) keeps the trained network but damps that update-to-update noise.
Training itself is unchanged: PPO keeps optimising its own weights; the average is what is
evaluated, what a checkpoint's agent is (`agent_weights`) and what a warm start copies. Integer
buffers are taken as they are.

The average is updated once per PPO update (at the rollout boundary after it), and remembers
the step of its last update, so a resumed run neither double-counts nor skips one: the average
after a resume is the one the uninterrupted run would have had.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

#: checkpoint keys of the averaged weights and of the step of their last update
AVERAGE_KEY = "policy_average"
AVERAGE_STEP_KEY = "policy_average_step"


def agent_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's agent acts with: the average when the run kept one."""
    avg = state.get(AVERAGE_KEY)
    return avg if avg is not None else state["policy"]


class PolicyAverage:
    """`avg = decay * avg + (1 - decay) * weights` after each update; the first update starts it."""

    def __init__(self, decay: float, state: dict[str, Any] | None = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"policy average decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.weights: dict[str, torch.Tensor] | None = None
        self.step: int | None = None  # num_timesteps of the last update
        if state is not None and state.get(AVERAGE_KEY) is not None:
            self.weights = {k: v.detach().clone() for k, v in state[AVERAGE_KEY].items()}
            self.step = int(state[AVERAGE_STEP_KEY])

    def update(self, policy: torch.nn.Module, step: int) -> bool:
        """Fold the policy's current weights in, once per step (a second call at the same step,
        e.g. the first rollout boundary after a resume, changes nothing). True if it updated."""
        if step == self.step:
            return False
        current = policy.state_dict()
        if self.weights is None:
            self.weights = {k: v.detach().clone() for k, v in current.items()}
        else:
            with torch.no_grad():
                for k, v in current.items():
                    avg = self.weights[k]
                    if avg.dtype.is_floating_point:
                        avg.mul_(self.decay).add_(v.detach().to(avg.device), alpha=1.0 - self.decay)
                    else:
                        avg.copy_(v)
        self.step = step
        return True

    @contextmanager
    def applied(self, policy: torch.nn.Module) -> Iterator[None]:
        """Run the block with the averaged weights in `policy`, then put PPO's own weights back."""
        if self.weights is None:
            yield
            return
        own = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        policy.load_state_dict(self.weights)
        try:
            yield
        finally:
            policy.load_state_dict(own)

    def checkpoint_state(self) -> dict[str, Any]:
        """What a checkpoint stores (CPU copies)."""
        if self.weights is None:
            return {}
        return {
            AVERAGE_KEY: {k: v.detach().cpu().clone() for k, v in self.weights.items()},
            AVERAGE_STEP_KEY: self.step,
        }
