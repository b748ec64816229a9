"""`eval.max_bars`: periodic evaluation reads the whole validation split by default (null), so
the best checkpoint is chosen on the bars whose standard error the reports quote."""

from __future__ import annotations

from ztb_core.config import load_config
from ztb_core.rl.config import TrainConfig
from ztb_core.rl.evaluate import PeriodicEvaluator
from ztb_core.rl.market import prepare_splits

from .conftest import tiny_cfg


def test_periodic_evaluation_reads_the_whole_split_unless_max_bars_caps_it(tmp_path):
    assert load_config(TrainConfig).eval.max_bars is None  # the default (configs/train.yaml)
    cfg = tiny_cfg("eval.max_bars=null")
    assert cfg.eval.max_bars is None
    splits = prepare_splits(cfg)
    val = splits["val"]
    reports = tmp_path / "run" / "reports"
    whole = PeriodicEvaluator(cfg, val, reports, train=splits["train"], val=val)
    assert len(whole.market) == len(val) and len(whole.features) == len(val)
    # positive control: a cap takes the first bars only
    capped = PeriodicEvaluator(tiny_cfg("eval.max_bars=500"), val, reports, train=splits["train"], val=val)
    assert len(capped.market) == 500 and capped.market.index[0] == val.index[0]
    assert tiny_cfg().eval.max_bars == 1000  # the tiny config's own cap (conftest), read as given
