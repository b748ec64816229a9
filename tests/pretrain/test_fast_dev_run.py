"""`ztb pretrain --fast-dev-run` says what it leaves behind, and exports an encoder that loads."""

from __future__ import annotations

import subprocess

import yaml

from ztb_core.config import config_to_dict
from ztb_core.paths import runs_dir
from ztb_core.pretrain.export import load_encoder

from ..conftest import ztb_cmd
from .conftest import tiny_config


def test_fast_dev_run_exports_and_says_so(tmp_path, subprocess_env):
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(tiny_config(tmp_path))))
    res = subprocess.run(
        ztb_cmd("pretrain", "--headless", "--fast-dev-run", "-c", str(path), "--run-id", "fdr"),
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "encoder exported" in res.stdout and "no checkpoint" in res.stdout, res.stdout
    bundle = load_encoder(runs_dir() / "fdr")
    assert bundle.embedding_dim == 2 * 8
