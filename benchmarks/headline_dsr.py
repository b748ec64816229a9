"""Deflate the docs' headline Sharpes by every configuration scored on the same market's test split.

Reads `benchmarks/test_registry.csv` and prints, per market: N configurations (and how many
scorings: configurations times seeds and checkpoints), the spread of their Sharpes, the Sharpe
the best of N skill-less configurations would reach (E[max]), and the DSR of the best
configuration and of the docs' headline figure, deflated by N. Normal approximation (skew 0,
kurtosis 3): the registry holds Sharpes, not return series. See
`ztb_core/evaluation/holdout_registry.py` for what a configuration is and where each number comes from.

Usage: python benchmarks/headline_dsr.py [--registry PATH] [--markets M ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ztb_core.evaluation.errors import EvaluationError  # noqa: E402
from ztb_core.evaluation.holdout_registry import (  # noqa: E402
    MarketTrials,
    deflate,
    expected_max_annualised,
    load_registry,
    markets,
)

DEFAULT_REGISTRY = Path(__file__).resolve().parent / "test_registry.csv"

#: the figure docs/results.md quotes per market: (configuration, checkpoint rule, where it is quoted)
HEADLINES: dict[str, tuple[str, str, str]] = {
    "synthetic:demo-600k:seed0": (
        "fcband-600k: forecast alone, lookback 1, training cost x0.25 (the default to 2026-12-08, 4 x 8,192 rollouts)",
        "final",
        "results.md: the agent, nine training seeds (10.7-12.7; median)",
    ),
    "synthetic:demo-600k:seed11": ("the default (forecast band), 1M steps", "final", "results.md: fresh seed 11"),
    "synthetic:demo-600k:seed23": ("the default (forecast band), 1M steps", "final", "results.md: fresh seed 23"),
    # the headline markets: fresh seeds chosen before any scoring, three training seeds each (median)
    "synthetic:demo-600k:seed101": (
        "the default (16 x 2,048 rollouts), 1M steps",
        "final",
        "results.md: headline, fresh seed 101, median of three training seeds",
    ),
    "synthetic:demo-600k:seed202": (
        "the default (16 x 2,048 rollouts), 1M steps",
        "final",
        "results.md: headline, fresh seed 202, median of three training seeds",
    ),
    "real:USDJPY-M1-2016:Aug": (
        "R-usdjpy-newdef: the forecast-band default, 1M steps",
        "final",
        "results.md: the default agent's August net Sharpe",
    ),
}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def describe(trials: MarketTrials) -> list[str]:
    """The lines printed for one market."""
    sharpes = trials.sharpes
    head = (
        f"{trials.market} ({trials.split}): N = {trials.n_configurations} configurations "
        f"({trials.n_scorings} scorings), {len(sharpes)} with a stated Sharpe; "
        f"test bars {trials.n_test_bars if trials.n_test_bars is not None else '-'} ({trials.n_test_bars_source})"
    )
    lines = [head]
    if len(sharpes) >= 2:
        lines.append(
            f"  Sharpes: min {min(sharpes):.2f}, median {statistics.median(sharpes):.2f}, max {max(sharpes):.2f}, "
            f"SD {statistics.stdev(sharpes):.2f}"
        )
    lines.append(
        f"  E[max] of {trials.n_configurations} skill-less configurations: {_fmt(expected_max_annualised(trials))}"
    )
    if trials.n_test_bars is None or not sharpes:
        lines.append("  DSR: not computed (no Sharpe or no test length stated)")
        return lines
    best = max((c for c in trials.configurations if c.sharpe is not None), key=lambda c: c.sharpe or 0.0)
    assert best.sharpe is not None
    d = deflate(best.sharpe, trials)
    lines.append(
        f"  best: {best.label}: {best.sharpe:.2f} -> DSR {d.dsr:.3f} (E[max] {d.expected_max_sharpe:.2f}, "
        f"trial SD {d.trial_sharpe_sd:.2f} from the {d.variance_source})"
    )
    if trials.market in HEADLINES:
        config, checkpoint, where = HEADLINES[trials.market]
        c = trials.find(config, checkpoint)
        if c.sharpe is None:
            raise EvaluationError(f"{trials.market}: the headline configuration {config!r} has no stated Sharpe")
        h = deflate(c.sharpe, trials)
        one = deflate(c.sharpe, trials, n_trials=1)
        lines.append(
            f"  headline ({where}): {c.sharpe:.2f} -> DSR {h.dsr:.3f} deflated by N = {h.n_trials} "
            f"(PSR against 0, i.e. N = 1: {one.dsr:.3f})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY)
    ap.add_argument("--markets", nargs="*", help="only these markets (default: every market in the registry)")
    args = ap.parse_args(argv)
    try:
        found = markets(load_registry(args.registry))
        totals = (
            f"registry: {sum(m.n_scorings for m in found)} scorings of "
            f"{sum(m.n_configurations for m in found)} configurations on {len(found)} markets' test splits"
        )
        if args.markets:
            unknown = set(args.markets) - {m.market for m in found}
            if unknown:
                raise EvaluationError(f"{args.registry}: no rows for market(s) {', '.join(sorted(unknown))}")
            found = [m for m in found if m.market in args.markets]
        out = [totals] + [line for m in found for line in describe(m)]
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
