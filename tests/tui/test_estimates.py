"""The console's forecasts: a run's ETA and the disk's "full in ..." come from smoothed rates
(`ztb_core.runtime.estimates`, the same reading `ztb watch` alerts on), so they no longer jump with each burst of steps or of checkpoint writes,
and a disk with a large margin of free space is not flagged."""

from __future__ import annotations

import json
import random
from collections import namedtuple
from pathlib import Path

import pytest

from ztb_core.runs import RunWriter
from ztb_core.runtime.config import DiskConfig
from ztb_core.runtime.disk import disk_health
from ztb_core.runtime.estimates import EwmaRate, RateFit, fills_within, fit_fill_rate, seconds_to_full
from ztb_tui.sources import HostSource, RunsSource

GIB = 1 << 30
MIB = 1 << 20
Usage = namedtuple("Usage", "total used free")


def bursty_steps(seed: int = 3, minutes: float = 30.0) -> list[tuple[float, int]]:
    """(time, step) as status.json shows them to a 1 s poll: PPO collects 1,024 steps, then
    updates; rollouts take 4-16 s (evaluations and checkpoints make some longer)."""
    rng = random.Random(seed)
    t, step, out = 0.0, 0, []
    while t < minutes * 60:
        t += rng.uniform(4.0, 16.0)
        step += 1024
        out.append((t, step))
    return out


def two_reading_rates(readings: list[tuple[float, int]]) -> list[float]:
    """The old estimate: the step change between two readings over the time between them."""
    return [(s1 - s0) / (t1 - t0) for (t0, s0), (t1, s1) in zip(readings, readings[1:], strict=False)]


def test_ewma_step_rate_keeps_the_eta_steady_where_the_two_reading_rate_jumps() -> None:
    readings = bursty_steps()
    total = 1_000_000
    true_rate = readings[-1][1] / readings[-1][0]
    ewma = EwmaRate()
    etas = []
    for t, step in readings:
        rate = ewma.update(t, step)
        if t > 180 and rate:  # after three minutes of readings
            etas.append((total - step) / rate)
    old = [(total - s) / r for (_, s), r in zip(readings[1:], two_reading_rates(readings), strict=True)]
    # positive control: the old ETA jumps by more than half between consecutive polls
    assert max(abs(b / a - 1) for a, b in zip(old, old[1:], strict=False)) > 0.5
    # the smoothed ETA moves by under 15 % from one reading to the next, and its rate stays near the truth
    assert max(abs(b / a - 1) for a, b in zip(etas, etas[1:], strict=False)) < 0.15
    assert ewma.rate == pytest.approx(true_rate, rel=0.25)


def test_ewma_rate_follows_a_real_slowdown_within_minutes() -> None:
    ewma = EwmaRate(tau_s=60.0)
    for t in range(0, 600, 5):
        ewma.update(float(t), 100.0 * t)  # 100 steps/s
    assert ewma.rate == pytest.approx(100.0)
    for t in range(600, 900, 5):
        ewma.update(float(t), 60_000 + 25.0 * (t - 600))  # now 25 steps/s
    assert ewma.rate == pytest.approx(25.0, rel=0.05)


def test_ewma_rate_ignores_repeated_readings_and_restarts_after_a_step_back() -> None:
    ewma = EwmaRate()
    assert ewma.update(10.0, 1000) is None  # one reading: no rate yet
    assert ewma.update(20.0, 2000) == pytest.approx(100.0)
    assert ewma.update(20.0, 2000) == pytest.approx(100.0)  # the same status read twice
    assert ewma.update(30.0, 500) is None  # resumed from an older checkpoint: start afresh
    assert ewma.update(40.0, 1500) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="tau_s"):
        EwmaRate(tau_s=0)


def test_runs_source_eta_is_smoothed_over_the_status_polls(artifacts: Path) -> None:
    """The runs list's ETA over a real status.json that moves in bursts (no fps in the status:
    the rate comes from the step changes, as for every run the trainer writes)."""
    writer = RunWriter.create("train", {"seed": 1}, run_id="train-bursty", artifacts=artifacts, total_steps=1_000_000)
    status_path = writer.dir / "status.json"
    clock = [0.0]
    src = RunsSource(artifacts, now=lambda: clock[0], stale_after_s=1e9)
    etas = []
    for t, step in bursty_steps(seed=5, minutes=10):
        status = json.loads(status_path.read_text())
        status.update(state="running", step=step, step_updated_at=t, updated_at=t)
        status.pop("fps", None)
        status_path.write_text(json.dumps(status))
        clock[0] = t
        (row,) = src.poll()
        if t > 180 and row.eta_s is not None:
            etas.append(row.eta_s)
    assert len(etas) > 20
    assert max(abs(b / a - 1) for a, b in zip(etas, etas[1:], strict=False)) < 0.15
    writer.close("stopped")


# ---- disk --------------------------------------------------------------------------------


def checkpoint_writes(free0: float, minutes: float = 30.0, poll_s: float = 2.0) -> list[tuple[float, int]]:
    """Free space seen every `poll_s` by a console started 20 s before a checkpoint: a 200 MiB
    checkpoint every 5 minutes, logs in between (about 0.7 MiB/s on average: a 75 GiB disk fills
    in about 32 h)."""
    out, free, t = [], free0, 280.0
    while t <= 280 + minutes * 60:
        if t > 0 and t % 300 < poll_s:
            free -= 200 * MIB
        free -= 2_000 * poll_s
        out.append((t, int(free)))
        t += poll_s
    return out


def two_reading_seconds_to_full(history: list[tuple[float, int]], t: float, free: int, window_s: float) -> float | None:
    """The forecast the console and `ztb watch` once made (the positive control): the fall from the
    oldest reading of the window to now, over the time between them."""
    recent = [(ts, f) for ts, f in history if t - window_s <= ts < t]
    if not recent:
        return None
    t0, f0 = min(recent)
    rate = (f0 - free) / (t - t0) if t - t0 >= 1.0 else 0.0
    return free / rate if rate > 0 else None


def test_a_roomy_disk_with_bursty_writes_is_not_flagged_and_its_forecast_holds_still() -> None:
    cfg = DiskConfig()
    samples = checkpoint_writes(75 * GIB)
    old_forecasts, forecasts = [], []
    for i, (t, free) in enumerate(samples):
        # positive control: the two-reading rate swung by more than tenfold on this disk
        old = two_reading_seconds_to_full(samples[:i], t, free, cfg.growth_window_min * 60.0)
        if old is not None:
            old_forecasts.append(old)
        new = disk_health(Path("."), samples[:i], cfg, now=t, usage=lambda p, f=free: Usage(100 * GIB, 0, f))
        assert new.level == "ok", (t, new.reasons)
        if new.seconds_to_full is not None:
            forecasts.append(new.seconds_to_full)
    assert min(old_forecasts) < cfg.warn_hours_to_full * 3600  # the old reading would have warned
    assert max(old_forecasts) / min(old_forecasts) > 10  # and its forecast swung
    assert forecasts and max(forecasts) / min(forecasts) < 3  # it swung 40-fold (21 h to 835 h)


def test_the_host_source_forecasts_from_the_readings_it_polled() -> None:
    """The console's disk reading is `disk_health` over the free space it has polled: quiet on the
    bursty roomy disk, a time to full once its readings span ten minutes."""
    samples = iter(checkpoint_writes(75 * GIB))
    current: list[tuple[float, int]] = []

    def usage(_path):
        return Usage(100 * GIB, 0, current[-1][1])

    host = HostSource(
        gpu=FakeNoGpu(), cpu=lambda: 0.0, disk_path=Path("."), now=lambda: current[-1][0], disk_usage=usage
    )
    readings = []
    for sample in samples:
        current.append(sample)
        readings.append(host._disk())
    assert all(r is not None and r.level == "ok" for r in readings)
    assert readings[10].seconds_to_full is None  # twenty seconds of readings: no forecast yet
    assert readings[-1].seconds_to_full == pytest.approx(75 * GIB / (0.7 * MIB), rel=0.35)


class FakeNoGpu:
    available = False
    reason = "no GPU in this test"

    def gpus(self) -> list:
        return []


def test_a_disk_falling_fast_is_flagged_with_its_time_to_full() -> None:
    cfg = DiskConfig()
    rng = random.Random(1)
    # 20 GiB free, losing 1 MiB/s with noise: full in about 5.7 h, inside the 24 h warning horizon
    samples = [(float(t), int(20 * GIB - MIB * t + rng.uniform(-50, 50) * MIB)) for t in range(0, 1200, 2)]
    t, free = samples[-1]
    health = disk_health(Path("."), samples[:-1], cfg, now=t, usage=lambda p: Usage(100 * GIB, 0, free))
    assert health.level == "warn" and any("full within 24 h" in r for r in health.reasons)
    assert health.seconds_to_full == pytest.approx(free / MIB, rel=0.05)


def test_fit_needs_enough_readings_and_span() -> None:
    assert fit_fill_rate([(0.0, 100), (1.0, 90)], now=1.0, window_s=1800) is None
    short = [(float(t), 1000 - t) for t in range(0, 100, 2)]
    assert fit_fill_rate(short, now=98.0, window_s=1800) is None  # under ten minutes of readings
    steady = [(float(t), 10_000 - t) for t in range(0, 700, 2)]
    fit = fit_fill_rate(steady, now=698.0, window_s=1800)
    assert fit is not None and fit.rate == pytest.approx(1.0) and fit.se == pytest.approx(0.0, abs=1e-9)
    assert seconds_to_full(500, fit) == pytest.approx(500.0)
    assert seconds_to_full(500, RateFit(rate=-1.0, se=0.0, span_s=600, n=300)) is None  # space growing


def test_fills_within_asks_the_slow_end_of_the_rate() -> None:
    sure = RateFit(rate=1.0, se=0.1, span_s=600, n=300)
    unsure = RateFit(rate=1.0, se=0.6, span_s=600, n=300)  # two standard errors reach zero
    assert fills_within(1000, sure, horizon_s=2000)  # 1000 / 0.8 = 1250 s
    assert not fills_within(1000, sure, horizon_s=1000)
    assert not fills_within(1000, unsure, horizon_s=1e9)
    assert not fills_within(1000, None, horizon_s=1e9)
