"""Each validation error class with a malformed file; policies; a failed import writes nothing."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ztb_core.data import store
from ztb_core.data.ingest import DataConfig, import_files, read_and_validate
from ztb_core.data.validate import ValidationConfig, validate_bars
from ztb_core.errors import DataError

GOOD = [
    "20160105 100000;120.000;120.010;119.990;120.005;0",
    "20160105 100100;120.005;120.020;120.000;120.010;0",
    "20160105 100200;120.010;120.015;120.001;120.002;0",
    "20160105 100300;120.002;120.012;119.995;120.000;0",
]


def histdata(tmp_path: Path, lines: list[str], name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def replace(i: int, field: int, value: str) -> list[str]:
    rows = [r.split(";") for r in GOOD]
    rows[i][field] = value
    return [";".join(r) for r in rows]


@pytest.mark.parametrize(
    "lines,match",
    [
        (replace(2, 4, "nan"), r"row 3, column close: value nan is not a finite number"),
        (replace(1, 2, "inf"), r"row 2, column high: value inf is not a finite number"),
        (replace(2, 3, "0"), r"row 3, column low: price 0.0 is not positive"),
        (replace(3, 1, "-120.0"), r"row 4, column open: price -120.0 is not positive"),
        (replace(1, 2, "120.001"), r"row 2, column high: value 120.001 is below max\(open, close\) = 120.01"),
        (replace(2, 3, "120.012"), r"row 3, column low: value 120.012 is above min\(open, close\) = 120.002"),
        (replace(0, 5, "-3"), r"row 1, column volume: value -3.0 is negative"),
        (replace(2, 4, "12O.0"), r"row 3, column close: value '12O.0' is not a number"),
        (replace(1, 0, "20160105 1001"), r"row 2, column time: '20160105 1001' is not format"),
        ([GOOD[0], GOOD[2], GOOD[1], GOOD[3]], r"row 3, column time: 2016-01-05T15:01:00\+00:00 is earlier than"),
    ],
)
def test_structural_errors_name_file_row_column_value(tmp_path, lines, match):
    path = histdata(tmp_path, lines)
    with pytest.raises(DataError, match=match) as err:
        import_files([path], "histdata", "USDJPY")
    assert str(path) in str(err.value)
    assert not store.dataset_path("USDJPY").exists()  # a failed import writes nothing


def test_duplicate_policies(tmp_path):
    identical = histdata(tmp_path, GOOD[:2] + [GOOD[1]] + GOOD[2:], "ident.csv")
    conflicting = histdata(tmp_path, GOOD[:2] + [GOOD[1].replace("120.010;0", "120.011;0")] + GOOD[2:], "conf.csv")
    err_cfg = DataConfig(validation=ValidationConfig(duplicates="error"))
    with pytest.raises(DataError, match=r"ident.csv, row 3, column time: duplicate timestamp"):
        read_and_validate([identical], "histdata", "fx", err_cfg)
    # report: identical rows collapse (nothing lost), conflicting ones fail
    bars, rep = read_and_validate([identical], "histdata", "fx", DataConfig())
    assert len(bars) == 4 and rep.duplicates_identical == 1 and rep.duplicates_removed == 1
    with pytest.raises(DataError, match=r"conf.csv, row 3: duplicate timestamp .* different values"):
        read_and_validate([conflicting], "histdata", "fx", DataConfig())
    # drop: keep the first row of the timestamp, and say so
    bars, rep = read_and_validate(
        [conflicting], "histdata", "fx", DataConfig(validation=ValidationConfig(duplicates="drop"))
    )
    assert len(bars) == 4 and rep.duplicates_conflicting == 1
    assert bars["close"].iloc[1] == pytest.approx(120.010)
    assert any("removed 1 duplicate" in n for n in rep.notes)


def test_jump_policy(tmp_path):
    path = histdata(tmp_path, GOOD + ["20160105 100400;150.000;150.000;150.000;150.000;0"])
    with pytest.raises(DataError, match=r"row 5, column close: value 150.0 jumps \+0.223"):
        import_files([path], "histdata", "USDJPY")
    cfg = DataConfig(validation=ValidationConfig(jumps="report"))
    _, rep = read_and_validate([path], "histdata", "fx", cfg)
    assert rep.jumps_total == 1 and "row 5" in rep.jumps[0]["where"]
    cfg = DataConfig(validation=ValidationConfig(max_jump=0.3))
    _, rep = read_and_validate([path], "histdata", "fx", cfg)
    assert rep.jumps_total == 0


def _bars(times, market="fx"):
    idx = pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="time")
    p = np.full(len(idx), 100.0)
    return pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": np.zeros(len(idx))}, index=idx)


def test_gap_classification_fx_weekend_holiday_quiet_and_unexpected():
    week = pd.date_range("2016-01-08 21:50", "2016-01-08 21:59", freq="min")  # Friday, market closes 22:00 UTC
    sunday = pd.date_range("2016-01-10 22:00", "2016-01-11 02:00", freq="min")
    midweek = pd.date_range("2016-01-11 05:00", "2016-01-11 06:00", freq="min")  # 3 h hole on Monday
    quiet = pd.date_range("2016-01-11 06:20", "2016-01-11 06:30", freq="min")  # 19 min pause
    times = week.append(sunday).append(midweek).append(quiet)
    _, rep = validate_bars(_bars(times), "fx")
    assert (rep.gaps_total, rep.gaps_market_closed, rep.gaps_quiet, rep.gaps_unexpected) == (3, 1, 1, 1)
    assert rep.unexpected_gaps[0].start == "2016-01-11T02:01:00+00:00" and rep.unexpected_gaps[0].minutes == 179
    with pytest.raises(DataError, match=r"unexpected gap 2016-01-11T02:01:00\+00:00 -> 2016-01-11T05:00:00\+00:00"):
        validate_bars(_bars(times), "fx", ValidationConfig(gaps="error"))
    # Christmas: closed from 17:00 New York on the 24th to 17:00 on the 25th
    xmas = pd.date_range("2015-12-24 21:50", "2015-12-24 21:59", freq="min").append(
        pd.date_range("2015-12-25 22:00", "2015-12-25 22:10", freq="min")
    )
    _, rep = validate_bars(_bars(xmas), "fx")
    assert rep.gaps_market_closed == 1 and rep.gaps_unexpected == 0
    _, rep = validate_bars(_bars(xmas), "fx", ValidationConfig(fx_holidays=[]))
    assert rep.gaps_unexpected == 1


def test_gap_classification_crypto_is_24_7_with_optional_maintenance():
    times = pd.date_range("2018-01-20 18:50", "2018-01-20 18:59", freq="min").append(
        pd.date_range("2018-01-20 19:12", "2018-01-20 19:20", freq="min")
    )
    _, rep = validate_bars(_bars(times), "crypto")
    assert rep.gaps_unexpected == 1  # 12 min > 10 min quiet limit; crypto never closes
    _, rep = validate_bars(_bars(times), "crypto", ValidationConfig(daily_maintenance_utc=["19:00-19:15"]))
    assert rep.gaps_unexpected == 0 and rep.gaps_market_closed == 1
    with pytest.raises(DataError, match="HH:MM-HH:MM"):
        validate_bars(_bars(times), "crypto", ValidationConfig(daily_maintenance_utc=["7pm"]))


def test_cross_file_duplicates_follow_the_policy(tmp_path):
    a = histdata(tmp_path, GOOD[:3], "a.csv")
    b = histdata(tmp_path, [GOOD[2].replace("120.002;0", "120.003;0"), GOOD[3]], "b.csv")
    with pytest.raises(DataError, match="different values"):
        read_and_validate([a, b], "histdata", "fx", DataConfig())
    bars, rep = read_and_validate([a, b], "histdata", "fx", DataConfig(validation=ValidationConfig(duplicates="drop")))
    assert len(bars) == 4 and rep.duplicates_removed == 1


def test_empty_and_garbage_files(tmp_path, write_text):
    empty = write_text(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match="empty.csv: file is empty"):
        import_files([empty], "histdata", "USDJPY")
    garbage = write_text(tmp_path / "g.csv.gz", "hello world\nthis is not data\n")
    with pytest.raises(DataError, match="g.csv.gz"):
        import_files([garbage], "histdata", "USDJPY")
    with pytest.raises(DataError, match="file not found"):
        import_files([tmp_path / "nope.csv"], "histdata", "USDJPY")
    assert store.list_datasets() == []


def test_fast_and_careful_histdata_readers_agree(tmp_path):
    from ztb_core.data.importers import _read_histdata_careful, _read_histdata_fast
    from ztb_core.data.synthetic import SyntheticConfig, generate_market

    bars = generate_market(SyntheticConfig(seed=9, n_bars=3000))
    est = (bars.index - pd.Timedelta(hours=5)).strftime("%Y%m%d %H%M%S")
    lines = [
        f"{t};{o:.6f};{h:.6f};{lo:.6f};{c:.6f};0"
        for t, o, h, lo, c in zip(est, bars["open"], bars["high"], bars["low"], bars["close"], strict=False)
    ]
    path = histdata(tmp_path, lines, "good.csv")
    fast, careful = _read_histdata_fast(path), _read_histdata_careful(path)
    assert fast is not None
    assert (fast[0] == careful[0]).all()
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(fast[1][col], careful[1][col])
    assert _read_histdata_fast(histdata(tmp_path, replace(1, 0, "20160105 1001"), "w.csv")) is None
