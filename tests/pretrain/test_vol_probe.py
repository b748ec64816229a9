"""`ztb pretrain-eval --probe vol` end to end on a short pretrain run: every forecaster on the same
rows for both horizons, paired intervals against the reference, Markdown + JSON + PNG in the run's
reports/; and the probe's split rows never let a target cross into the next split."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import yaml

from ztb_core.config import config_to_dict
from ztb_core.data.splits import SplitConfig
from ztb_core.paths import runs_dir
from ztb_core.pretrain.vol_probe import split_rows

from ..conftest import ztb_cmd
from .conftest import tiny_config


def test_vol_probe_end_to_end_on_a_short_run(tmp_path, subprocess_env):
    cfg = tiny_config(tmp_path, **{"trainer.max_steps": 4, "trainer.epoch_steps": 2})
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    run = subprocess.run(
        ztb_cmd("pretrain", "--headless", "-c", str(path), "--run-id", "short"),
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    res = subprocess.run(
        ztb_cmd("pretrain-eval", "--checkpoint", str(runs_dir() / "short"), "--probe", "vol", "--random-seeds", "3"),
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    reports = runs_dir() / "short" / "reports"
    for ext in ("json", "md", "png"):
        assert (reports / f"vol-probe.{ext}").stat().st_size > 0
    rep = json.loads((reports / "vol-probe.json").read_text())
    assert set(rep["horizons"]) == {"60", "240"}
    want = {"constant", "ewma", "har", "har+season", "encoder", "random-0", "random-1", "random-2"}
    want |= {"encoder+har+season", "random-0+har+season"}
    for hz in rep["horizons"].values():
        table = hz["forecasters"]
        assert want <= set(table)
        ref = table[hz["reference"]]
        assert ref["qlike_diff"] == 0.0
        for row in table.values():
            lo, hi = row["qlike_diff_ci"]
            assert lo <= row["qlike_diff"] + 1e-9 and row["qlike_diff"] - 1e-9 <= hi
            assert np.isfinite(row["qlike"]) and row["qlike_se"] >= 0
    assert "Horizon 60 minutes" in res.stdout and "har+season" in res.stdout


def test_split_rows_keep_targets_inside_their_split():
    idx = pd.date_range("2021-01-01", periods=40_000, freq="1min", tz="UTC")
    m1 = pd.DataFrame({"close": np.ones(len(idx))}, index=idx)
    sp = SplitConfig(train=0.6, val=0.2, test=0.2, embargo=100)
    rows, train_all = split_rows(m1, len(m1), sp, stride=7, horizon=240)
    assert rows["train"].max() + 240 < 24_000 and train_all[-1] == 23_999
    assert rows["val"].min() >= 24_100 and rows["val"].max() + 240 < 32_000
    assert rows["test"].min() >= 32_100 and rows["test"].max() + 240 < 40_000
    held, _ = split_rows(m1, 30_000, sp, stride=7, horizon=240, holdout_from=idx[35_000])
    assert held["test"].min() >= 35_000 and held["val"].max() + 240 < 24_000


def test_bad_probe_options_are_refused_clearly(tmp_path, subprocess_env):
    for args, expect in (
        (["--probe", "bogus"], "--probe 'bogus': expected recon or vol"),
        (["--probe", "vol", "--holdout-from", "2016-08-01"], "--holdout-from and --data-end go together"),
    ):
        res = subprocess.run(
            ztb_cmd("pretrain-eval", "--checkpoint", str(tmp_path), *args),
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode != 0
        assert expect in res.stdout + res.stderr
