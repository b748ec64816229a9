"""Smoothed rates for forecasts: a run's steps per second (and so its ETA) and the rate at which a
disk fills (and so "full in ..."). One implementation for `ztb watch` (through `runtime.disk`) and
the console; standard library only, so the console can load it on its first paint.

Both used to divide the change between two readings by the time between them. A run's step moves
in bursts (a PPO rollout, then an update; a heartbeat written at most every few seconds) and a disk
fills in bursts (a checkpoint, then nothing), so a two-reading rate swung with every burst: the ETA
jumped at every poll and one disk showed "full in 21 h" and "835 h" a minute apart with 75 GiB free.

- `EwmaRate`: an exponentially weighted average of the rate, weighted by time (a reading that
  covers a longer interval counts for more), with a time constant of about a minute.
- `fit_fill_rate`: an ordinary least-squares line through every free-space reading of a window,
  with its standard error, so a forecast can say how sure it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: the time constant of the step-rate average: long enough to span a few PPO rollouts and
#: heartbeats, short enough that a real slowdown shows in the ETA within a couple of minutes
STEP_RATE_TAU_S = 60.0
#: no disk forecast from readings spanning less than this: ten minutes hold two checkpoints of a
#: run that saves every five minutes; a shorter stretch of bursty writes says little about hours
MIN_FIT_SPAN_S = 600.0
#: how many standard errors below the fitted fill rate the warning's rate sits (about 97.5 %
#: one-sided under a normal error)
WARN_SE = 2.0


class EwmaRate:
    """The rate of a growing count (steps), averaged with weight `1 - exp(-dt / tau)` per reading."""

    def __init__(self, tau_s: float = STEP_RATE_TAU_S):
        if tau_s <= 0:
            raise ValueError(f"EwmaRate: tau_s must be positive, got {tau_s}")
        self.tau_s = tau_s
        self.rate: float | None = None
        self._last: tuple[float, float] | None = None

    def update(self, t: float, count: float) -> float | None:
        """Add a reading (time, count); readings at the same or an earlier time are ignored, and a
        count that went backwards (a restart from an older checkpoint) starts the average afresh."""
        last = self._last
        if last is not None and t <= last[0]:
            return self.rate
        self._last = (t, count)
        if last is None:
            return self.rate
        if count < last[1]:
            self.rate = None
            return None
        dt = t - last[0]
        now_rate = (count - last[1]) / dt
        if self.rate is None:
            self.rate = now_rate
        else:
            self.rate += (1.0 - math.exp(-dt / self.tau_s)) * (now_rate - self.rate)
        return self.rate


@dataclass(frozen=True)
class RateFit:
    """Bytes per second by which free space falls (positive: filling), and its standard error."""

    rate: float
    se: float
    span_s: float
    n: int


def fit_fill_rate(
    samples: Iterable[tuple[float, float]], now: float, window_s: float, min_span_s: float = MIN_FIT_SPAN_S
) -> RateFit | None:
    """Least-squares slope of free bytes over time through the readings of the last `window_s`
    seconds, negated (a falling free space is a positive fill rate). None with fewer than three
    readings or a span shorter than `min_span_s`."""
    pts = [(t, f) for t, f in samples if now - window_s <= t <= now]
    n = len(pts)
    if n < 3:
        return None
    span = max(t for t, _ in pts) - min(t for t, _ in pts)
    if span < min_span_s:
        return None
    mt = sum(t for t, _ in pts) / n
    mf = sum(f for _, f in pts) / n
    sxx = sum((t - mt) ** 2 for t, _ in pts)
    slope = sum((t - mt) * (f - mf) for t, f in pts) / sxx
    resid = sum((f - mf - slope * (t - mt)) ** 2 for t, f in pts)
    se = math.sqrt(resid / (n - 2) / sxx)
    return RateFit(rate=-slope, se=se, span_s=span, n=n)


def seconds_to_full(free_bytes: float, fit: RateFit | None) -> float | None:
    """Free space over the fitted fill rate; None when space is not falling."""
    if fit is None or fit.rate <= 0:
        return None
    return free_bytes / fit.rate


def fills_within(free_bytes: float, fit: RateFit | None, horizon_s: float, n_se: float = WARN_SE) -> bool:
    """True when even a fill rate `n_se` standard errors below the fitted one fills the disk within
    `horizon_s`. A warning on the point estimate alone fired with 75 GiB free: bursts of checkpoint
    writes make the fitted rate noisy, and a large margin of free space turns a small error in the
    rate into many hours of error in the forecast. Asking the slow end of the rate to fill the disk
    keeps the warning for a fall that is both real (clearly above zero) and fast; a disk that is
    truly short of space is still caught by the free-space thresholds, which need no rate."""
    if fit is None or horizon_s <= 0:
        return False
    slow = fit.rate - n_se * fit.se
    return slow > 0 and free_bytes / slow < horizon_s
