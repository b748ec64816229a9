"""The one table of bar timeframes: the store's names ("M1" ... "D"), their length in minutes, and
ccxt's names ("1m" ... "1d"). Data, evaluation and live all read it from here."""

from __future__ import annotations

from typing import Literal

from .errors import DataError

TIMEFRAMES: tuple[str, ...] = ("M1", "M5", "M15", "M30", "H1", "H4", "D")
Timeframe = Literal["M1", "M5", "M15", "M30", "H1", "H4", "D"]

#: nominal bar length in minutes (the FX daily bar is a 17:00-New-York session, 23-25 h around DST)
TIMEFRAME_MINUTES: dict[str, int] = {"M1": 1, "M5": 5, "M15": 15, "M30": 30, "H1": 60, "H4": 240, "D": 1440}

#: ccxt timeframe -> the store's timeframe name
CCXT_TIMEFRAMES: dict[str, str] = {
    "1m": "M1",
    "5m": "M5",
    "15m": "M15",
    "30m": "M30",
    "1h": "H1",
    "4h": "H4",
    "1d": "D",
}


def check_timeframe(timeframe: str) -> str:
    if timeframe not in TIMEFRAMES:
        raise DataError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}")
    return timeframe


def ccxt_timeframe(timeframe: str) -> str:
    """Accept ccxt ("1m") or store ("M1") names; return the ccxt one."""
    if timeframe in CCXT_TIMEFRAMES:
        return timeframe
    for ccxt_tf, store_tf in CCXT_TIMEFRAMES.items():
        if timeframe == store_tf:
            return ccxt_tf
    raise DataError(
        f"unknown timeframe {timeframe!r}; expected one of {', '.join(CCXT_TIMEFRAMES)} "
        f"(or {', '.join(CCXT_TIMEFRAMES.values())})"
    )


def store_timeframe(timeframe: str) -> str:
    return CCXT_TIMEFRAMES[ccxt_timeframe(timeframe)]


def timeframe_ms(timeframe: str) -> int:
    return TIMEFRAME_MINUTES[store_timeframe(timeframe)] * 60_000
