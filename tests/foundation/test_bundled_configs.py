"""Every bundled configs/*.yaml loads into its typed model, and documents exactly the model's
defaults (so the YAML a user reads is what runs when they pass no --config)."""

from __future__ import annotations

import importlib

import pytest

from tests.foundation.config_drift import undocumented
from ztb_core.config import config_to_dict, load_config, read_yaml, resolve_config
from ztb_core.config_models import CONFIG_MODELS
from ztb_core.paths import configs_dir

#: "name.yaml" -> "module:Model", from the one registry the CLI uses too
MODELS = {f"{name}.yaml": spec for name, spec in CONFIG_MODELS.items()}


def _model(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def test_every_bundled_config_has_a_model():
    assert sorted(p.name for p in configs_dir().glob("*.yaml")) == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bundled_config_equals_model_defaults(name):
    model = _model(MODELS[name])
    assert model.default_file == name
    text = (configs_dir() / name).read_text()
    # the YAML must show every key: a key it leaves out would pass the comparison below on the
    # model's default alone (defaults compared with defaults)
    missing, _ = undocumented(model, text)
    assert not missing, f"configs/{name} lacks these keys of {model.__name__}: {missing}"
    loaded = load_config(model, configs_dir() / name)
    assert config_to_dict(loaded) == config_to_dict(model()), f"{name} and {model.__name__} defaults differ"
    # what a command gets with no --config: the file and the section files it reads (live: exchange.yaml)
    assert config_to_dict(resolve_config(model).config) == config_to_dict(model())
    for section, file in model.section_files.items():
        assert section not in read_yaml(configs_dir() / name), f"configs/{name} repeats {section}: (in {file})"


def test_control_a_key_missing_from_a_bundled_yaml_fails(tmp_path):
    """Positive control: the bundled ops.yaml without one key loads to the same defaults, and only
    the key check notices."""
    from ztb_core.runtime.config import OpsConfig

    text = (configs_dir() / "ops.yaml").read_text()
    cut = "\n".join(line for line in text.splitlines() if "warn_free_mb" not in line)
    (tmp_path / "ops.yaml").write_text(cut)
    assert config_to_dict(load_config(OpsConfig, tmp_path / "ops.yaml")) == config_to_dict(OpsConfig())
    assert undocumented(OpsConfig, cut)[0] == ["disk.warn_free_mb"]
