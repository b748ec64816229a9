"""`ztb config schema`: JSON Schema of every typed config, for editors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ztb_core.cli import app
from ztb_core.config_models import CONFIG_MODELS, config_model
from ztb_core.paths import configs_dir


def test_every_bundled_yaml_is_registered():
    assert sorted(p.stem for p in configs_dir().glob("*.yaml")) == sorted(CONFIG_MODELS)
    for name in CONFIG_MODELS:
        assert config_model(name).default_file == f"{name}.yaml"


def test_schema_of_one_config_describes_its_keys_and_defaults():
    result = CliRunner().invoke(app, ["config", "schema", "train"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["title"] == "TrainConfig"
    assert "ppo" in schema["properties"] and schema["additionalProperties"] is False


def test_schema_for_all_written_to_a_folder(tmp_path):
    result = CliRunner().invoke(app, ["config", "schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{n}.schema.json" for n in CONFIG_MODELS)
    for path in tmp_path.iterdir():
        assert json.loads(path.read_text())["type"] == "object"


def test_unknown_config_name_is_a_clear_error():
    from ztb_core.cli import main

    assert main(["config", "schema", "trian"]) == 2
