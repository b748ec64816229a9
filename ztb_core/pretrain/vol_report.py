"""The volatility probe's report: JSON (every number), Markdown (the tables a person reads) and one
PNG of forecast vs realised log variance on the scored period, written atomically into a run's
reports/ folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_write_json, atomic_write_text


def vol_verdict(row: dict, loss: str = "qlike") -> str:
    lo, hi = row[f"{loss}_diff_ci"]
    if hi < 0:
        return "better"
    if lo > 0:
        return "WORSE"
    return "no difference"


def markdown(res: dict, title: str) -> str:
    lines = [f"# {title}", ""]
    s, p = res["samples"], res["periods"]
    lines.append(
        f"Samples every {res['stride']} M1 bars; train {s['train']} ({p['train'][0]} .. {p['train'][1]}), "
        f"val {s['val']} ({p['val'][0]} .. {p['val'][1]}), scored {s['test']} ({p['test'][0]} .. {p['test'][1]})."
    )
    lines.append(
        "Target: log realised variance of the next h M1 returns. Loss differences are forecaster minus the "
        "reference (negative = better than the reference), with paired stationary block-bootstrap standard "
        "errors and 95 % intervals. MZ: log realised on log forecast."
    )
    lines.append("")
    for h, hz in res["horizons"].items():
        ref = hz["reference"]
        lines += [
            f"## Horizon {h} minutes (reference: {ref}, the simple rule with the lowest val QLIKE; "
            f"block length {hz['block_length']:.0f} samples)",
            "",
            "| forecaster | QLIKE (se) | QLIKE - ref [95%] | MSE log (se) | MSE log - ref [95%] | MZ R² | MZ slope | verdict (QLIKE) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in hz["forecasters"].items():
            q_lo, q_hi = row["qlike_diff_ci"]
            m_lo, m_hi = row["mse_log_diff_ci"]
            v = "reference" if name == ref else vol_verdict(row)
            lines.append(
                f"| {name} | {row['qlike']:.4f} ({row['qlike_se']:.4f}) | {row['qlike_diff']:+.4f} "
                f"[{q_lo:+.4f}, {q_hi:+.4f}] | {row['mse_log']:.4f} ({row['mse_log_se']:.4f}) | "
                f"{row['mse_log_diff']:+.4f} [{m_lo:+.4f}, {m_hi:+.4f}] | {row['mz_r2']:.3f} | "
                f"{row['mz_slope']:.2f} | {v} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_vol_forecasts(res: dict, path: Path) -> Path:
    hs = list(res["horizons"])
    fig = Figure(figsize=(11, 3.2 * len(hs)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(hs), 1, squeeze=False)[:, 0]
    for ax, h in zip(axes, hs, strict=True):
        hz = res["horizons"][h]
        p = hz["plot"]
        t = pd.to_datetime(np.asarray(p["times"]))
        ax.plot(t, p["realised"], lw=0.5, color="0.6", label="realised log RV")
        ax.plot(t, p["reference"], lw=0.9, label=f"{hz['reference']} (reference)")
        ax.plot(t, p["encoder"], lw=0.9, label="encoder probe")
        ax.set_title(f"next {h} minutes: forecast vs realised (scored period)")
        ax.set_ylabel("log variance")
        ax.legend(loc="upper right", fontsize=8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_vol_report(res: dict, out_dir: Path, name: str, title: str) -> Path:
    """`out_dir/name.json` (+ .md, .png); returns the JSON path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / name
    plot_vol_forecasts(res, base.with_suffix(".png"))
    atomic_write_text(base.with_suffix(".md"), markdown(res, title))
    atomic_write_json(base.with_suffix(".json"), res)
    return base.with_suffix(".json")
