"""Compacted history of a run's JSONL files (metrics, events): zstd segments that every reader
still reads, so a finished run's million-line metrics take a tenth of the disk.

`compact_jsonl(path)` moves the whole file, by an atomic rename, to `segments/<stem>.NNNNNN.jsonl`
and then compresses that into `.jsonl.zst` (temp file, fsync, rename) and removes the plain one.
A kill at any point leaves every line in exactly one readable place: the live file, the plain
segment, or the compressed one (a plain segment whose compressed twin exists is a leftover of a
kill between the last two steps and is ignored). Segments are older than the live file and ordered
by number; `read_segments` returns their bytes oldest first."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import zstandard

from .atomic import atomic_write_bytes

SEGMENTS_DIR = "segments"
_NAME = re.compile(r"^(?P<stem>.+)\.(?P<n>\d{6})\.jsonl(?P<zst>\.zst)?$")
ZSTD_LEVEL = 10  # text compresses ~10x here at ~100 MB/s; compaction is rare, reading is what repeats


def segment_files(path: Path) -> list[Path]:
    """Readable segments of `path` (e.g. run/metrics.jsonl), oldest first; one file per number."""
    folder = path.parent / SEGMENTS_DIR
    if not folder.is_dir():
        return []
    best: dict[int, Path] = {}
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if not m or m["stem"] != path.stem:
            continue
        n = int(m["n"])
        if n not in best or m["zst"]:  # the compressed twin wins: it was complete before the plain one goes
            best[n] = p
    return [best[n] for n in sorted(best)]


def read_segment(p: Path) -> bytes:
    data = p.read_bytes()
    return zstandard.ZstdDecompressor().decompressobj().decompress(data) if p.suffix == ".zst" else data


def read_segments(path: Path) -> bytes:
    return b"".join(read_segment(p) for p in segment_files(path))


def read_segments_tail(path: Path, want_bytes: int) -> bytes:
    """At least the last `want_bytes` of the segments' text (whole segments, newest first)."""
    parts: list[bytes] = []
    have = 0
    for p in reversed(segment_files(path)):
        if have >= want_bytes:
            break
        parts.append(read_segment(p))
        have += len(parts[-1])
    return b"".join(reversed(parts))


@dataclass
class CompactResult:
    path: Path
    segment: Path | None
    raw_bytes: int
    compressed_bytes: int
    lines: int


def compact_jsonl(path: Path, level: int = ZSTD_LEVEL) -> CompactResult:
    """Move all of `path` into a new compressed segment. The caller makes sure no writer has the
    file open (a finished run); an unterminated last line stays behind in the live file."""
    if not path.exists() or path.stat().st_size == 0:
        return CompactResult(path, None, 0, 0, 0)
    folder = path.parent / SEGMENTS_DIR
    folder.mkdir(exist_ok=True)
    existing = segment_files(path)
    n = int(_NAME.match(existing[-1].name)["n"]) + 1 if existing else 1  # type: ignore[index]
    plain = folder / f"{path.stem}.{n:06d}.jsonl"
    os.replace(path, plain)  # atomic: every line is now in the plain segment
    data = plain.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):  # a torn last line belongs to the live file, not to history
        with open(path, "ab") as fh:
            fh.write(data[cut:])
        data = data[:cut]
        atomic_write_bytes(plain, data)
    if not data:
        plain.unlink()
        return CompactResult(path, None, 0, 0, 0)
    packed = zstandard.ZstdCompressor(level=level).compress(data)
    zst = plain.with_name(plain.name + ".zst")
    atomic_write_bytes(zst, packed)
    plain.unlink()
    return CompactResult(path, zst, len(data), len(packed), data.count(b"\n"))


def uncompact_jsonl(path: Path) -> int:
    """Fold every segment back into the live file (oldest first), e.g. before a resume rewrites
    history past its checkpoint. Returns the number of segments folded."""
    segs = segment_files(path)
    if not segs:
        return 0
    live = path.read_bytes() if path.exists() else b""
    atomic_write_bytes(path, read_segments(path) + live)
    for p in (path.parent / SEGMENTS_DIR).iterdir():
        m = _NAME.match(p.name)
        if m and m["stem"] == path.stem:
            p.unlink()
    return len(segs)
