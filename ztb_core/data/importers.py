"""Readers that turn source files into M1 bars in the canonical schema.

Formats: HistData "Generic ASCII M1" (`YYYYMMDD HHMMSS;o;h;l;c;v`, fixed EST = UTC-5, no DST),
generic CSV with a column map, parquet, and bitFlyer execution CSVs (trade prints, aggregated to
1-minute bars with a `trades` count). `.gz` files are read directly. Each reader returns a
`SourceBars` that remembers the file and, for row-based formats, the file line of every bar, so
validation errors can name file, row, column and value. Parsing problems raise `DataError` with
the same detail. Readers never sort or de-duplicate: that is validation's call, under its policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field

from ..config import ZtbModel
from ..errors import DataError
from .bars_from_trades import trades_to_bars
from .schema import BAR_COLUMNS, utc_index

ImportFormat = Literal["histdata", "csv", "parquet", "bitflyer-trades"]
FORMATS: tuple[str, ...] = ("histdata", "csv", "parquet", "bitflyer-trades")


class CsvColumns(ZtbModel):
    """Which CSV column holds what (generic CSV import)."""

    time: str | list[str] = Field(
        "time", description="timestamp column, or [date column, time column] joined by a space"
    )
    open: str = Field("open", description="open price column")
    high: str = Field("high", description="high price column")
    low: str = Field("low", description="low price column")
    close: str = Field("close", description="close price column")
    volume: str | None = Field("volume", description="volume column; null = none (volume 0)")
    trades: str | None = Field(None, description="trade-count column, if the file has one")
    delimiter: str = Field(",", min_length=1, max_length=1, description="field separator")
    header: bool = Field(True, description="first line holds column names; false = use 0-based positions as names")
    time_format: str | None = Field(
        None,
        description="strptime format of the timestamp; null = ISO 8601 / inferred; 'epoch_s'/'epoch_ms' for Unix times",
    )


@dataclass
class SourceBars:
    """Bars read from one file, before validation. `rows[i]` is the 1-based file line of bar i
    (None for formats without lines per bar); `notes` collects what the reader did."""

    path: Path
    bars: pd.DataFrame
    rows: np.ndarray | None
    notes: list[str] = field(default_factory=list)

    def where(self, i: int) -> str:
        if self.rows is not None:
            return f"{self.path}, row {int(self.rows[i])}"
        return f"{self.path}, bar {self.bars.index[i].isoformat()}"


def parse_tz(text: str | None, default: str = "UTC") -> tzinfo:
    """`UTC`, a fixed offset (`UTC-5`, `+09:00`, `-0500`) or an IANA name (`America/New_York`)."""
    text = (text or default).strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = re.fullmatch(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", text, flags=re.I)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise DataError(f"time zone {text!r}: offset out of range")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(
            f"unknown time zone {text!r}: use UTC, a fixed offset like UTC-5 or +09:00, "
            f"or an IANA name like America/New_York"
        ) from None


def localize(naive: pd.DatetimeIndex, tz: tzinfo, path: Path) -> pd.DatetimeIndex:
    """Naive local wall-clock times -> UTC. Fixed offsets are plain arithmetic (fast, no DST)."""
    if naive.tz is not None:
        return utc_index(naive)
    if isinstance(tz, timezone):
        off = tz.utcoffset(None)
        ns = naive.as_unit("ns").asi8 - int(off.total_seconds()) * 1_000_000_000
        return utc_index(ns)
    try:
        return utc_index(naive.tz_localize(tz, ambiguous="infer", nonexistent="raise"))
    except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps and overlaps
        raise DataError(f"{path}: timestamps cannot be placed in time zone {tz}: {exc}") from None


def _open_text(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; pass the files inside it")
    return path


def _bad_numeric(path: Path, raw: pd.DataFrame, cols: list[str], line_offset: int) -> None:
    """Find and report the first non-numeric cell (slow path, only after a fast parse failed)."""
    for col in cols:
        parsed = pd.to_numeric(raw[col], errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy() & raw[col].notna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{path}, row {i + line_offset}, column {col}: value {raw[col].iloc[i]!r} is not a number"
                f" ({len(bad)} such row(s))"
            )


def _parse_times(path: Path, text: pd.Series, fmt: str | None, line_offset: int, column: str) -> pd.DatetimeIndex:
    if fmt in ("epoch_s", "epoch_ms"):
        num = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{path}, row {i + line_offset}, column {column}: {text.iloc[i]!r} is not a Unix time")
        return pd.DatetimeIndex(pd.to_datetime(num.to_numpy(), unit="s" if fmt == "epoch_s" else "ms", utc=True))
    kwargs = {"format": fmt} if fmt else {"format": "ISO8601"}
    parsed = pd.to_datetime(text, errors="coerce", **kwargs)
    if parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        expected = f"format {fmt!r}" if fmt else "an ISO 8601 timestamp"
        raise DataError(f"{path}, row {i + line_offset}, column {column}: {text.iloc[i]!r} is not {expected}")
    return pd.DatetimeIndex(parsed)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_compact_times(path: Path, text: pd.Series, line_offset: int) -> pd.DatetimeIndex:
    """`YYYYMMDD HHMMSS` strings -> naive DatetimeIndex, by digit arithmetic: strptime takes about
    3 s per million rows, this about 0.3 s. Any malformed value raises with its row."""
    if text.isna().any():
        i = int(np.flatnonzero(text.isna().to_numpy())[0])
        raise DataError(f"{path}, row {i + line_offset}, column time: empty; expected 'YYYYMMDD HHMMSS'")
    raw = np.asarray(text.to_numpy(), dtype="S16")  # 16 bytes: a 16th character reveals over-long values
    u = raw.view(np.uint8).reshape(len(raw), 16)
    digit_cols = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14]
    dig = u[:, digit_cols].astype(np.int32) - 48
    bad = (dig < 0).any(axis=1) | (dig > 9).any(axis=1) | (u[:, 8] != 32) | (u[:, 15] != 0)

    def num(a: int, b: int) -> np.ndarray:
        out = np.zeros(len(u), np.int64)
        for col in range(a, b):
            out = out * 10 + dig[:, col]
        return out

    y, mo, d, hh, mi, ss = num(0, 4), num(4, 6), num(6, 8), num(8, 10), num(10, 12), num(12, 14)
    bad |= (mo < 1) | (mo > 12) | (d < 1) | (d > 31) | (hh > 23) | (mi > 59) | (ss > 59)
    days = _days_from_civil(y, np.clip(mo, 1, 12), d)
    # day 31 of a 30-day month lands in the next month: catch it by the round trip
    back = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    bad |= back != mo
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, row {i + line_offset}, column time: {text.iloc[i]!r} is not format 'YYYYMMDD HHMMSS'"
            f" ({int(bad.sum())} such row(s))"
        )
    ns = (days * 86_400 + hh * 3600 + mi * 60 + ss) * 1_000_000_000
    return pd.DatetimeIndex(ns.astype("datetime64[ns]"))


HISTDATA_NAMES = ["time", "open", "high", "low", "close", "volume"]


def _read_histdata_fast(path: Path) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]] | None:
    """pyarrow's multi-threaded CSV reader and strptime: about 5x faster than pandas + strptime.
    Returns None for anything unusual so the careful reader can name the offending row."""
    types = {"time": pa.string(), **{c: pa.float64() for c in HISTDATA_NAMES[1:]}}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=HISTDATA_NAMES),
            parse_options=pacsv.ParseOptions(delimiter=";"),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError, ValueError):
        return None
    if table.num_rows == 0:
        return None
    t = table["time"]
    if t.null_count or pc.any(pc.not_equal(pc.utf8_length(t), 15)).as_py():
        return None
    ts = pc.strptime(t, format="%Y%m%d %H%M%S", unit="s", error_is_null=True)
    if ts.null_count:
        return None
    times = pd.DatetimeIndex(ts.to_numpy().astype("datetime64[ns]"))
    cols = {c: table[c].to_numpy().astype(np.float64, copy=False) for c in HISTDATA_NAMES[1:]}
    return times, cols


def read_histdata(path: str | Path, tz: str | None = None) -> SourceBars:
    """HistData Generic ASCII M1: no header, `;`, `YYYYMMDD HHMMSS;o;h;l;c;v`, EST (UTC-5, no DST)."""
    path = _open_text(Path(path))
    fast = _read_histdata_fast(path)
    if fast is not None:
        times, cols = fast
    else:
        times, cols = _read_histdata_careful(path)
    idx = localize(times, parse_tz(tz, "UTC-5"), path)
    bars = pd.DataFrame(cols, index=idx)
    return SourceBars(path, bars, np.arange(1, len(bars) + 1), [f"time zone {tz or 'UTC-5 (HistData EST)'}"])


def read_histdata_folder(folder: str | Path, pattern: str = "*.csv.gz") -> pd.DataFrame:
    """Every HistData M1 file in `folder` (matching `pattern`) as one time-sorted bar frame."""
    files = sorted(Path(folder).glob(pattern))
    if not files:
        raise DataError(f"{folder}: no HistData files matching {pattern}")
    return pd.concat([read_histdata(f).bars for f in files]).sort_index()


def _read_histdata_careful(path: Path) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """pandas reader that names file, row, column and value of the first malformed cell."""
    names = HISTDATA_NAMES
    try:
        raw = pd.read_csv(path, sep=";", header=None, names=names, dtype={"time": str}, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a HistData Generic ASCII M1 file ({exc})") from None
    if len(raw) == 0:
        raise DataError(f"{path}: file is empty")
    if raw.shape[1] != 6 or (raw["volume"].isna().all() and raw["close"].isna().all()):
        raise DataError(f"{path}: expected 6 ';'-separated fields `YYYYMMDD HHMMSS;open;high;low;close;volume`")
    numeric = names[1:]
    if any(raw[c].dtype == object or str(raw[c].dtype).startswith("str") for c in numeric):
        _bad_numeric(path, raw, numeric, 1)
    times = parse_compact_times(path, raw["time"], 1)
    return times, {c: raw[c].to_numpy(np.float64) for c in numeric}


def read_csv_bars(path: str | Path, columns: CsvColumns | None = None, tz: str | None = None) -> SourceBars:
    """Generic CSV with a column map (see `CsvColumns`); naive timestamps are in `tz` (default UTC)."""
    path = _open_text(Path(path))
    cm = columns or CsvColumns()
    time_cols = [cm.time] if isinstance(cm.time, str) else list(cm.time)
    wanted = {"open": cm.open, "high": cm.high, "low": cm.low, "close": cm.close}
    if cm.volume:
        wanted["volume"] = cm.volume
    if cm.trades:
        wanted["trades"] = cm.trades
    try:
        raw = pd.read_csv(path, sep=cm.delimiter, header=0 if cm.header else None, dtype=str, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: cannot parse CSV ({exc})") from None
    if not cm.header:
        raw.columns = [str(c) for c in raw.columns]
    missing = [c for c in time_cols + list(wanted.values()) if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: column(s) {', '.join(map(repr, missing))} not found; the file has "
            f"{', '.join(map(repr, raw.columns))} (set the column map, e.g. --column-map time=Date)"
        )
    offset = 2 if cm.header else 1
    text = raw[time_cols[0]] if len(time_cols) == 1 else raw[time_cols].astype(str).agg(" ".join, axis=1)
    times = _parse_times(path, text, cm.time_format, offset, "+".join(time_cols))
    idx = localize(times, parse_tz(tz, "UTC"), path)
    data = {}
    for key, col in wanted.items():
        num = pd.to_numeric(raw[col], errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy() & raw[col].notna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{path}, row {i + offset}, column {col}: value {raw[col].iloc[i]!r} is not a number"
                f" ({len(bad)} such row(s))"
            )
        data[key] = num.to_numpy(np.float64)
    if "volume" not in data:
        data["volume"] = np.zeros(len(raw))
    cols = list(BAR_COLUMNS) + (["trades"] if "trades" in data else [])
    bars = pd.DataFrame({c: data[c] for c in cols}, index=idx)
    return SourceBars(path, bars, np.arange(offset, offset + len(bars)), [])


def read_parquet_bars(path: str | Path, tz: str | None = None) -> SourceBars:
    """Parquet with bar columns and the time as index or as a `time`/`timestamp`/`datetime` column."""
    path = _open_text(Path(path))
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise DataError(f"{path}: cannot read parquet ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(df.index, pd.DatetimeIndex):
        for name in ("time", "timestamp", "datetime", "date"):
            if name in df.columns:
                df = df.set_index(name)
                break
        else:
            raise DataError(f"{path}: no time column (expected a datetime index or a column named time/timestamp)")
    if not isinstance(df.index, pd.DatetimeIndex):
        try:
            df.index = pd.DatetimeIndex(pd.to_datetime(df.index, format="ISO8601"))
        except (ValueError, TypeError):
            raise DataError(f"{path}: the time column is not made of timestamps") from None
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; have {', '.join(map(str, df.columns))}")
    idx = localize(pd.DatetimeIndex(df.index), parse_tz(tz, "UTC"), path)
    data = {}
    for c in ("open", "high", "low", "close", "volume", "trades"):
        if c not in df.columns:
            continue
        try:
            data[c] = df[c].to_numpy(np.float64)
        except (ValueError, TypeError):
            raise DataError(f"{path}: column {c} is not numeric (dtype {df[c].dtype})") from None
    data.setdefault("volume", np.zeros(len(df)))
    cols = list(BAR_COLUMNS) + (["trades"] if "trades" in data else [])
    bars = pd.DataFrame({c: data[c] for c in cols}, index=idx)
    return SourceBars(path, bars, np.arange(len(bars)) + 1, ["rows are 1-based record numbers"])


BITFLYER_COLUMNS = ("id", "exec_date", "price", "size")


def read_trades_bitflyer(path: str | Path, missing_time: Literal["error", "drop"] = "drop") -> pd.DataFrame:
    """bitFlyer executions (quoted CSV with header) -> trades sorted by (exec_date, id), with
    `line` = file line. Bad cells raise DataError with file, row, column and value. Executions
    with an empty exec_date (they occur in bitFlyer's history) are dropped and counted in
    `attrs["notes"]`, or raise with `missing_time="error"`."""
    path = _open_text(Path(path))
    try:
        raw = pd.read_csv(path, usecols=lambda c: c in BITFLYER_COLUMNS, dtype=str, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse bitFlyer executions CSV ({exc})") from None
    missing = [c for c in BITFLYER_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: not a bitFlyer executions file: missing column(s) {', '.join(missing)}")
    lines = np.arange(2, len(raw) + 2)
    empty = raw["exec_date"].isna().to_numpy()
    notes: list[str] = []
    if empty.any():
        # bitFlyer's own history has executions without exec_date: never guess their time
        first = int(lines[np.flatnonzero(empty)[0]])
        if missing_time == "error":
            raise DataError(
                f"{path}, row {first}, column exec_date: empty ({int(empty.sum())} such row(s); "
                f"set trades_missing_time: drop to import without them)"
            )
        notes.append(f"dropped {int(empty.sum())} trade(s) with an empty exec_date (first at row {first})")
        raw, lines = raw[~empty].reset_index(drop=True), lines[~empty]
    times = pd.to_datetime(raw["exec_date"], format="ISO8601", utc=True, errors="coerce")
    if times.isna().any():
        i = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            f"{path}, row {lines[i]}, column exec_date: {raw['exec_date'].iloc[i]!r} is not an ISO 8601 time"
        )
    out = pd.DataFrame({"time": times.dt.as_unit("ns")})
    for col in ("id", "price", "size"):
        num = pd.to_numeric(raw[col], errors="coerce")
        bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(np.float64, na_value=np.nan))
        if col in ("price", "size"):
            bad |= num.to_numpy(np.float64, na_value=np.nan) <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "a positive number" if col != "id" else "an integer id"
            raise DataError(
                f"{path}, row {lines[i]}, column {col}: value {raw[col].iloc[i]!r} is not {need}"
                f" ({int(bad.sum())} such row(s))"
            )
        out[col] = num.to_numpy(np.float64)
    out["line"] = lines
    out = out.sort_values(["time", "id"], kind="stable").reset_index(drop=True)
    out.attrs["notes"] = notes
    return out


def bitflyer_bars(trades: pd.DataFrame) -> pd.DataFrame:
    """1-minute bars from bitFlyer trades (`time`, `price`, `size`) through the one bar builder
    (`bars_from_trades.trades_to_bars`); minutes without a trade have no bar."""
    if len(trades) == 0:
        raise DataError("no trades to aggregate")
    frame = pd.DataFrame(
        {
            "timestamp_ms": utc_index(pd.DatetimeIndex(trades["time"])).asi8 // 1_000_000,
            "price": trades["price"].to_numpy(np.float64),
            "amount": trades["size"].to_numpy(np.float64),
        }
    )
    return trades_to_bars(frame, "1m")


def read_bitflyer_bars(path: str | Path, missing_time: Literal["error", "drop"] = "drop") -> SourceBars:
    trades = read_trades_bitflyer(path, missing_time)
    bars = bitflyer_bars(trades)
    notes = list(trades.attrs.get("notes", [])) + [f"{len(trades)} trades -> {len(bars)} one-minute bars"]
    return SourceBars(Path(path), bars, None, notes)


def read_source(
    path: str | Path,
    fmt: str,
    tz: str | None = None,
    columns: CsvColumns | None = None,
    trades_missing_time: Literal["error", "drop"] = "drop",
) -> SourceBars:
    if fmt == "histdata":
        return read_histdata(path, tz)
    if fmt == "csv":
        return read_csv_bars(path, columns, tz)
    if fmt == "parquet":
        return read_parquet_bars(path, tz)
    if fmt == "bitflyer-trades":
        if tz:
            raise DataError("--tz does not apply to bitflyer-trades: exec_date carries its own offset")
        return read_bitflyer_bars(path, trades_missing_time)
    raise DataError(f"unknown import format {fmt!r}; expected one of {', '.join(FORMATS)}")
