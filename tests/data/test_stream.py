"""Streaming bars: ring buffer policies with exact counts, chunked store reads, chunk-consistent
features, and `ztb train --headless --enable-streaming` end to end (completion, stream metrics,
kill-file stop)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ztb_core.data.features import compute_feature_set
from ztb_core.data.source import DataSourceConfig
from ztb_core.data.store import read_bars, write_bars
from ztb_core.data.stream import (
    CONTEXT_BARS,
    RingBuffer,
    Rows,
    StreamConfig,
    iter_store_chunks,
    stream_feature_rows,
)
from ztb_core.data.synthetic import SyntheticConfig, generate_market

REPO = Path(__file__).resolve().parents[2]


def _rows(start: int, n: int, f: int = 3) -> Rows:
    t = np.arange(start, start + n, dtype=np.int64)
    return Rows(t, t.astype(float), t.astype(float) + 0.5, np.tile(t[:, None], (1, f)).astype(np.float32))


def _wait(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_drop_oldest_fast_producer_slow_consumer_counts_exactly():
    buf = RingBuffer(10, 3, "drop_oldest")
    for k in range(5):  # 20 bars into 10 slots, nobody reading
        assert buf.put(_rows(4 * k, 4))
    assert (buf.pushed, buf.dropped, buf.blocked, buf.size) == (20, 10, 0, 10)
    got = buf.get(3)
    assert got.time.tolist() == [10, 11, 12]  # the oldest survivors, in order
    assert buf.put(_rows(20, 5))  # 7 held + 5 = 12: two more dropped
    assert buf.dropped == 12
    rest = buf.get()
    assert rest.time.tolist() == [15, 16, 17, 18, 19, 20, 21, 22, 23, 24]
    assert (rest.features[:, 1] == rest.time).all() and (rest.close == rest.time + 0.5).all()
    assert buf.consumed == 13 and buf.size == 0
    assert buf.put(_rows(100, 25))  # a push larger than the buffer keeps its newest rows
    assert buf.get().time.tolist() == list(range(115, 125)) and buf.dropped == 27


def test_block_policy_waits_and_loses_nothing():
    buf = RingBuffer(10, 3, "block")
    sent = [_rows(4 * k, 4) for k in range(6)]

    def produce():
        for r in sent:
            buf.put(r)

    th = threading.Thread(target=produce)
    th.start()
    received: list[int] = []
    reads = 0
    while len(received) < 24:
        # the slow consumer reads only once the producer is stuck on a new push (or done)
        _wait(lambda k=reads: buf.blocked > k or not th.is_alive())
        assert buf.waiting or not th.is_alive()
        received += buf.get(4).time.tolist()
        reads += 1
    th.join(5)
    assert received == list(range(24))
    # pushes 3..6 each found the buffer too full (8 held, 4 more do not fit) and waited once
    assert (buf.pushed, buf.consumed, buf.dropped, buf.blocked) == (24, 24, 0, 4)
    assert buf.blocked_s > 0


def test_block_policy_close_releases_a_waiting_producer():
    buf = RingBuffer(4, 1, "block")
    assert buf.put(_rows(0, 4, 1))
    out: list[bool] = []
    th = threading.Thread(target=lambda: out.append(buf.put(_rows(4, 1, 1))))
    th.start()
    _wait(lambda: buf.waiting)
    buf.close()
    th.join(5)
    assert out == [False] and buf.blocked == 1


def test_config_refuses_a_batch_larger_than_the_buffer():
    with pytest.raises(ValueError, match="batch_size"):
        StreamConfig(batch_size=200, capacity_bars=100)


@pytest.fixture
def store(tmp_path: Path) -> tuple[DataSourceConfig, pd.DataFrame]:
    bars = generate_market(SyntheticConfig(n_bars=20_000, seed=3))
    write_bars(bars, "SYN", "M1", tmp_path / "store")
    return DataSourceConfig(kind="store", symbol="SYN", data_dir=str(tmp_path / "store")), bars


def test_chunked_store_read_equals_the_full_read(store):
    src, _ = store
    full = read_bars("SYN", "M1", data_dir=src.data_dir)
    chunks = list(iter_store_chunks(src, chunk_rows=3_000))
    assert len(chunks) == 7
    pd.testing.assert_frame_equal(pd.concat(chunks), full[list(chunks[0].columns)])
    # a time range cuts the same rows as the full read's filters
    start, end = full.index[4321], full.index[15000]
    ranged = src.model_copy(update={"start": start.to_pydatetime(), "end": end.to_pydatetime()})
    got = pd.concat(list(iter_store_chunks(ranged, chunk_rows=3_000)))
    pd.testing.assert_frame_equal(got, full.loc[start : full.index[14999], list(got.columns)])


def test_streamed_features_equal_offline_features(store):
    src, bars = store
    offline = compute_feature_set("technical-66", bars, "fx")
    assert 2_500 < CONTEXT_BARS < 20_000 - 2_500  # chunks of 2,500 bars below: the context spans chunks
    rows = list(stream_feature_rows(iter_store_chunks(src, 2_500), "technical-66", "fx"))
    got = Rows.concat(rows, 66)
    keep = np.flatnonzero(offline.valid)
    assert got.time.tolist() == bars.index.asi8[keep].tolist()
    # equal up to float32 rounding (a few cells of a million differ by one ulp: float64 sums in
    # another order before the cast)
    np.testing.assert_allclose(got.features, offline.values[keep].astype(np.float32), rtol=3e-7, atol=1e-12)
    np.testing.assert_array_equal(got.close, bars["close"].to_numpy()[keep])
    # positive control: without the carried context the chunk starts differ from the offline rows
    alone = [compute_feature_set("technical-66", c, "fx") for c in iter_store_chunks(src, 2_500)]
    assert not all(a.valid.all() for a in alone[1:])


# ---- end to end -----------------------------------------------------------------------------------
TINY = [
    "data.kind=store",
    "data.symbol=SYN",
    "splits.embargo=0",
    "env.lookback=8",
    "env.episode_length=256",
    "ppo.n_envs=2",
    "ppo.n_steps=64",
    "ppo.batch_size=64",
    "ppo.n_epochs=1",
    "ppo.net_arch=[16,16]",
    "checkpoint.every_steps=256",
    "eval.every_steps=0",
    "telemetry_interval_s=0.5",
    "streaming.capacity_bars=2000",
]


def _train(tmp_path: Path, run_id: str, total: int, *flags: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "ztb_core.cli", "train", "--headless", "--no-progress", "--run-id", run_id]
    args += ["--total-timesteps", str(total), *flags]
    for s in TINY:
        args += ["--set", s]
    env = {**os.environ, "ZTB_ARTIFACTS": str(tmp_path / "artifacts"), "ZTB_DATA": str(tmp_path / "store")}
    env["ZTB_KILL"] = str(tmp_path / "global.stop")
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_train_headless_with_streaming_completes_and_writes_stream_metrics(tmp_path, store):
    proc = _train(
        tmp_path,
        "st",
        512,
        "--enable-streaming",
        "--stream-batch-size",
        "64",
        "--stream-buffer-policy",
        "block",
        "--set",
        "forecast.kind=ridge",
    )
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out
    run = tmp_path / "artifacts" / "runs" / "st"
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    rows = [r for r in _jsonl(run / "metrics.jsonl") if r.get("split") == "stream"]
    assert len(rows) == 4  # one per 128-step rollout
    last = rows[-1]
    for key in ("fill", "dropped", "blocked", "bars_per_s", "window_bars"):
        assert key in last
    assert last["dropped"] == 0 and last["blocked"] >= 1  # block: the producer outruns PPO and waits
    assert last["window_bars"] == 2000 and last["consumed"] > 2000  # the window was refreshed
    ready = next(e for e in _jsonl(run / "events.jsonl") if e["event"] == "data_ready")
    assert ready["train_rows"] == 1984  # the first window: 31 batches of 64, the 32nd did not fit
    # a forecast (forecast.kind ridge) is fitted on that first window, the only train bars
    # in memory, and the refreshed windows get its column too (a width mismatch would fail the run);
    # by default the policy sees that column alone
    assert ready["forecast"] == {"kind": "ridge", "train_rows": 1984, "only": True}
    cfg = (run / "config.yaml").read_text()
    assert "buffer_policy: block" in cfg and "enabled: true" in cfg


def test_kill_file_stops_a_streaming_run(tmp_path, store):
    proc = _train(tmp_path, "sk", 10_000_000, "--enable-streaming")
    run = tmp_path / "artifacts" / "runs" / "sk"

    def stepping() -> bool:
        try:
            st = json.loads((run / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return st.get("state") == "running" and st.get("step", 0) >= 256

    _wait(stepping, 180)
    (run / "ztb.stop").write_text("stop\n")
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    st = json.loads((run / "status.json").read_text())
    assert st["state"] == "stopped" and st["step"] % 128 == 0
    rows = [r for r in _jsonl(run / "metrics.jsonl") if r.get("split") == "stream"]
    assert rows and rows[-1]["dropped"] > 0  # drop_oldest (the default) with a producer faster than PPO
