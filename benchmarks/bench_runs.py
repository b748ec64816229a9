"""Run-directory protocol throughput.

Appends 1,000,000 metric lines through `RunWriter.metric`, tails them incrementally in chunks
with `JsonlTail`, and times an incremental poll that finds nothing new on the 1M-line file.
Targets (issue 2): append 1M lines < 10 s; an empty poll < 1 ms.

    python benchmarks/bench_runs.py [--lines N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ztb_core.runs import JsonlTail, RunWriter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZTB_ARTIFACTS"] = tmp
        run = RunWriter.create("bench", {})
        n = args.lines
        # a concurrent reader polls while the writer appends, as the console does
        tail = JsonlTail(run.dir / "metrics.jsonl")
        seen = 0
        stop = threading.Event()
        chunk_sizes: list[int] = []

        def reader() -> None:
            nonlocal seen
            while not stop.is_set():
                got = len(tail.poll().records)
                if got:
                    chunk_sizes.append(got)
                seen += got
                time.sleep(0.05)

        t = threading.Thread(target=reader)
        t.start()
        t0 = time.perf_counter()
        for i in range(n):
            run.metric(i, "train", {"loss": 1.0 / (i + 1), "policy_loss": -0.01, "fps": 2400.0})
        run.metrics.flush()
        append_s = time.perf_counter() - t0
        stop.set()
        t.join()
        run.close("completed")
        size_mb = (run.dir / "metrics.jsonl").stat().st_size / 2**20

        # tail the whole file from scratch in chunks (a console attaching late)
        fresh = JsonlTail(run.dir / "metrics.jsonl", max_read_bytes=4 << 20)
        t0 = time.perf_counter()
        total = 0
        while True:
            got = len(fresh.poll().records)
            if not got:
                break
            total += got
        tail_s = time.perf_counter() - t0
        assert total == n, (total, n)

        lat = []
        for _ in range(2000):
            t1 = time.perf_counter()
            fresh.poll()
            lat.append(time.perf_counter() - t1)
        p50, p99 = statistics.median(lat) * 1e3, sorted(lat)[int(0.99 * len(lat))] * 1e3

    print(f"metrics file: {n:,} lines, {size_mb:.1f} MiB")
    print(
        f"append: {n / append_s:,.0f} lines/s ({append_s:.2f} s for {n:,}; target < 10 s) "
        f"{'PASS' if append_s < 10 else 'FAIL'}"
    )
    print(f"concurrent reader during append: {seen:,} lines in {len(chunk_sizes)} polls")
    print(f"tail (fresh reader, 4 MiB chunks): {total / tail_s:,.0f} lines/s ({tail_s:.2f} s)")
    print(
        f"incremental poll with nothing new on the {n:,}-line file: p50 {p50:.4f} ms, p99 {p99:.4f} ms "
        f"(target < 1 ms) {'PASS' if p99 < 1 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
