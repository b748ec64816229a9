"""Short, fixed-width formatting for numbers, ages, sizes and durations."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ztb_core.humanize import age

__all__ = ["age"]  # the console's ages are the CLI's (ztb_core.humanize)

STATE_STYLE = {
    "running": "green",
    "starting": "cyan",
    "stopping": "yellow",
    "stopped": "yellow",
    "completed": "cyan",
    "failed": "bold red",
    "fatal": "bold red",
    "dead": "bold red",
    "stale": "magenta",
    "unknown": "dim",
}


def num(value: float | None, width: int = 9) -> str:
    """A number in at most `width` characters, switching to scientific notation when needed."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    v = float(value)
    if v == 0:
        return "0"
    a = abs(v)
    if 1e6 <= a < 1e9:  # prices and equity in JPY: the whole number, as the fills show it
        return f"{v:,.0f}"
    if a >= 1e9 or a < 1e-3:
        return f"{v:.2e}"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def amount(value: object) -> str:
    """An order or fill amount as the exchange states it (a decimal string or a number), trimmed of
    trailing zeros: "0.0010" and "0.001000" both read 0.001."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else "-"
    if not math.isfinite(v):
        return "-"
    return f"{v:.8f}".rstrip("0").rstrip(".") or "0"


def price(value: object) -> str:
    """A price, fee or cash amount from the journal (a decimal string) the way `num` draws the
    metrics beside it."""
    try:
        return num(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else "-"


def steps(value: int | None) -> str:
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    if value >= 10_000:
        return f"{value / 1e3:.1f}k"
    return f"{value:,}"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def size(nbytes: float | None) -> str:
    if nbytes is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GiB"


def bar(fraction: float | None, width: int = 12) -> str:
    """A text progress bar for table cells (a ProgressBar widget cannot live in a DataTable)."""
    if fraction is None:
        return " " * width
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "█" * filled + "░" * (width - filled)


def clock_time(value: float | str | None) -> str:
    """Local-independent UTC time of day (or date + time for older stamps) for tables."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, (int, float)):
            dt = datetime.fromtimestamp(float(value), tz=UTC)
        else:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OSError):
        return str(value)[:19]
    return dt.strftime("%Y-%m-%d %H:%M:%S")
