"""Shared fixtures: every test gets its own artifacts/data folders and global kill-file, so
nothing is written into the repository and runs never see each other."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# CI replays the same examples on every run (a red build is reproducible); locally each run
# explores new ones. `--hypothesis-seed=N` overrides either.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def isolated_artifacts(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("ztb")
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("ZTB_DATA", str(root / "artifacts" / "data"))
    monkeypatch.setenv("ZTB_KILL", str(root / "ztb.stop"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield root / "artifacts"


@pytest.fixture
def artifacts(isolated_artifacts) -> Path:
    isolated_artifacts.mkdir(parents=True, exist_ok=True)
    return isolated_artifacts


def ztb_cmd(*args: str) -> list[str]:
    """The CLI as a user runs it, through this interpreter."""
    return [sys.executable, "-m", "ztb_core.cli", *args]


@pytest.fixture
def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
