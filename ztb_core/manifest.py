"""Checkpoint manifest: `checkpoints/manifest.json`, one entry per saved file with its step,
sha256, size, compression ratio and save time. Rewritten atomically on every change; a file is
only trusted when its sha256 matches the manifest."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, read_json
from .errors import CheckpointError

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class Manifest:
    def __init__(self, checkpoints_dir: Path):
        self.dir = Path(checkpoints_dir)
        self.path = self.dir / MANIFEST
        self._lock = threading.Lock()

    def entries(self) -> list[dict[str, Any]]:
        try:
            data = read_json(self.path)
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return sorted(data.get("checkpoints", []), key=lambda e: e.get("step", 0))

    def _write(self, entries: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"version": 1, "checkpoints": sorted(entries, key=lambda e: e.get("step", 0))})

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entries = [e for e in self.entries() if e.get("file") != entry["file"]]
            entries.append(entry)
            self._write(entries)

    def remove(self, filename: str, delete_file: bool = True) -> None:
        with self._lock:
            entries = [e for e in self.entries() if e.get("file") != filename]
            self._write(entries)
        if delete_file:
            try:
                (self.dir / filename).unlink()
            except FileNotFoundError:
                pass

    def update(self, filename: str, **fields: Any) -> None:
        with self._lock:
            entries = self.entries()
            for e in entries:
                if e.get("file") == filename:
                    e.update(fields)
            self._write(entries)

    def verify(self, entry: dict[str, Any]) -> tuple[bool, str]:
        """(ok, reason). Checks existence, size and sha256 against the manifest."""
        path = self.dir / entry["file"]
        if not path.exists():
            return False, "missing"
        if "size" in entry and path.stat().st_size != entry["size"]:
            return False, f"size {path.stat().st_size} != {entry['size']}"
        if "sha256" in entry and sha256_file(path) != entry["sha256"]:
            return False, "sha256 mismatch"
        return True, "ok"


def verified_checkpoint(path: Path) -> Path:
    """A checkpoint file, verified against its folder's manifest (sha256) before anything loads it."""
    path = Path(path)
    manifest = Manifest(path.parent)
    entry = next((e for e in manifest.entries() if e.get("file") == path.name), None)
    if entry is None:
        raise CheckpointError(f"{path}: not listed in {manifest.path}; refusing to load an unverified checkpoint")
    ok, why = manifest.verify(entry)
    if not ok:
        raise CheckpointError(f"{path}: failed verification ({why}); the file is corrupt or was replaced")
    return path
