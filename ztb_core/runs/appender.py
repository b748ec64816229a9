"""Append-only JSON-lines writing: whole lines only, flushed from a background thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from ..errors import RunError

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JsonlAppender:
    """Append-only JSON-lines writer.

    Lines are buffered and written with one `os.write` per flush on an O_APPEND descriptor, only
    ever whole lines. A background thread flushes at least every `flush_interval_s`, so readers
    see new records within a second even when the producer goes quiet.
    """

    def __init__(self, path: Path, flush_interval_s: float = 1.0, max_buffer_bytes: int = 1 << 16):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _repair_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._lock = threading.Lock()
        self._max = max_buffer_bytes
        self._interval = flush_interval_s
        self._closed = False
        #: an OS error of the background flush, raised on the next append/flush (the producer's thread)
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name=f"flush-{self.path.name}", daemon=True)
        self._thread.start()

    def append(self, record: dict, flush: bool = False) -> None:
        # orjson: ~5x faster than json here, maps NaN/inf to null and serialises numpy scalars
        line = orjson.dumps(record, option=_ORJSON_OPTS, default=str) + b"\n"
        with self._lock:
            if self.error is not None:
                raise self.error
            if self._closed:
                raise RunError(f"{self.path}: appender is closed")
            self._buf.append(line)
            self._buf_bytes += len(line)
            if flush or self._buf_bytes >= self._max:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.error is not None:
            raise self.error
        if not self._buf or self._closed:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._buf_bytes = 0
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.error = exc
            raise

    def _flusher(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except OSError:
                return  # kept in self.error: the producer's next call raises it

    def close(self, quiet: bool = False) -> None:
        """Flush and close; `quiet` (a run already failing) drops what cannot be written."""
        self._stop.set()
        with self._lock:
            try:
                self._flush_locked()
            except OSError:
                if not quiet:
                    raise
            finally:
                if not self._closed:
                    self._closed = True
                    os.close(self._fd)


def _repair_torn_tail(path: Path) -> None:
    """Drop an unterminated last line left by a writer killed mid-write, so appends resume
    on a clean line boundary."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        chunk = min(size, 1 << 20)
        fh.seek(size - chunk)
        tail = fh.read(chunk)
        cut = tail.rfind(b"\n")
        fh.truncate(size - chunk + cut + 1 if cut >= 0 else 0)
