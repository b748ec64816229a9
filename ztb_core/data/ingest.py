"""The import pipeline behind `ztb data import`: read -> validate -> merge -> resample -> store.

Every file is read and validated before anything is written, so a failed import writes nothing.
Then the M1 dataset is merged into the store (atomic replace) and the higher timeframes are
rebuilt from the merged M1 bars. `DataConfig` (configs/data.yaml) holds the policies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal, get_args

import pandas as pd
from pydantic import Field, field_validator

from ..config import ZtbModel
from ..errors import DataError
from . import store
from .importers import CsvColumns, SourceBars, bitflyer_bars, read_source, read_trades_bitflyer
from .resample import FX_DAY_CLOSE, FX_DAY_TZ, resample
from .schema import TIMEFRAMES, MarketKind, Timeframe
from .validate import ValidationConfig, ValidationReport, _dedupe, gap_check, validate_bars

DEFAULT_MARKET = {"histdata": "fx", "bitflyer-trades": "crypto", "csv": "fx", "parquet": "fx"}


class DataConfig(ZtbModel):
    """Settings of `ztb data import|info|validate`."""

    default_file: ClassVar[str] = "data.yaml"

    data_dir: str | None = Field(None, description="store folder; none = $ZTB_DATA or artifacts/data")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="checks and policies")
    csv: CsvColumns = Field(default_factory=CsvColumns, description="column map for --format csv")
    trades_missing_time: Literal["error", "drop"] = Field(
        "drop", description="bitflyer-trades: executions with an empty exec_date: drop (counted in the report) or error"
    )
    store_timeframes: list[Timeframe] = Field(
        list(get_args(Timeframe))[1:], description="higher timeframes rebuilt and stored after each import"
    )
    fx_day_close: str = Field(
        FX_DAY_CLOSE, pattern=r"^\d{2}:\d{2}$", description="FX daily bar close, local time HH:MM"
    )
    fx_day_tz: str = Field(FX_DAY_TZ, description="time zone of fx_day_close")

    @field_validator("store_timeframes")
    @classmethod
    def _higher_timeframes_only(cls, value: list[str]) -> list[str]:
        if "M1" in value:
            raise ValueError("M1 is the imported timeframe itself (always stored); list only higher ones")
        return value


@dataclass
class ImportResult:
    symbol: str
    market: str
    report: ValidationReport
    merge: store.MergeResult
    timeframes: dict[str, int] = field(default_factory=dict)  # stored rows per higher timeframe


def _read_bitflyer_batch(paths: list[Path], cfg: DataConfig, report: ValidationReport) -> SourceBars:
    """All trade files of one import together: a minute split across two daily files is whole."""
    frames = []
    for p in paths:
        trades = read_trades_bitflyer(p, cfg.trades_missing_time)
        report.notes += [f"{p.name}: {n}" for n in trades.attrs.get("notes", [])]
        frames.append(trades)
    trades = pd.concat(frames, ignore_index=True)
    dup = trades["id"].duplicated()
    if dup.any():
        report.notes.append(f"{int(dup.sum())} execution(s) present in more than one file counted once (same id)")
        trades = trades[~dup]
    trades = trades.sort_values(["time", "id"], kind="stable").reset_index(drop=True)
    bars = bitflyer_bars(trades)
    report.notes.append(f"{len(trades)} trades -> {len(bars)} one-minute bars")
    name = paths[0].name if len(paths) == 1 else f"{len(paths)} bitFlyer files"
    return SourceBars(Path(name), bars, None, [])


def read_and_validate(
    paths: Sequence[str | Path],
    fmt: str,
    market: str,
    cfg: DataConfig,
    tz: str | None = None,
    progress: Callable[[int, int, Path], None] | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Read every file, validate each (rows named per file), combine them, check gaps."""
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no input files given")
    name = str(files[0]) if len(files) == 1 else f"{len(files)} files ({files[0].name} ..)"
    report = ValidationReport(source=name, market=market)
    parts: list[pd.DataFrame] = []
    rows_in = 0
    if fmt == "bitflyer-trades":
        for p in files:
            if not p.exists():
                raise DataError(f"{p}: file not found")
        src = _read_bitflyer_batch(files, cfg, report)
        sub = ValidationReport(source=str(src.path), market=market)
        bars, sub = validate_bars(src.bars, market, cfg.validation, str(src.path), None, check_gaps=False, report=sub)
        rows_in += sub.rows_in
        parts.append(bars)
        report.jumps += sub.jumps
        report.jumps_total += sub.jumps_total
        if progress:
            progress(len(files), len(files), files[-1])
    else:
        for i, p in enumerate(files):
            src = read_source(p, fmt, tz, cfg.csv, cfg.trades_missing_time)
            sub = ValidationReport(source=str(p), market=market)
            bars, sub = validate_bars(src.bars, market, cfg.validation, str(p), src.rows, check_gaps=False, report=sub)
            rows_in += sub.rows_in
            report.duplicates_identical += sub.duplicates_identical
            report.duplicates_conflicting += sub.duplicates_conflicting
            report.duplicates_removed += sub.duplicates_removed
            report.jumps += sub.jumps
            report.jumps_total += sub.jumps_total
            report.notes += [f"{p.name}: {n}" for n in sub.notes + src.notes if "time zone" not in n or i == 0]
            parts.append(bars)
            if progress:
                progress(i + 1, len(files), p)
    combined = pd.concat(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        # files may overlap each other: the same duplicates policy applies across files
        combined = combined.sort_index(kind="stable")
        cross = ValidationReport(source=name, market=market)
        combined, _ = _dedupe(combined, None, name, cfg.validation, cross)
        report.duplicates_identical += cross.duplicates_identical
        report.duplicates_conflicting += cross.duplicates_conflicting
        report.duplicates_removed += cross.duplicates_removed
        if cross.duplicates_removed:
            report.notes.append(f"{cross.duplicates_removed} timestamp(s) present in more than one file kept once")
    report.jumps = report.jumps[: cfg.validation.max_listed]
    gap_check(combined, market, cfg.validation, report)
    report.rows_in = rows_in
    report.rows_out = len(combined)
    if len(combined):
        report.first, report.last = combined.index[0].isoformat(), combined.index[-1].isoformat()
    return combined, report


def import_files(
    paths: Sequence[str | Path],
    fmt: str,
    symbol: str,
    market: MarketKind | None = None,
    tz: str | None = None,
    cfg: DataConfig | None = None,
    progress: Callable[[int, int, Path], None] | None = None,
) -> ImportResult:
    """Import source files into the store (see module docstring). Raises DataError, writing nothing,
    when a file is malformed or a policy says fail."""
    cfg = cfg or DataConfig()
    symbol = store.check_symbol(symbol)
    if fmt not in DEFAULT_MARKET:
        raise DataError(f"unknown import format {fmt!r}; expected one of {', '.join(DEFAULT_MARKET)}")
    stored_market = store.read_meta(symbol, "M1", cfg.data_dir).get("market")
    used_market: str = market or stored_market or DEFAULT_MARKET[fmt]
    if stored_market and stored_market != used_market:
        raise DataError(f"symbol {symbol} is stored as market {stored_market!r}; cannot import it as {used_market!r}")
    bars, report = read_and_validate(paths, fmt, used_market, cfg, tz, progress)
    meta = {
        "market": used_market,
        "format": fmt,
        "sources": sorted(str(Path(p).resolve()) for p in paths),
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    merge = store.merge_into_store(bars, symbol, "M1", cfg.data_dir, meta)
    if merge.rows_replaced:
        report.notes.append(f"{merge.rows_replaced} stored bar(s) replaced by different values from this import")
    full = store.read_bars(symbol, "M1", data_dir=cfg.data_dir)
    result = ImportResult(symbol, used_market, report, merge)
    for tf in cfg.store_timeframes:
        htf = resample(
            full,
            tf,
            used_market,
            day_close=cfg.fx_day_close if used_market == "fx" else None,
            day_tz=cfg.fx_day_tz if used_market == "fx" else None,
        )
        store.write_bars(htf, symbol, tf, cfg.data_dir, {"market": used_market, "resampled_from": "M1"})
        result.timeframes[tf] = len(htf)
    return result


def dataset_info(symbol: str, cfg: DataConfig | None = None) -> dict:
    """Ranges, row counts and a gap summary of every stored timeframe of `symbol`."""
    cfg = cfg or DataConfig()
    symbol = store.check_symbol(symbol)
    if not store.has_dataset(symbol, "M1", cfg.data_dir):
        have = sorted({s for s, _ in store.list_datasets(cfg.data_dir)})
        raise DataError(
            f"symbol {symbol!r} is not in the store {store.dataset_path(symbol, 'M1', cfg.data_dir).parent.parent}"
            f" ({'stored: ' + ', '.join(have) if have else 'the store is empty'})"
        )
    meta = store.read_meta(symbol, "M1", cfg.data_dir)
    market = meta.get("market", "fx")
    out: dict = {
        "symbol": symbol,
        "market": market,
        "sources": meta.get("sources", []),
        "imported_at": meta.get("imported_at"),
        "timeframes": {},
    }
    for tf in TIMEFRAMES:
        if not store.has_dataset(symbol, tf, cfg.data_dir):
            continue
        df = store.read_bars(symbol, tf, data_dir=cfg.data_dir)
        entry = {
            "rows": len(df),
            "first": df.index[0].isoformat() if len(df) else None,
            "last": df.index[-1].isoformat() if len(df) else None,
            "file": str(store.dataset_path(symbol, tf, cfg.data_dir)),
        }
        if "complete" in df.columns:
            entry["partial_bars"] = int((~df["complete"].astype(bool)).sum())
        if tf == "M1":
            rep = ValidationReport(source=symbol, market=market)
            gap_check(df, market, cfg.validation.model_copy(update={"gaps": "report"}), rep)
            entry["gaps"] = {
                "total": rep.gaps_total,
                "quiet": rep.gaps_quiet,
                "market_closed": rep.gaps_market_closed,
                "unexpected": rep.gaps_unexpected,
                "missing_open_minutes": rep.missing_open_minutes,
                "unexpected_list": [g.__dict__ for g in rep.unexpected_gaps],
            }
        out["timeframes"][tf] = entry
    return out


def validate_stored(symbol: str, cfg: DataConfig | None = None) -> ValidationReport:
    """Re-run validation on a stored M1 dataset (structure, duplicates, jumps, gaps)."""
    cfg = cfg or DataConfig()
    df = store.read_bars(symbol, "M1", data_dir=cfg.data_dir)
    market = store.read_meta(symbol, "M1", cfg.data_dir).get("market", "fx")
    bars = df[[c for c in ("open", "high", "low", "close", "volume", "trades") if c in df.columns]]
    _, report = validate_bars(bars, market, cfg.validation, source=str(store.dataset_path(symbol, "M1", cfg.data_dir)))
    return report
