"""The verdict of an evaluation report: the plain-language reading of the numbers a user decides
on, against the STRONGEST baseline (`strongest_baseline`), never the weakest."""

from __future__ import annotations

import math

from .comparison import Comparison


def verdict(report: dict) -> dict:
    """Plain-language reading of the numbers a user decides on. The agent is compared with the
    STRONGEST baseline (highest Sharpe among buy-and-hold, SMA crossover, ridge and the random
    policies' mean): beating only the weakest proves nothing."""
    b = report["bootstrap"]["intervals"]["sharpe"]
    inf = report["sharpe_inference"]
    bls = report["baselines"]
    sharpes = {k: e["metrics"]["sharpe"] for k, e in bls.items() if k not in ("flat", "random")}
    sharpes["random"] = bls["random"]["sharpe"]["mean"]
    strongest = strongest_baseline(sharpes)
    assert strongest is not None
    top = bls[strongest[0]]["difference"]["sharpe"]
    rnd = bls["random"]["difference"]["sharpe"]
    be = report["cost_sensitivity"]["break_even_cost_bps"]
    actual = report["cost_sensitivity"]["actual_cost_bps"]
    checks = {
        "sharpe_ci_above_zero": b["low"] > 0,
        "psr_above_0_95": inf["psr"] > 0.95,
        "dsr_above_0_95": inf["dsr"] > 0.95,
        "beats_strongest_baseline": top["low"] > 0,
        "beats_random": rnd["low"] > 0,
        "survives_costs_x2": be is not None and be > 2.0 * actual,
    }
    passed = sum(checks.values())
    if (
        checks["dsr_above_0_95"]
        and checks["sharpe_ci_above_zero"]
        and checks["beats_strongest_baseline"]
        and checks["beats_random"]
        and checks["survives_costs_x2"]
    ):
        text = f"evidence of skill that survives selection, luck, doubled costs and the strongest baseline ({strongest[0]})"
    elif checks["psr_above_0_95"] and not checks["beats_strongest_baseline"]:
        text = f"positive Sharpe, but not better than the strongest baseline ({strongest[0]}): no evidence the agent adds anything"
    elif checks["psr_above_0_95"]:
        text = "positive Sharpe, but not robust to every check below; treat with caution"
    else:
        text = "no reliable evidence of skill: the result is consistent with luck"
    comparison = Comparison(
        strongest[0],
        float(report["metrics"]["sharpe"] or 0.0),
        float(strongest[1]),
        float(top["estimate"]),
        float(top["low"]),
        float(top["high"]),
        float(report["bootstrap"]["confidence"]),
        paired=strongest[0] != "random",
    )
    out = {**checks, "passed": passed, "total": len(checks), "summary": text, "strongest_baseline": strongest[0]}
    # beats / matches / behind, and the sentence with the interval every summary prints
    out["vs_strongest"], out["comparison"] = comparison.word, comparison.sentence()
    if report["meta"].get("selection_used_test"):
        # the checkpoint was chosen by evaluations on the test split: this is not out of sample
        out["summary"] = "TEST SPLIT USED FOR SELECTION DURING TRAINING: " + text
    return out


def strongest_baseline(sharpes: dict[str, float | None]) -> tuple[str, float] | None:
    """(name, Sharpe) of the baseline with the highest Sharpe: the agent is judged against the best
    simple alternative, not the weakest. Undefined Sharpes (a baseline that never trades) count 0."""
    scored = {k: (v if v is not None and math.isfinite(v) else 0.0) for k, v in sharpes.items()}
    if not scored:
        return None
    name = max(scored, key=lambda k: scored[k])
    return name, scored[name]
