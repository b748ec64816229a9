"""Does Stage 1 help the agent? PPO with technical-66 only, + frozen Stage-1 embeddings, + a
randomly initialised encoder of the same shape (control; its own weights for every seed), same
seeds, every arm scored on the same test bars after costs beside buy-and-hold, SMA 20/100 and
ridge, and each arm's mean difference from technical-66 over the seeds with a t interval
(`ztb_core.rl.stage1_ablation`).

    .venv/bin/python benchmarks/bench_stage1_ablation.py --encoder RUN/encoder/encoder.pt \\
        --steps 100000 --seeds 0 1 2 3 4 --set data.kind=store --set data.symbol=USDJPY

The encoder must have been pretrained on data that ends before the PPO validation period (the
run refuses otherwise). Runs go to a temporary artifacts folder unless ZTB_ARTIFACTS is set.
Prints a Markdown table and writes the raw numbers as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True, help="exported Stage-1 encoder (file, folder or pretrain run)")
    ap.add_argument("--steps", type=int, default=100_000, help="PPO timesteps per arm and seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="sets", action="append", default=[], help="train config override (repeatable)")
    ap.add_argument("--label", default="stage1-ablation")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the raw numbers")
    args = ap.parse_args()
    os.environ.setdefault("ZTB_ARTIFACTS", tempfile.mkdtemp(prefix="ztb-stage1-ablation-"))

    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.stage1_ablation import ablation_markdown, run_ablation

    base = load_config(TrainConfig, None, [*args.sets, f"total_timesteps={args.steps}"])
    work = Path(os.environ["ZTB_ARTIFACTS"]) / "ablation"
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    res = run_ablation(base, args.encoder, args.seeds, work, label=args.label)
    wall = time.perf_counter() - t0
    print(ablation_markdown(res))
    print(
        f"\n{args.steps:,} PPO steps per arm, seeds {args.seeds}, wall {wall:.0f} s, "
        f"load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        raw = {**res, "arms": [asdict(a) for a in res["arms"]], "sets": args.sets, "steps": args.steps, "wall_s": wall}
        args.out.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
