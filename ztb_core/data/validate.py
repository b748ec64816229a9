"""Validation of M1 bars, with a report and explicit policies (never a silent fix).

Structural errors always fail, naming file, row, column and value: NaN/inf, non-positive prices,
negative volume, high < max(open, close), low > min(open, close), timestamps going backwards.
Policies (`ValidationConfig`):

* duplicates (same timestamp twice): `error` fails; `report` collapses rows that are identical
  (nothing is lost) and fails on conflicting ones; `drop` keeps the first row of every timestamp.
  Every collapsed or dropped row is counted in the report.
* unexpected gaps: `error` fails; `report` lists them. A gap is expected when the market was
  closed (FX: Friday 17:00 to Sunday 17:00 New York, plus listed holidays) or it is a quiet pause
  of at most `max_quiet_minutes` open-market minutes (no quote in those minutes); crypto is open
  24/7, so only quiet pauses are expected. Gaps cannot be dropped: there is nothing to drop.
* implausible jumps (|ln(close_t / close_(t-1))| > `max_jump`): `error` fails; `report` lists them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..config import ZtbModel
from ..errors import DataError
from .schema import NS_PER_MINUTE, check_market, index_ns
from .synthetic import NY_TZ

NS_PER_DAY = 86_400 * 1_000_000_000


class ValidationConfig(ZtbModel):
    """What counts as bad data and what to do about it."""

    duplicates: Literal["error", "drop", "report"] = Field(
        "report",
        description="duplicate timestamps: error = fail; report = collapse identical rows, fail on conflicting ones; "
        "drop = keep the first row of each timestamp",
    )
    gaps: Literal["error", "report"] = Field("report", description="unexpected gaps: error = fail; report = list them")
    jumps: Literal["error", "report"] = Field(
        "error", description="implausible one-bar jumps: error = fail; report = list them"
    )
    max_jump: float = Field(0.2, gt=0, description="implausible jump threshold, |ln(close/previous close)|")
    fx_max_quiet_minutes: int = Field(
        30, ge=0, description="FX: longest pause (open-market minutes without a bar) that is normal"
    )
    crypto_max_quiet_minutes: int = Field(
        10, ge=0, description="crypto: longest pause (minutes without a trade) that is normal"
    )
    fx_holidays: list[str] = Field(
        ["12-25", "01-01"],
        description="FX: MM-DD dates (New York) the market is closed; "
        "the session from 17:00 the evening before is closed too",
    )
    fx_close_tolerance_minutes: int = Field(
        120,
        ge=0,
        description="FX: open-market minutes a market-closed gap may also cover (brokers and DST move the weekly "
        "open/close by an hour)",
    )
    daily_maintenance_utc: list[str] = Field(
        [], description="daily windows 'HH:MM-HH:MM' (UTC) when the venue is closed, e.g. bitFlyer ['19:00-19:15']"
    )
    max_listed: int = Field(20, ge=1, description="how many gaps/jumps the report lists in full")


@dataclass
class Gap:
    start: str  # close time of the last bar before the gap (UTC)
    end: str  # open time of the first bar after it (UTC)
    minutes: int  # missing minutes
    open_minutes: int  # of which the market was open


@dataclass
class ValidationReport:
    source: str
    market: str
    rows_in: int = 0
    rows_out: int = 0
    first: str | None = None
    last: str | None = None
    duplicates_identical: int = 0
    duplicates_conflicting: int = 0
    duplicates_removed: int = 0
    gaps_total: int = 0
    gaps_quiet: int = 0
    gaps_market_closed: int = 0
    gaps_unexpected: int = 0
    missing_open_minutes: int = 0
    unexpected_gaps: list[Gap] = field(default_factory=list)
    jumps: list[dict] = field(default_factory=list)
    jumps_total: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"{self.source}: {self.rows_out} bars ({self.market}) {self.first} .. {self.last}"]
        if self.duplicates_identical or self.duplicates_conflicting:
            out.append(
                f"  duplicates: {self.duplicates_identical} identical, {self.duplicates_conflicting} conflicting, "
                f"{self.duplicates_removed} row(s) removed"
            )
        out.append(
            f"  gaps: {self.gaps_total} total = {self.gaps_quiet} quiet + {self.gaps_market_closed} market closed + "
            f"{self.gaps_unexpected} unexpected"
        )
        for g in self.unexpected_gaps:
            out.append(
                f"    unexpected gap {g.start} -> {g.end}: {g.minutes} min missing ({g.open_minutes} while open)"
            )
        if self.jumps_total:
            out.append(f"  jumps over threshold: {self.jumps_total}")
            for j in self.jumps:
                out.append(f"    {j['where']}: ln(close/prev) = {j['value']:+.4f}")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _where(source: str, rows: np.ndarray | None, index: pd.DatetimeIndex, i: int) -> str:
    if rows is not None:
        return f"{source}, row {int(rows[i])}"
    return f"{source}, bar {index[i].isoformat()}"


def check_structure(bars: pd.DataFrame, source: str, rows: np.ndarray | None = None) -> None:
    """Raise DataError for the first structural problem (naming file, row, column, value)."""
    idx = bars.index
    cols = [c for c in ("open", "high", "low", "close", "volume", "trades") if c in bars.columns]
    arrays = {c: bars[c].to_numpy(np.float64) for c in cols}
    for c in cols:
        bad = ~np.isfinite(arrays[c])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{_where(source, rows, idx, i)}, column {c}: value {arrays[c][i]} is not a finite number "
                f"({int(bad.sum())} such row(s))"
            )
    for c in ("open", "high", "low", "close"):
        bad = arrays[c] <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{_where(source, rows, idx, i)}, column {c}: price {arrays[c][i]} is not positive "
                f"({int(bad.sum())} such row(s))"
            )
    for c in ("volume", "trades"):
        if c in arrays and (arrays[c] < 0).any():
            i = int(np.flatnonzero(arrays[c] < 0)[0])
            raise DataError(f"{_where(source, rows, idx, i)}, column {c}: value {arrays[c][i]} is negative")
    o, h, lo, c_ = arrays["open"], arrays["high"], arrays["low"], arrays["close"]
    bad = h < np.maximum(o, c_)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{_where(source, rows, idx, i)}, column high: value {h[i]} is below max(open, close) = "
            f"{max(o[i], c_[i])} ({int(bad.sum())} such row(s))"
        )
    bad = lo > np.minimum(o, c_)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{_where(source, rows, idx, i)}, column low: value {lo[i]} is above min(open, close) = "
            f"{min(o[i], c_[i])} ({int(bad.sum())} such row(s))"
        )


def _dedupe(
    bars: pd.DataFrame, rows: np.ndarray | None, source: str, cfg: ValidationConfig, report: ValidationReport
) -> tuple[pd.DataFrame, np.ndarray | None]:
    t = index_ns(bars.index)
    d = np.diff(t)
    back = np.flatnonzero(d < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(
            f"{_where(source, rows, bars.index, i)}, column time: {bars.index[i].isoformat()} is earlier than "
            f"the previous row's {bars.index[i - 1].isoformat()} (timestamps must increase; "
            f"{len(back)} such row(s))"
        )
    dup = np.flatnonzero(d == 0) + 1  # rows repeating the previous timestamp
    if len(dup) == 0:
        return bars, rows
    vals = bars.to_numpy(np.float64)
    same = (vals[dup] == vals[dup - 1]).all(axis=1)
    report.duplicates_identical = int(same.sum())
    report.duplicates_conflicting = int((~same).sum())
    if cfg.duplicates == "error":
        i = int(dup[0])
        raise DataError(
            f"{_where(source, rows, bars.index, i)}, column time: duplicate timestamp {bars.index[i].isoformat()} "
            f"({len(dup)} duplicate row(s); duplicates policy is 'error')"
        )
    if cfg.duplicates == "report" and (~same).any():
        i = int(dup[~same][0])
        raise DataError(
            f"{_where(source, rows, bars.index, i)}: duplicate timestamp {bars.index[i].isoformat()} with "
            f"different values ({int((~same).sum())} such row(s); set duplicates: drop to keep the first)"
        )
    keep = np.ones(len(bars), bool)
    keep[dup] = False
    report.duplicates_removed = int(len(dup))
    report.notes.append(f"removed {len(dup)} duplicate row(s) ({report.duplicates_identical} identical)")
    return bars[keep], (rows[keep] if rows is not None else None)


def _window_minutes(text: str) -> tuple[int, int]:
    try:
        a, b = text.split("-")
        (ah, am), (bh, bm) = (int(x) for x in a.split(":")), (int(x) for x in b.split(":"))
    except ValueError:
        raise DataError(f"daily_maintenance_utc: {text!r} is not 'HH:MM-HH:MM'") from None
    return ah * 60 + am, bh * 60 + bm


def closed_mask(t_ns: np.ndarray, market: str, cfg: ValidationConfig) -> np.ndarray:
    """True for minutes when the market is closed: FX weekend and holiday sessions (New York
    time, 17:00 to 17:00), and any daily maintenance window (UTC)."""
    closed = np.zeros(len(t_ns), bool)
    if market == "fx":
        local = pd.DatetimeIndex(t_ns).tz_localize("UTC").tz_convert(NY_TZ).tz_localize(None).asi8
        # a session runs 17:00 -> 17:00: shift by 7 h so each session maps to one calendar day
        days = (local + 7 * 3600 * 1_000_000_000) // NS_PER_DAY
        dow = (days + 3) % 7  # Monday = 0; the Sunday-evening session maps to Monday
        closed |= dow >= 5  # the Saturday and Sunday "sessions" = Friday 17:00 .. Sunday 17:00
        if cfg.fx_holidays:
            di = pd.DatetimeIndex(days * NS_PER_DAY)
            key = di.month.to_numpy() * 100 + di.day.to_numpy()
            try:
                hol = [int(h[:2]) * 100 + int(h[3:5]) for h in cfg.fx_holidays]
            except ValueError:
                raise DataError(f"fx_holidays: expected MM-DD dates, got {cfg.fx_holidays}") from None
            closed |= np.isin(key, hol)
    if cfg.daily_maintenance_utc:
        mod = (t_ns % NS_PER_DAY) // NS_PER_MINUTE
        for text in cfg.daily_maintenance_utc:
            a, b = _window_minutes(text)
            closed |= ((mod >= a) & (mod < b)) if a <= b else ((mod >= a) | (mod < b))
    return closed


def classify_gaps(index: pd.DatetimeIndex, market: str, cfg: ValidationConfig, report: ValidationReport) -> list[Gap]:
    """Fill the gap counts of `report`; return the unexpected gaps."""
    t = index_ns(index)
    if len(t) < 2:
        return []
    d = np.diff(t)
    at = np.flatnonzero(d > NS_PER_MINUTE)
    report.gaps_total = int(len(at))
    if not len(at):
        return []
    missing = (d[at] // NS_PER_MINUTE - 1).astype(np.int64)
    quiet_limit = cfg.fx_max_quiet_minutes if market == "fx" else cfg.crypto_max_quiet_minutes
    open_min = missing.copy()
    long = np.flatnonzero(missing > quiet_limit)
    if len(long) and (market == "fx" or cfg.daily_maintenance_utc):
        # enumerate the missing minutes of long gaps only (weekends dominate: ~3k minutes each)
        counts = missing[long]
        starts = t[at[long]] + NS_PER_MINUTE
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        minutes = np.repeat(starts, counts) + offsets * NS_PER_MINUTE
        is_open = ~closed_mask(minutes, market, cfg)
        open_min[long] = np.add.reduceat(is_open.astype(np.int64), np.r_[0, np.cumsum(counts)[:-1]])
    report.missing_open_minutes = int(open_min.sum())
    spans_closure = open_min < missing
    tolerance = quiet_limit + (cfg.fx_close_tolerance_minutes if market == "fx" else 0)
    quiet = missing <= quiet_limit
    closed = ~quiet & spans_closure & (open_min <= tolerance)
    unexpected = ~quiet & ~closed
    report.gaps_quiet = int(quiet.sum())
    report.gaps_market_closed = int(closed.sum())
    report.gaps_unexpected = int(unexpected.sum())
    gaps = [
        Gap(
            pd.Timestamp(t[i] + NS_PER_MINUTE, tz="UTC").isoformat(),
            pd.Timestamp(t[i + 1], tz="UTC").isoformat(),
            int(m),
            int(om),
        )
        for i, m, om in zip(at[unexpected], missing[unexpected], open_min[unexpected], strict=False)
    ]
    return gaps


def validate_bars(
    bars: pd.DataFrame,
    market: str,
    cfg: ValidationConfig | None = None,
    source: str = "bars",
    rows: np.ndarray | None = None,
    check_gaps: bool = True,
    report: ValidationReport | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check `bars` (as read, unsorted is an error) and apply the policies. Returns the bars to
    keep and the report; raises DataError for anything the policies say must fail."""
    cfg = cfg or ValidationConfig()
    check_market(market)
    report = report or ValidationReport(source=source, market=market)
    report.rows_in = len(bars)
    check_structure(bars, source, rows)
    bars, rows = _dedupe(bars, rows, source, cfg, report)
    close = bars["close"].to_numpy(np.float64)
    if len(close) > 1:
        jump = np.abs(np.diff(np.log(close)))
        big = np.flatnonzero(jump > cfg.max_jump) + 1
        report.jumps_total = int(len(big))
        report.jumps = [
            {"where": _where(source, rows, bars.index, int(i)), "value": float(np.log(close[i] / close[i - 1]))}
            for i in big[: cfg.max_listed]
        ]
        if len(big) and cfg.jumps == "error":
            i = int(big[0])
            raise DataError(
                f"{_where(source, rows, bars.index, i)}, column close: value {close[i]} jumps "
                f"{np.log(close[i] / close[i - 1]):+.3f} in log terms from the previous close {close[i - 1]} "
                f"(max_jump {cfg.max_jump}; {len(big)} such bar(s); set jumps: report to accept)"
            )
    if check_gaps:
        gap_check(bars, market, cfg, report)
    report.rows_out = len(bars)
    if len(bars):
        report.first, report.last = bars.index[0].isoformat(), bars.index[-1].isoformat()
    return bars, report


def gap_check(bars: pd.DataFrame, market: str, cfg: ValidationConfig, report: ValidationReport) -> None:
    gaps = classify_gaps(bars.index, market, cfg, report)
    report.unexpected_gaps = gaps[: cfg.max_listed]
    if gaps and cfg.gaps == "error":
        g = gaps[0]
        raise DataError(
            f"{report.source}: unexpected gap {g.start} -> {g.end} ({g.minutes} minutes missing, "
            f"{g.open_minutes} while the market was open; {len(gaps)} such gap(s); gaps policy is 'error')"
        )
