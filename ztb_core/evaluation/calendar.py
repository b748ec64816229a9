"""Annualisation from the bar frequency and the market's trading calendar.

FX trades 24 hours a day, 5 days a week (about 260 trading days a year); crypto trades 24/7
(365 days). Annualised figures are per-bar statistics scaled by the number of bars a year.
"""

from __future__ import annotations

from ..timeframes import TIMEFRAME_MINUTES
from .errors import EvaluationError

#: trading days a year per market calendar
TRADING_DAYS: dict[str, float] = {"fx": 260.0, "crypto": 365.0}


def _check(timeframe: str, market: str) -> None:
    if timeframe not in TIMEFRAME_MINUTES:
        raise EvaluationError(
            f"timeframe {timeframe!r} is not supported; expected one of {', '.join(TIMEFRAME_MINUTES)}"
        )
    if market not in TRADING_DAYS:
        raise EvaluationError(f"market {market!r} is not supported; expected one of {', '.join(TRADING_DAYS)}")


def bars_per_day(timeframe: str, market: str) -> float:
    """Bars in one trading day (both calendars trade around the clock on their trading days)."""
    _check(timeframe, market)
    return 1440.0 / TIMEFRAME_MINUTES[timeframe]


def periods_per_year(timeframe: str, market: str) -> float:
    """Bars a year: trading days (FX 260, crypto 365) times bars a day."""
    per_day = bars_per_day(timeframe, market)  # validates both names first
    return TRADING_DAYS[market] * per_day


def bars_for_days(days: float, timeframe: str, market: str) -> int:
    """Number of bars in `days` trading days, at least 1."""
    return max(1, int(round(days * bars_per_day(timeframe, market))))
