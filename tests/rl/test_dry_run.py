"""`ztb train --dry-run`: the checks a real start does, the resolved config and the run it would
create, and nothing written."""

from __future__ import annotations

from pathlib import Path

from ztb_core.cli import main

from .conftest import TINY


def _sets(*extra: str) -> list[str]:
    return [a for s in (*TINY, *extra) for a in ("--set", s)]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


def test_dry_run_prints_config_and_target_and_writes_nothing(art, capsys):
    assert main(["train", "--dry-run", "--run-id", "probe", *_sets()]) == 0
    out = capsys.readouterr().out
    assert "nothing was written" in out and "ppo:" in out and "n_steps: 64" in out
    assert str(art / "runs" / "probe") in out
    assert "train " in out and "val " in out and "test " in out
    assert _files(art) == []


def test_dry_run_fails_on_bad_config_key(art, capsys):
    assert main(["train", "--dry-run", *_sets("ppo.n_stepz=3")]) == 2
    assert "did you mean 'ppo.n_steps'" in capsys.readouterr().err
    assert _files(art) == []


def test_dry_run_fails_on_unusable_data(art, capsys):
    assert main(["train", "--dry-run", *_sets("data.kind=store", "data.symbol=NOPE")]) != 0
    assert _files(art) == []
