"""A tiny real filesystem for full-disk tests: a tmpfs mounted where the process may mount (root
in CI containers); tests that need it skip with the reason elsewhere, and the same behaviour is
also covered through the saver's documented `write_file` hook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def tiny_fs(tmp_path) -> Path:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs here ({proc.stderr.strip() or proc.returncode}); hook tests cover it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
