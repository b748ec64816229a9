"""`ztb data info SYMBOL --plot`: a valid PNG of close price with gaps marked and daily
volatility, written atomically; the gap marks and the volatility numbers behind it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ztb_core.cli import main
from ztb_core.data import store
from ztb_core.data.plot import daily_realised_vol, gap_spans
from ztb_core.data.schema import utc_index
from ztb_core.data.synthetic import SyntheticConfig, generate_market

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fx_with_outage() -> pd.DataFrame:
    """Two weeks of FX M1 (weekend gaps) with a 3-hour outage on a Wednesday."""
    bars = generate_market(SyntheticConfig(n_bars=14_000, seed=4, market="fx"))
    hole = (bars.index >= pd.Timestamp("2020-01-08 10:00", tz="UTC")) & (
        bars.index < pd.Timestamp("2020-01-08 13:00", tz="UTC")
    )
    assert hole.sum() == 180
    return bars[~hole]


def _assert_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)  # decodes the whole file: a truncated PNG fails here
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_info_plot_writes_a_valid_png(fx_with_outage, tmp_path) -> None:
    store.write_bars(fx_with_outage, "SYNFX", meta={"market": "fx"})
    out = tmp_path / "pics" / "synfx.png"
    assert main(["data", "info", "SYNFX", "--plot", str(out)]) == 0
    _assert_png(out)


def test_info_plot_auto_goes_beside_the_dataset_and_rejects_other_formats(fx_with_outage, tmp_path) -> None:
    store.write_bars(fx_with_outage, "SYNFX", meta={"market": "fx"})
    assert main(["data", "info", "SYNFX", "--json", "--plot", "auto"]) == 0
    _assert_png(store.dataset_path("SYNFX").with_suffix(".png"))
    assert main(["data", "info", "SYNFX", "--plot", str(tmp_path / "x.jpg")]) != 0
    assert not (tmp_path / "x.jpg").exists()


def test_gaps_are_marked_closed_or_unexpected(fx_with_outage) -> None:
    spans = gap_spans(fx_with_outage.index, "fx")
    bad = [s for s in spans if not s.expected]
    assert [(pd.Timestamp(s.start_ns, tz="UTC"), pd.Timestamp(s.end_ns, tz="UTC")) for s in bad] == [
        (pd.Timestamp("2020-01-08 10:00", tz="UTC"), pd.Timestamp("2020-01-08 13:00", tz="UTC"))
    ]
    weekends = [s for s in spans if s.expected]
    assert len(weekends) >= 1 and all((s.end_ns - s.start_ns) / 3.6e12 > 40 for s in weekends)


def test_daily_realised_vol_by_hand() -> None:
    # crypto days close at 00:00 UTC: two bars late on day 1, three on day 2, then a gap (left out)
    idx = utc_index(
        pd.to_datetime(
            ["2021-03-01 23:58", "2021-03-01 23:59", "2021-03-02 00:00", "2021-03-02 00:01", "2021-03-02 05:00"],
            utc=True,
        )
    )
    close = np.array([100.0, 101.0, 99.0, 99.5, 120.0])
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    vol = daily_realised_vol(bars, "crypto")
    r = np.diff(np.log(close))
    assert list(vol.index) == [pd.Timestamp("2021-03-01", tz="UTC"), pd.Timestamp("2021-03-02", tz="UTC")]
    assert vol.iloc[0] == pytest.approx(abs(r[0]))
    assert vol.iloc[1] == pytest.approx(np.sqrt(r[1] ** 2 + r[2] ** 2))  # the 5-hour gap's jump is not counted
