"""PNG pictures of an evaluation report. Drawn from the report dict alone (so a saved report
can be re-drawn) with matplotlib's object API on the Agg canvas: no pyplot global state, no
display needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(rows: int = 1, height: float = 4.0, ratios: list[float] | None = None, sharex: bool | None = None):
    fig = Figure(figsize=(10, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        rows,
        1,
        sharex=rows > 1 if sharex is None else sharex,
        gridspec_kw={"height_ratios": ratios} if ratios else None,
    )
    return fig, axes


def _save(fig, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _x(curves: dict):
    if curves.get("time"):
        return pd.to_datetime(curves["time"]).to_numpy(), "time (UTC)"
    return np.asarray(curves["bar"]), "bar"


def plot_equity(report: dict, path: Path) -> Path:
    curves = report["curves"]
    x, label = _x(curves)
    fig, (ax1, ax2) = _figure(2, 6.0, [3, 1])
    ax1.plot(x, curves["equity"], color="tab:blue", lw=1.2, label="agent")
    ax1.plot(x, curves["benchmark_equity"], color="tab:gray", lw=1.0, alpha=0.8, label="buy and hold")
    if curves.get("ridge_equity"):  # absent in reports written before the ridge curve
        ax1.plot(x, curves["ridge_equity"], color="tab:green", lw=1.0, alpha=0.8, label="ridge")
    ax1.axhline(1.0, color="black", lw=0.6, alpha=0.5)
    ax1.set_ylabel("equity (start = 1)")
    m = report["metrics"]
    ax1.set_title(
        f"Equity — Sharpe {_fmt(m['sharpe'])}, total return {m['total_return']:.2%}, "
        f"max drawdown {m['max_drawdown']:.2%}"
    )
    ax1.legend(loc="best")
    dd = np.asarray(curves["drawdown"]) * 100.0
    ax2.fill_between(x, dd, 0.0, color="tab:red", alpha=0.4, step="post")
    ax2.set_ylabel("drawdown %")
    ax2.set_xlabel(label)
    return _save(fig, path)


def plot_return_distribution(report: dict, path: Path) -> Path:
    h = report["return_histogram"]
    edges = np.asarray(h["edges"]) * 1e4
    fig, ax = _figure(1, 4.0)
    ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color="tab:blue", alpha=0.75)
    m = report["metrics"]
    ax.set_title(
        f"Per-bar returns (bps) — skew {m['skew']:.2f}, kurtosis {m['kurtosis']:.1f}"
        + (f"; {h['folded']} extreme values folded into the end bins" if h["folded"] else "")
    )
    ax.set_xlabel("return per bar (bps)")
    ax.set_ylabel("bars")
    ax.set_yscale("log")
    return _save(fig, path)


def plot_bootstrap_sharpe(report: dict, path: Path) -> Path:
    b = report["bootstrap"]
    h = b["sharpe_histogram"]
    edges = np.asarray(h["edges"])
    fig, ax = _figure(1, 4.0)
    ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color="tab:green", alpha=0.7)
    ci = b["intervals"]["sharpe"]
    ax.axvline(ci["estimate"], color="black", lw=1.5, label=f"observed {ci['estimate']:.2f}")
    ax.axvline(
        ci["low"], color="tab:red", ls="--", label=f"{b['confidence']:.0%} CI [{ci['low']:.2f}, {ci['high']:.2f}]"
    )
    ax.axvline(ci["high"], color="tab:red", ls="--")
    ax.axvline(0.0, color="gray", lw=0.8)
    ax.set_title(
        f"Bootstrap distribution of the annualised Sharpe ({b['method']}, block {b['block_length']:.1f} bars, "
        f"{b['n_resamples']} resamples)"
    )
    ax.set_xlabel("annualised Sharpe")
    ax.set_ylabel("resamples")
    ax.legend(loc="best")
    return _save(fig, path)


def plot_cost_sensitivity(report: dict, path: Path) -> Path:
    cs = report["cost_sensitivity"]
    x = [p["cost_bps"] for p in cs["curve"]]
    fig, ax = _figure(1, 4.0)
    ax.plot(x, [p["sharpe"] for p in cs["curve"]], color="tab:blue", marker="o", ms=3, label="Sharpe (annualised)")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.axvline(cs["actual_cost_bps"], color="black", ls=":", label=f"trained cost {cs['actual_cost_bps']:.2f} bps")
    if cs["break_even_cost_bps"] is not None:
        ax.axvline(
            cs["break_even_cost_bps"], color="tab:red", ls="--", label=f"break-even {cs['break_even_cost_bps']:.2f} bps"
        )
    ax.set_xlabel("cost per side (bps: fee + half spread + slippage)")
    ax.set_ylabel("annualised Sharpe")
    ax2 = ax.twinx()
    ax2.plot(x, [p["total_return"] * 100 for p in cs["curve"]], color="tab:orange", lw=1.0, label="total return %")
    ax2.set_ylabel("total return %")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best")
    ax.set_title("Cost sensitivity: the agent's trades re-priced")
    return _save(fig, path)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


PLOTS = {
    "equity": plot_equity,
    "returns": plot_return_distribution,
    "bootstrap_sharpe": plot_bootstrap_sharpe,
    "cost_sensitivity": plot_cost_sensitivity,
}


def draw_walkforward(doc: dict, path: Path) -> Path:
    """Walk-forward report: concatenated out-of-sample equity of the agent, buy-and-hold and the
    ridge baseline with the fold boundaries, and each fold's Sharpe next to its strongest baseline."""
    fig, (ax, bars) = _figure(2, height=6.5, ratios=[2.0, 1.0], sharex=False)
    c = doc["curves"]
    t = pd.to_datetime(c["time"]).to_numpy()
    ax.plot(t, c["equity"], label="agent", color="C0")
    ax.plot(t, c["buy_and_hold_equity"], label="buy and hold", color="C7", alpha=0.8)
    ax.plot(t, c["ridge_equity"], label="ridge", color="C2", alpha=0.8)
    for s in c["fold_starts"]:
        ax.axvline(pd.Timestamp(s).to_datetime64(), color="k", alpha=0.25, lw=0.8)
    ax.set_ylabel("equity (out of sample)")
    ax.set_title(f"walk-forward {doc['run_id']}: {doc['scheme']} windows, {len(doc['folds'])} fold(s)")
    ax.legend(loc="best")
    folds = doc["folds"]
    x = np.arange(len(folds))
    agent = [f["sharpe"] if f["sharpe"] is not None else 0.0 for f in folds]
    strongest = [f["strongest_baseline_sharpe"] for f in folds]
    bars.bar(x - 0.2, agent, width=0.4, label="agent", color="C0")
    bars.bar(x + 0.2, strongest, width=0.4, label="strongest baseline", color="C3")
    bars.axhline(0.0, color="k", lw=0.8)
    bars.set_xticks(x, [str(f["fold"]) for f in folds])
    bars.set_xlabel("fold")
    bars.set_ylabel("Sharpe (annualised)")
    bars.legend(loc="best")
    return _save(fig, path)
