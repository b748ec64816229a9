"""The canonical bar store: one parquet file (pyarrow, zstd) per symbol and timeframe.

Layout: `<data_dir>/<SYMBOL>/<TF>.parquet`, `data_dir` defaulting to `paths.data_dir()`
(`$ZTB_DATA` or `artifacts/data`). Files are replaced atomically (temp file + `os.replace`), so a
reader sees the old dataset or the new one, never half of either. Writing bars that overlap what
is stored merges them: one row per timestamp, the new rows win where both have one, and the
caller learns how many stored rows changed value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import paths
from ..atomic import atomic_file
from ..errors import DataError
from .schema import BAR_COLUMNS, TIMEFRAMES, check_timeframe, normalize_bars, utc_index

_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
META_KEY = b"ztb"


@dataclass(frozen=True)
class MergeResult:
    path: Path
    rows_before: int
    rows_added: int
    rows_replaced: int  # overlapping timestamps whose stored values differed from the new ones
    rows_after: int


def check_symbol(symbol: str) -> str:
    """Symbols name folders: letters, digits, `_ . -` (e.g. USDJPY, BTC_JPY). `/` is mapped to `_`."""
    sym = symbol.replace("/", "_")
    if not _SYMBOL_RE.match(sym):
        raise DataError(f"invalid symbol {symbol!r}: use letters, digits, '_', '.', '-' (e.g. USDJPY, BTC_JPY)")
    return sym


def dataset_path(symbol: str, timeframe: str = "M1", data_dir: str | Path | None = None) -> Path:
    check_timeframe(timeframe)
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    return root / check_symbol(symbol) / f"{timeframe}.parquet"


def _to_table(bars: pd.DataFrame, meta: dict) -> pa.Table:
    df = bars.copy()
    df.index = utc_index(df.index)
    table = pa.Table.from_pandas(df, preserve_index=True)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta, default=str).encode()
    return table.replace_schema_metadata(schema_meta)


def write_bars(
    bars: pd.DataFrame, symbol: str, timeframe: str = "M1", data_dir: str | Path | None = None, meta: dict | None = None
) -> Path:
    """Replace the dataset atomically with `bars` (already validated, sorted, unique)."""
    path = dataset_path(symbol, timeframe, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = _to_table(bars, meta or {})
    with atomic_file(path) as fh:
        pq.write_table(table, fh, compression="zstd", compression_level=3)
    return path


def read_meta(symbol: str, timeframe: str = "M1", data_dir: str | Path | None = None) -> dict:
    path = dataset_path(symbol, timeframe, data_dir)
    if not path.exists():
        return {}
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def has_dataset(symbol: str, timeframe: str = "M1", data_dir: str | Path | None = None) -> bool:
    return dataset_path(symbol, timeframe, data_dir).exists()


def read_bars(
    symbol: str, timeframe: str = "M1", start: object = None, end: object = None, data_dir: str | Path | None = None
) -> pd.DataFrame:
    """Stored bars with open time in [start, end) (either bound optional)."""
    path = dataset_path(symbol, timeframe, data_dir)
    if not path.exists():
        have = list_datasets(data_dir)
        hint = f"; stored: {', '.join(f'{s}/{tf}' for s, tf in have)}" if have else "; the store is empty"
        raise DataError(f"no {timeframe} data for symbol {symbol!r} at {path}{hint} (import with `ztb data import`)")
    filters = []
    if start is not None:
        filters.append(
            (
                "time",
                ">=",
                pd.Timestamp(start).tz_convert("UTC")
                if pd.Timestamp(start).tzinfo
                else pd.Timestamp(start).tz_localize("UTC"),
            )
        )
    if end is not None:
        filters.append(
            (
                "time",
                "<",
                pd.Timestamp(end).tz_convert("UTC")
                if pd.Timestamp(end).tzinfo
                else pd.Timestamp(end).tz_localize("UTC"),
            )
        )
    try:
        df = pq.read_table(path, filters=filters or None).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read stored dataset ({exc})") from None
    if "time" in df.columns:
        df = df.set_index("time")
    df.index = utc_index(df.index)
    for col in BAR_COLUMNS:
        if col in df.columns:
            df[col] = df[col].astype(np.float64)
    return df


def merge_bars(old: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Union by timestamp, new rows winning. Returns (merged, rows_added, rows_replaced)."""
    if len(old) == 0:
        return new, len(new), 0
    cols = [c for c in new.columns if c in old.columns]
    common = old.index.intersection(new.index)
    replaced = 0
    if len(common):
        a = old.loc[common, cols].to_numpy(np.float64)
        b = new.loc[common, cols].to_numpy(np.float64)
        replaced = int((~((a == b) | (np.isnan(a) & np.isnan(b)))).any(axis=1).sum())
    merged = pd.concat([old[~old.index.isin(new.index)], new]).sort_index(kind="stable")
    return merged, len(new) - len(common), replaced


def merge_into_store(
    bars: pd.DataFrame, symbol: str, timeframe: str = "M1", data_dir: str | Path | None = None, meta: dict | None = None
) -> MergeResult:
    """Merge validated bars into the stored dataset (creating it), atomically."""
    bars = normalize_bars(bars) if not set(bars.columns) - set(BAR_COLUMNS) - {"trades"} else bars
    path = dataset_path(symbol, timeframe, data_dir)
    old = read_bars(symbol, timeframe, data_dir=data_dir) if path.exists() else bars.iloc[:0]
    old_meta = read_meta(symbol, timeframe, data_dir)
    if len(old) and "trades" in old.columns and "trades" not in bars.columns:
        bars = bars.assign(trades=np.nan)
    if len(old) and "trades" in bars.columns and "trades" not in old.columns:
        old = old.assign(trades=np.nan)
    merged, added, replaced = merge_bars(old, bars)
    full_meta = {**old_meta, **(meta or {})}
    sources = list(old_meta.get("sources", [])) + list((meta or {}).get("sources", []))
    if sources:
        full_meta["sources"] = sorted(set(sources))
    write_bars(merged, symbol, timeframe, data_dir, full_meta)
    return MergeResult(path, len(old), added, replaced, len(merged))


def list_datasets(data_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """(symbol, timeframe) pairs present in the store, sorted."""
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    if not root.is_dir():
        return []
    out = []
    for sym_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for tf in TIMEFRAMES:
            if (sym_dir / f"{tf}.parquet").exists():
                out.append((sym_dir.name, tf))
    return out
