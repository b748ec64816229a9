from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ztb_core import paths


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes under tmp_path, never into the repository."""
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ZTB_DATA", str(tmp_path / "store"))
    return tmp_path


def _shared(sub: str) -> Path:
    root = paths.shared_data_dir() / sub
    if not root.is_dir():
        pytest.skip(f"real data {root} is absent (set ZTB_SHARED_DATA to the folder holding {sub}/)")
    return root


def _write_text(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def write_text():
    """write_text(path, text): plain or gzip (by suffix)."""
    return _write_text


@pytest.fixture
def shared_data():
    """shared_data(sub) -> folder under the real-data directory, or skip with the reason."""
    return _shared
