"""Streaming data: bars/s through the ring buffer and peak RSS, against the default (load-all) path.

Target (issue 15, item 4): memory stays flat however long the history is. Method: a synthetic M1
store of `--bars` bars (a size the default path handles) and one 10x larger, in a temp folder.
Each measurement runs in a fresh subprocess and reports its peak RSS (VmHWM):

* default  — what `prepare_splits` does: load every bar, compute technical-66 over all of them;
* stream   — `StreamProducer` over the train part with a consumer draining the buffer as fast as
             it can (the trainer takes the window once per rollout, so this is the buffer's ceiling),
             one full pass; bars/s = bars consumed / seconds.

The default path's peak RSS on the small store is the "budget"; the streaming path on the 10x store
should stay near it (flat), the default path on the 10x store grows ~10x (run with --default-large
to measure that too; it needs the memory).

    .venv/bin/python benchmarks/bench_stream.py --bars 200000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peak_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _rss_mb() -> float:
    """Current RSS (Linux /proc): the libraries loaded before the measured work."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(mode: str, data_dir: str, symbol: str, policy: str) -> dict:
    from ztb_core.data.features import compute_feature_set, feature_names
    from ztb_core.data.source import DataSourceConfig, load_bars
    from ztb_core.data.splits import SplitConfig
    from ztb_core.data.stream import StreamConfig, StreamProducer

    src = DataSourceConfig(kind="store", symbol=symbol, data_dir=data_dir)
    base = _rss_mb()
    t0 = time.perf_counter()
    if mode == "default":
        bars = load_bars(src)
        fm = compute_feature_set("technical-66", bars, "fx")
        n = int(fm.valid.sum())
    else:
        cfg = StreamConfig(enabled=True, batch_size=64, buffer_policy=policy, capacity_bars=50_000)
        prod = StreamProducer(src, SplitConfig(embargo=0), "technical-66", cfg, len(feature_names("technical-66")))
        prod.start()
        n = 0
        while prod.passes == 0 and prod.error is None:
            n += len(prod.buffer.get())
            time.sleep(0.01)
        n += len(prod.buffer.get())
        prod.stop()
        if prod.error is not None:
            raise prod.error
        extra = {"dropped": prod.buffer.dropped, "blocked": prod.buffer.blocked}
    secs = time.perf_counter() - t0
    out = {"mode": mode, "bars": n, "seconds": round(secs, 2), "bars_per_s": round(n / secs), "peak_mb": _peak_mb()}
    out["base_mb"] = base
    if mode != "default":
        out.update(extra)
    return out


def run_child(*args: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=200_000, help="bars of the small store (the large one: 10x)")
    ap.add_argument("--factor", type=int, default=10, help="the large store is this many times the small one")
    ap.add_argument("--default-large", action="store_true", help="also run the default path on the 10x store")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "DIR", "SYMBOL", "POLICY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    from ztb_core.data.store import write_bars
    from ztb_core.data.synthetic import SyntheticConfig, generate_market

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (above about 0.5 per CPU, figures read high)")
    with tempfile.TemporaryDirectory(prefix="ztb-bench-stream-") as tmp:
        for sym, n in (("SMALL", args.bars), ("LARGE", args.factor * args.bars)):
            t0 = time.perf_counter()
            write_bars(generate_market(SyntheticConfig(n_bars=n, seed=1)), sym, "M1", tmp)
            size = (Path(tmp) / sym / "M1.parquet").stat().st_size / 1e6
            print(f"store {sym}: {n:,} bars, {size:.1f} MB parquet (generated in {time.perf_counter() - t0:.1f}s)")
        rows = [run_child("default", tmp, "SMALL", "-")]
        if args.default_large:
            rows.append(run_child("default", tmp, "LARGE", "-"))
        rows.append(run_child("stream", tmp, "SMALL", "block"))
        rows.append(run_child("stream", tmp, "LARGE", "block"))
        rows.append(run_child("stream", tmp, "LARGE", "drop_oldest"))
    budget = rows[0]["peak_mb"]
    print(f"\nbudget = default path's peak RSS on the small store: {budget:.0f} MB")
    print("work MB = peak RSS - RSS after the imports (what the data path itself added)")
    print(f"{'path':<26}{'bars':>12}{'s':>8}{'bars/s':>10}{'peak MB':>9}{'work MB':>9}{'vs budget':>10}  notes")
    names = iter(
        ["default, small", *([f"default, {args.factor}x"] if args.default_large else []), "stream block, small"]
        + [f"stream block, {args.factor}x", f"stream drop_oldest, {args.factor}x"]
    )
    for r in rows:
        note = f"dropped {r['dropped']:,}, blocked {r['blocked']:,}" if r["mode"] == "stream" else ""
        print(
            f"{next(names):<26}{r['bars']:>12,}{r['seconds']:>8.1f}{r['bars_per_s']:>10,}{r['peak_mb']:>9.0f}"
            f"{r['peak_mb'] - r['base_mb']:>9.0f}"
            f"{r['peak_mb'] / budget:>9.2f}x  {note}"
        )
    print("target: the streaming path's peak RSS on the 10x store stays near the budget (flat)")


if __name__ == "__main__":
    main()
