"""Score a pretrain checkpoint ONCE on a held-out later period (docs/stage1-experiments.md).

    ZTB_DATA=<store> .venv/bin/python benchmarks/stage1_holdout.py RUN/checkpoints/last.ckpt \\
        --start 2016-07-04 --train-share 0.47 --out holdout.json

The run's config is reused with `data.start=--start`, `data.end=None` and splits
train/val/test = share/0/rest, so the test windows cover the period after the run's data ends
(the first window's oldest bar is printed). Auxiliary channels keep the checkpoint's own train-only
statistics; nothing is refitted on the held-out period. Prints the comparison with the strongest
baseline per timeframe (paired bootstrap intervals) and writes the whole report as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--start", required=True, help="first M1 bar loaded (history before the held-out period)")
    ap.add_argument("--train-share", type=float, required=True, help="share of the loaded bars before the test")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import pandas as pd

    from ztb_core.config import config_to_dict
    from ztb_core.pretrain import prepare as prep_mod
    from ztb_core.pretrain.config import PretrainConfig
    from ztb_core.pretrain.evaluate import _json_safe, build_report, comparison_table
    from ztb_core.pretrain.module import PretrainModule
    from ztb_core.pretrain.normalization import AuxStats

    module = PretrainModule.load_from_checkpoint(str(args.checkpoint), map_location="cpu")
    data = config_to_dict(module.cfg)
    data["data"].update(start=args.start, end=None)
    data["splits"] = {"train": args.train_share, "val": 0.0, "test": 1.0 - args.train_share, "embargo": 0}
    cfg = PretrainConfig.model_validate(data)
    stored = AuxStats.from_dict(module.hparams["aux_stats"])
    prep_mod._cached_stats = lambda *a, **k: stored  # the checkpoint's statistics, never refitted
    prepared = prep_mod.prepare(cfg, use_cache=False)
    pos = prepared.split_positions("test")
    arrays = prepared.arrays
    oldest = min(int(arrays.bars[tf].open_ns[arrays.index.rows(tf, pos[:1])].min()) for tf in arrays.timeframes)
    print(f"test anchors: {len(pos):,}; oldest bar of the first test window: {pd.Timestamp(oldest, tz='UTC')}")
    report = build_report(module, prepared, cfg, "test")
    print(comparison_table(report["comparison"], report["timeframes"]))
    for tf, verdict in report["verdict"].items():
        print(f"- {tf}: {verdict}")
    args.out.write_text(json.dumps(_json_safe(report), indent=2, default=float))


if __name__ == "__main__":
    main()
