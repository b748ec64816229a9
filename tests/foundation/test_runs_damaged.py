"""Item 8: a damaged run.json is a clear error naming the file, not a raw JSONDecodeError, for
`RunWriter.open` and for `ztb train --resume RUN`; readers that only list runs keep working."""

from __future__ import annotations

import json

import pytest

from ztb_core.cli import main
from ztb_core.errors import RunError
from ztb_core.runs import RunReader, RunWriter, list_runs


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "\x00\x00\x00", "not valid JSON"),
        (lambda text: json.dumps([1, 2]), "not a JSON object"),
        (lambda text: json.dumps({"run_id": "x"}), "missing kind"),
    ],
)
def test_open_names_the_damaged_file(artifacts, damage, problem):
    writer = RunWriter.create("train", {"a": 1})
    writer.close("stopped")
    path = writer.dir / "run.json"
    path.write_text(damage(path.read_text()))
    with pytest.raises(RunError) as info:
        RunWriter.open(writer.dir)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert "config.yaml" in str(info.value)
    assert [r.run_id for r in list_runs()] == [writer.run_id]  # listing still works
    assert isinstance(RunReader(writer.dir).info(), dict)


def test_train_resume_of_a_damaged_run_is_a_clear_cli_error(artifacts, capsys):
    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig

    writer = RunWriter.create("train", load_config(TrainConfig))
    writer.close("stopped")
    (writer.dir / "run.json").write_text('{"kind": "train", "run_id": ')
    code = main(["train", "--headless", "--resume", writer.run_id])
    err = capsys.readouterr().err
    assert code != 0
    assert "run.json: damaged run file" in err.replace("\n", "") and "JSONDecodeError" not in err


def test_invalid_utf8_run_json(artifacts):
    writer = RunWriter.create("train", {})
    writer.close("stopped")
    (writer.dir / "run.json").write_bytes(b'{"kind": "\xff\xfe"}')
    with pytest.raises(RunError, match="run.json: damaged run file"):
        RunWriter.open(writer.dir)
    assert RunReader(writer.dir).info() == {"run_id": writer.run_id}
