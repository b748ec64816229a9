"""Crash-safe file writes: write a temp file beside the target, fsync, rename over it.
A reader sees either the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_file(path: str | Path, fsync: bool = True) -> Iterator[BinaryIO]:
    """A binary file handle on a temp file beside `path`: on success it is flushed, fsynced and
    renamed over `path`; on any error the temp file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> None:
    with atomic_file(path, fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, fsync: bool = True, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, default=str, allow_nan=False) + "\n", fsync=fsync)


def read_json(path: str | Path) -> Any:
    with open(path, "rb") as fh:
        return json.loads(fh.read())
