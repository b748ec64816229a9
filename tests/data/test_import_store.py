"""Importers (time zones, column maps, gzip, trades -> bars), the store (merge, atomicity), the data
source, splits and the CLI."""

import pandas as pd
import pytest

from ztb_core.cli import main
from ztb_core.data import store
from ztb_core.data.importers import (
    CsvColumns,
    bitflyer_bars,
    parse_tz,
    read_csv_bars,
    read_histdata,
    read_trades_bitflyer,
)
from ztb_core.data.ingest import DataConfig, import_files
from ztb_core.data.source import DataSourceConfig, load_bars
from ztb_core.data.splits import SplitConfig, chronological_splits
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.errors import ConfigError, DataError

BITFLYER_HEADER = (
    '"domain","product_code","loaded","id","exec_date","side","price","size",'
    '"buy_child_order_acceptance_id","sell_child_order_acceptance_id"'
)


def bf_row(i, when, price, size):
    return f'"bitflyer.jp","BTC_JPY","{when}","{i}","{when}","BUY","{price}","{size}","A","B"'


def test_histdata_is_fixed_utc_minus_5_all_year(tmp_path, write_text):
    path = write_text(tmp_path / "h.csv.gz", "20160105 170000;1;1;1;1;0\n20160705 170000;2;2;2;2;0\n")
    src = read_histdata(path)
    assert [str(t) for t in src.bars.index] == ["2016-01-05 22:00:00+00:00", "2016-07-05 22:00:00+00:00"]
    other = read_histdata(path, tz="America/New_York")  # explicit zone: DST applies
    assert str(other.bars.index[1]) == "2016-07-05 21:00:00+00:00"


def test_parse_tz_forms():
    assert parse_tz("UTC-5").utcoffset(None).total_seconds() == -5 * 3600
    assert parse_tz("+09:00").utcoffset(None).total_seconds() == 9 * 3600
    assert str(parse_tz("Asia/Tokyo")) == "Asia/Tokyo"
    with pytest.raises(DataError, match="unknown time zone 'Mars/Olympus'"):
        parse_tz("Mars/Olympus")


def test_generic_csv_with_column_map_and_tz(tmp_path, write_text):
    path = write_text(
        tmp_path / "x.csv", "Date;Time;O;H;L;C\n2020.01.06;09:00;1;2;0.5;1.5\n2020.01.06;09:01;1.5;2;1;1\n"
    )
    cols = CsvColumns(
        time=["Date", "Time"],
        open="O",
        high="H",
        low="L",
        close="C",
        volume=None,
        delimiter=";",
        time_format="%Y.%m.%d %H:%M",
    )
    src = read_csv_bars(path, cols, tz="+09:00")
    assert str(src.bars.index[0]) == "2020-01-06 00:00:00+00:00"
    assert (src.bars["volume"] == 0).all() and list(src.rows) == [2, 3]
    with pytest.raises(DataError, match=r"column\(s\) 'Open', .* not found; the file has 'Date', 'Time', 'O'"):
        read_csv_bars(path, CsvColumns(time=["Date", "Time"], open="Open", delimiter=";"))


def test_parquet_import_and_cli_roundtrip(tmp_path):
    bars = generate_market(SyntheticConfig(seed=3, n_bars=3000, market="crypto"))
    src = tmp_path / "bars.parquet"
    bars.to_parquet(src)
    assert main(["data", "import", str(src), "--format", "parquet", "--symbol", "SYN", "--market", "crypto"]) == 0
    pd.testing.assert_frame_equal(store.read_bars("SYN"), bars)
    assert store.read_meta("SYN")["market"] == "crypto"
    assert [tf for s, tf in store.list_datasets() if s == "SYN"] == ["M1", "M5", "M15", "M30", "H1", "H4", "D"]
    assert main(["data", "validate", "SYN"]) == 0
    assert main(["data", "info", "SYN", "--json"]) == 0
    assert main(["data", "info", "NOPE"]) == 2


def test_bitflyer_trades_to_bars_sorted_by_time_then_id(tmp_path, write_text):
    rows = [
        BITFLYER_HEADER,
        bf_row(5, "2018-01-21T09:00:30.000+09:00", 100.0, 0.5),
        bf_row(4, "2018-01-21T09:00:10.000+09:00", 102.0, 0.1),  # earlier: first in the minute
        bf_row(6, "2018-01-21T09:00:30.000+09:00", 99.0, 0.2),  # same time, higher id: later
        '"bitflyer.jp","BTC_JPY","2018-01-21T09:01:05.000+09:00","7","","SELL","98.0","1.0","A","B"',
        bf_row(8, "2018-01-21T09:02:01.000+09:00", 101.0, 1.0),
    ]
    path = write_text(tmp_path / "bitflyer.execution.20180121.BTC_JPY.csv.gz", "\n".join(rows) + "\n")
    trades = read_trades_bitflyer(path)
    assert (
        list(trades["id"]) == [4, 5, 6, 8]
        and "dropped 1 trade(s) with an empty exec_date (first at row 5)" in trades.attrs["notes"][0]
    )
    bars = bitflyer_bars(trades)
    assert [str(t) for t in bars.index] == ["2018-01-21 00:00:00+00:00", "2018-01-21 00:02:00+00:00"]
    first = bars.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (102.0, 102.0, 99.0, 99.0)
    assert first["volume"] == pytest.approx(0.8) and first["trades"] == 3
    with pytest.raises(DataError, match=r"row 5, column exec_date: empty"):
        read_trades_bitflyer(path, missing_time="error")
    bad = write_text(
        tmp_path / "bad.csv.gz", "\n".join(rows[:2] + [bf_row(9, "2018-01-21T09:03:00+09:00", -1, 1)]) + "\n"
    )
    with pytest.raises(DataError, match=r"bad.csv.gz, row 3, column price: value '-1' is not a positive number"):
        read_trades_bitflyer(bad)


def test_reimport_overlap_merges_without_duplicates(tmp_path):
    bars = generate_market(SyntheticConfig(seed=4, n_bars=2000, market="crypto"))
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    bars.iloc[:1200].to_parquet(a)
    bars.iloc[800:].to_parquet(b)
    r1 = import_files([a], "parquet", "X", "crypto")
    r2 = import_files([b], "parquet", "X", "crypto")
    assert (r1.merge.rows_after, r2.merge.rows_added, r2.merge.rows_replaced, r2.merge.rows_after) == (
        1200,
        800,
        0,
        2000,
    )
    got = store.read_bars("X")
    assert got.index.is_unique and len(got) == 2000
    pd.testing.assert_frame_equal(got, bars)
    # a revised value replaces the stored one and is counted
    c = tmp_path / "c.parquet"
    revised = bars.iloc[100:110].copy()
    revised["close"] = revised["open"]
    revised.to_parquet(c)
    r3 = import_files([c], "parquet", "X", "crypto")
    assert r3.merge.rows_replaced == 10 and r3.merge.rows_after == 2000
    assert any("10 stored bar(s) replaced" in n for n in r3.report.notes)
    with pytest.raises(DataError, match="stored as market 'crypto'"):
        import_files([c], "parquet", "X", "fx")


def test_store_writes_are_atomic(tmp_path, monkeypatch):
    bars = generate_market(SyntheticConfig(seed=5, n_bars=500))
    path = store.write_bars(bars, "ATOM")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.pq, "write_table", boom)
    with pytest.raises(OSError):
        store.write_bars(bars.iloc[:10], "ATOM")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["M1.parquet"]  # no temp file left behind
    with pytest.raises(DataError, match="invalid symbol"):
        store.dataset_path("../etc")


def test_data_source_synthetic_and_store(tmp_path):
    cfg = DataSourceConfig(
        market="crypto",
        synthetic=SyntheticConfig(n_bars=3000, seed=1),
        start="2020-01-06T00:00:00Z",
        end="2020-01-06T12:00:00Z",
    )
    bars = load_bars(cfg)
    assert "trades" in bars.columns  # the source's market drives the generator
    assert bars.index[0] == pd.Timestamp("2020-01-06", tz="UTC") and len(bars) == 720
    store.write_bars(generate_market(SyntheticConfig(n_bars=3000, seed=1)), "SYNTHFX", meta={"market": "fx"})
    stored = load_bars(DataSourceConfig(kind="store", symbol="SYNTHFX", start="2020-01-06 10:00"))
    assert stored.index[0] == pd.Timestamp("2020-01-06 10:00", tz="UTC")
    with pytest.raises(DataError, match="no M1 data for symbol 'MISSING'"):
        load_bars(DataSourceConfig(kind="store", symbol="MISSING"))
    with pytest.raises(DataError, match="no M1 bars between"):
        load_bars(DataSourceConfig(synthetic=SyntheticConfig(n_bars=100), start="2030-01-01"))


def test_chronological_splits():
    s = chronological_splits(1000, 0.7, 0.15, 0.15, embargo=10)
    assert s == {"train": slice(0, 700), "val": slice(710, 850), "test": slice(860, 1000)}
    assert SplitConfig().slices(100) == {"train": slice(0, 70), "val": slice(70, 85), "test": slice(85, 100)}
    with pytest.raises(ConfigError, match="<= 1"):
        chronological_splits(100, 0.8, 0.2, 0.2)
    with pytest.raises(ConfigError, match="val split is empty"):
        chronological_splits(10, 0.7, 0.15, 0.15, embargo=5)
    from ztb_core.config import validate_config

    with pytest.raises(ConfigError, match="must be <= 1"):
        validate_config(SplitConfig, {"train": 0.9, "val": 0.2})


def test_bundled_config_loads():
    from ztb_core.config import load_config

    cfg = load_config(DataConfig)
    assert cfg.validation.duplicates == "report" and cfg.fx_day_close == "17:00"
    with pytest.raises(ConfigError, match="validation.gaps"):
        load_config(DataConfig, overrides=["validation.gaps=drop"])
