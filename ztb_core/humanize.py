"""Coarse human-readable times and sizes, shared by the CLI tables, the disk-health lines, the run
(one formatter, so a heartbeat age reads the same everywhere)."""

from __future__ import annotations

import math


def age(seconds: float | None, words: bool = False) -> str:
    """An elapsed or remaining time at the precision a person reads it: 45s, 12m, 3.5h, 4d for a
    narrow column; "45s", "12 min", "3.5 h", "4.2 days" in a sentence (`words=True`)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min" if words else f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h" if words else f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f} days" if words else f"{seconds / 86400:.0f}d"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns
