"""The agent against the strongest baseline, in words that claim no more than the data show.

Every summary a person reads (the end-of-training table, periodic-evaluation rows, the `ztb eval`
verdict) says the agent *beats* the strongest baseline only when the paired bootstrap interval of
the Sharpe difference (agent minus baseline, the same resampled bars for both) lies above zero;
*matches* when it contains zero (the difference is within noise), *is behind* when it lies below.
A bare "8.01 > 7.94" is a difference far inside one standard error (about 2 on 89,000 M1 bars).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .bootstrap import bootstrap_statistics, estimate_block_length, percentile_interval, point_statistics

Word = Literal["beats", "matches", "behind"]


def comparison_word(low: float, high: float) -> Word:
    """beats: the whole interval of (agent - baseline) is above 0; behind: below 0; else matches."""
    if low > 0:
        return "beats"
    if high < 0:
        return "behind"
    return "matches"


_VERB = {"beats": "beats", "matches": "matches", "behind": "is behind"}
_WHY = {
    "beats": "the interval is above 0",
    "matches": "the interval contains 0: no difference beyond noise",
    "behind": "the interval is below 0",
}


@dataclass(frozen=True)
class Comparison:
    """Agent minus the strongest baseline: Sharpe point estimates and the interval of the difference."""

    baseline: str
    agent_sharpe: float
    baseline_sharpe: float
    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    paired: bool = True  # False: the baseline is a distribution (random policies), not one series

    @property
    def word(self) -> Word:
        return comparison_word(self.low, self.high)

    def sentence(self) -> str:
        """One line, e.g. 'the agent matches the strongest baseline (ridge, Sharpe 7.94; agent 8.01):
        difference +0.07, 95% paired bootstrap interval [-2.90, +3.01] (the interval contains 0: ...)'."""
        kind = "paired bootstrap" if self.paired else "bootstrap"
        return (
            f"the agent {_VERB[self.word]} the strongest baseline ({self.baseline}, Sharpe {self.baseline_sharpe:.2f}; "
            f"agent {self.agent_sharpe:.2f}): difference {self.estimate:+.2f}, {self.confidence:.0%} {kind} interval "
            f"[{self.low:+.2f}, {self.high:+.2f}] ({_WHY[self.word]})"
        )

    def as_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "word": self.word,
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "paired": self.paired,
        }


def compare_returns(
    agent: np.ndarray,
    baseline: np.ndarray | None,
    name: str,
    baseline_sharpe: float,
    periods_per_year: float,
    n_resamples: int = 500,
    confidence: float = 0.95,
    seed: int | None = 0,
    block_length: float | None = None,
) -> Comparison:
    """Paired block bootstrap of the annualised Sharpe difference of two aligned net-return series.

    `baseline` None (the random policies' mean Sharpe, a number not a series): the agent's own
    bootstrap interval minus that number. A flat agent (constant returns) has Sharpe 0 on every
    resample, as in `bootstrap_statistics`. `block_length` None: Politis-White on a series that
    varies (callers comparing against a fixed baseline again and again can pass it once)."""
    a = np.asarray(agent, dtype=np.float64)
    cols = a[:, None] if baseline is None else np.column_stack([a, np.asarray(baseline, dtype=np.float64)])
    # the block length is estimated on a series that varies (Politis-White needs variance)
    varying = next((cols[:, j] for j in range(cols.shape[1]) if np.std(cols[:, j]) > 0), None)
    block = block_length or (estimate_block_length(varying) if varying is not None else 1.0)
    boot, _ = bootstrap_statistics(
        cols, periods_per_year, n_resamples, block, "stationary", seed, which=("sharpe",), drawdown_columns=[]
    )
    s = boot["sharpe"]
    p = point_statistics(cols, periods_per_year, ("sharpe",))["sharpe"]
    if baseline is None:
        diff, est, base = s[:, 0] - baseline_sharpe, float(p[0]) - baseline_sharpe, float(baseline_sharpe)
    else:
        diff, est, base = s[:, 0] - s[:, 1], float(p[0] - p[1]), float(p[1])
    lo, hi = percentile_interval(diff, confidence)
    return Comparison(name, float(p[0]), base, est, lo, hi, confidence, paired=baseline is not None)
