from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

from ztb_core.config import ZtbModel, changed_keys, config_hash, load_config
from ztb_core.errors import ConfigError


class Ppo(ZtbModel):
    n_steps: int = Field(512, ge=8)
    learning_rate: float = Field(3e-4, gt=0, le=1)


class Sample(ZtbModel):
    default_file: ClassVar[str | None] = None
    seed: int = 0
    ppo: Ppo = Ppo()
    name: str = "x"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_valid_file_and_override(tmp_path):
    p = write(tmp_path, "seed: 3\nppo:\n  n_steps: 64\n")
    cfg = load_config(Sample, p, ["ppo.learning_rate=0.001", "name=demo"])
    assert (cfg.seed, cfg.ppo.n_steps, cfg.ppo.learning_rate, cfg.name) == (3, 64, 0.001, "demo")


def test_unknown_key_names_file_key_and_closest(tmp_path):
    p = write(tmp_path, "ppo:\n  n_step: 64\n")
    with pytest.raises(ConfigError) as err:
        load_config(Sample, p)
    msg = str(err.value)
    assert str(p) in msg
    assert "unknown key 'ppo.n_step'" in msg
    assert "did you mean 'ppo.n_steps'" in msg


def test_wrong_type_names_key_expected_and_value(tmp_path):
    p = write(tmp_path, "ppo:\n  n_steps: lots\n")
    with pytest.raises(ConfigError) as err:
        load_config(Sample, p)
    msg = str(err.value)
    assert f"{p}: key 'ppo.n_steps'" in msg and "integer" in msg and '"lots"' in msg


def test_out_of_range(tmp_path):
    p = write(tmp_path, "ppo:\n  learning_rate: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(Sample, p)
    assert "key 'ppo.learning_rate'" in str(err.value) and "less than or equal to 1" in str(err.value)


def test_override_errors_name_the_override(tmp_path):
    p = write(tmp_path, "seed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(Sample, p, ["ppo.n_steps=2"])
    assert "--set ppo.n_steps" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(Sample, p, ["ppo.n_steps"])
    assert "expected KEY=VALUE" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(Sample, p, ["seeed=2"])
    assert "did you mean 'seed'" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Sample, tmp_path / "nope.yaml")
    p = write(tmp_path, "ppo: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_config(Sample, p)
    p = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Sample, p)


def test_hash_and_changed_keys():
    a, b = Sample(), Sample(ppo=Ppo(n_steps=64))
    assert config_hash(a) == config_hash(Sample()) != config_hash(b)
    assert changed_keys(a.model_dump(), b.model_dump()) == ["ppo.n_steps"]
    assert changed_keys(a.model_dump(), b.model_dump(), only=["seed"]) == []
