"""Config that cannot drift: every key of every bundled config model appears in its YAML with a
comment, and is read somewhere in the code. Failures list exactly which keys. Positive controls show
each check catches what it is for (a key missing from the YAML, a key without a comment, a key no
code reads)."""

from __future__ import annotations

import pytest
from pydantic import Field

from tests.foundation.config_drift import model_keys, undocumented, unread, yaml_key_lines
from tests.foundation.test_bundled_configs import MODELS, _model
from ztb_core.config import ZtbModel
from ztb_core.paths import PACKAGE_ROOT, REPO_ROOT, configs_dir

CODE = sorted([*PACKAGE_ROOT.rglob("*.py"), *(REPO_ROOT / "ztb_tui").rglob("*.py")])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_key_in_the_yaml_has_a_comment(name):
    # keys missing altogether are test_bundled_configs' failure; here: keys shown without a comment
    _, uncommented = undocumented(_model(MODELS[name]), (configs_dir() / name).read_text())
    assert not uncommented, f"configs/{name}: these keys have no comment in their paragraph: {uncommented}"


def test_every_key_is_read_by_the_code():
    never = unread([_model(spec) for spec in MODELS.values()], CODE)
    assert not never, f"config keys that no code in ztb_core/ztb_tui reads (accepted and ignored): {never}"


# ---- positive controls --------------------------------------------------------------------------


class _Inner(ZtbModel):
    depth: int = Field(1, description="used")


class _Probe(ZtbModel):
    alpha: float = Field(1.0, description="read below")
    zz_never_read_by_anything: int = Field(0, description="declared, never read")
    inner: _Inner = Field(default_factory=_Inner, description="a section")


def test_control_a_key_no_code_reads_is_caught(tmp_path):
    code = tmp_path / "code.py"
    code.write_text(
        "class _Probe(ZtbModel):\n"
        "    alpha: float = 1.0\n"
        "    zz_never_read_by_anything: int = 0\n\n"
        "def f(cfg):\n"
        "    return cfg.alpha + cfg.inner.depth\n"
    )
    # the field declarations do not count as reads; the function's attribute accesses do
    assert unread([_Probe], [code]) == ["_Probe.zz_never_read_by_anything"]
    code.write_text(code.read_text() + "\ndef g(cfg):\n    return cfg.zz_never_read_by_anything\n")
    assert unread([_Probe], [code]) == []


def test_control_a_key_missing_from_the_yaml_is_caught():
    text = "alpha: 1.0  # a\ninner:  # section\n  depth: 1  # d\n"
    assert undocumented(_Probe, text) == (["zz_never_read_by_anything"], [])
    full = text + "zz_never_read_by_anything: 0  # z\n"
    assert undocumented(_Probe, full) == ([], [])
    assert undocumented(_Probe, full.replace("  depth: 1  # d\n", "")) == (["inner.depth"], [])


def test_control_a_key_without_a_comment_is_caught():
    text = "alpha: 1.0\n\ninner:\n  depth: 1\nzz_never_read_by_anything: 0  # z\n"
    assert undocumented(_Probe, text) == ([], ["alpha", "inner.depth"])
    grouped = "# alpha and the inner depth\nalpha: 1.0\ninner:\n  depth: 1\nzz_never_read_by_anything: 0\n"
    assert undocumented(_Probe, grouped) == ([], [])


def test_yaml_nesting_and_lists():
    text = "a:  # x\n  b:\n    - 1\n    - c: 2\n  d: 3\ne: 4\n"
    assert set(yaml_key_lines(text)) == {"a", "a.b", "a.d", "e"}
    assert model_keys(_Probe) == {
        "alpha": "alpha",
        "zz_never_read_by_anything": "zz_never_read_by_anything",
        "inner.depth": "depth",
    }
