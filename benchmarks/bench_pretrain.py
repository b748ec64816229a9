"""Pretraining pipeline benchmark.

1. Window-index build on 3,100,000 M1 rows (target < 1 s; an earlier system took 22 s).
2. Batches/s the data pipeline delivers vs batches/s the model consumes on CPU (target: >= 5x).
3. Training samples/s on CPU (default config).
4. Frozen-encoder hand-off: bars/s of `EncoderBundle.embed_bars` (prefetching windows in a thread,
   inference mode) next to the previous sequential loop on the same bars, and the embedding cache:
   cold (compute + atomic write) vs warm (load) for the same encoder, data and windows.
5. CUDA: it/s at batch 64 with 16-mixed and bf16-mixed, default and GPU-sized model (an earlier
   system reached 7-9 it/s); each row says "skipped: ..." with the reason where there is no CUDA.

Run: .venv/bin/python benchmarks/bench_pretrain.py [--rows 3100000] [--embed-rows 40000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ztb_core.config import config_to_dict
from ztb_core.data.schema import index_ns
from ztb_core.data.splits import SplitConfig
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.manifest import sha256_file
from ztb_core.pretrain.config import PretrainConfig
from ztb_core.pretrain.dataset import RandomMaskBatches
from ztb_core.pretrain.embed_cache import cached_embeddings
from ztb_core.pretrain.export import embed_tokens, load_encoder, save_encoder
from ztb_core.pretrain.losses import total_loss
from ztb_core.pretrain.module import PretrainModule, inputs
from ztb_core.pretrain.prepare import build_bars, prepare
from ztb_core.pretrain.windows import build_window_index, cached_window_index

INDEX_TARGET_S = 1.0
INDEX_REFERENCE_S = 22.0
PIPELINE_RATIO_TARGET = 5.0
CUDA_REFERENCE = "7-9 it/s"


def bench_index(rows: int) -> None:
    cfg = PretrainConfig()
    print(f"== window index on {rows:,} M1 rows ({cfg.window.timeframes}, lengths {cfg.window.lengths()})")
    t0 = time.perf_counter()
    m1 = generate_market(SyntheticConfig(n_bars=rows, seed=0, market="fx"))
    print(f"   generate synthetic M1:     {time.perf_counter() - t0:6.2f} s (setup, not timed against the target)")
    t0 = time.perf_counter()
    bars = build_bars(m1, cfg.window.timeframes, "fx")
    print(f"   resample + channels:       {time.perf_counter() - t0:6.2f} s")
    m1_ns = index_ns(m1.index)
    sp = cfg.splits
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        idx = build_window_index(m1_ns, bars, cfg.window.lengths(), sp.train, sp.val, sp.test, sp.embargo)
        best = min(best, time.perf_counter() - t0)
    verdict = "PASS" if best < INDEX_TARGET_S else "FAIL"
    print(
        f"   window-index build:        {best:6.3f} s  ({len(idx.anchors):,} anchors)  target < {INDEX_TARGET_S:.0f} s "
        f"[{verdict}]; earlier system {INDEX_REFERENCE_S:.0f} s -> {INDEX_REFERENCE_S / best:.0f}x faster"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cached_window_index(Path(tmp), m1_ns, bars, "fx", cfg.window.lengths(), sp.train, sp.val, sp.test, sp.embargo)
        t0 = time.perf_counter()
        _, _, hit = cached_window_index(
            Path(tmp), m1_ns, bars, "fx", cfg.window.lengths(), sp.train, sp.val, sp.test, sp.embargo
        )
        print(f"   cached index load (hash + read): {time.perf_counter() - t0:6.3f} s (hit={hit})")


def bench_cpu() -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PretrainConfig(cache_dir=tmp)
        prepared = prepare(cfg)
    bs = cfg.trainer.batch_size
    print(
        f"== CPU pipeline vs model (default config: batch {bs}, {len(cfg.window.timeframes)} timeframes, "
        f"d_model {cfg.model.d_model}, {cfg.model.n_layers} layers, torch threads {torch.get_num_threads()})"
    )
    pos = prepared.split_positions("train")
    ds = RandomMaskBatches(prepared.arrays, pos, cfg.mask, 0)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(pos), bs).tolist() for _ in range(200)]
    ds[batches[0]]
    t0 = time.perf_counter()
    for b in batches:
        ds[b]
    pipe = len(batches) / (time.perf_counter() - t0)
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    fixed = ds[batches[0]]
    n = 15
    for i in range(n + 2):
        if i == 2:
            t0 = time.perf_counter()
        recon, _ = module.model(inputs(fixed, module.timeframes))
        loss, _ = total_loss(recon, fixed, module.timeframes, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model_rate = n / (time.perf_counter() - t0)
    ratio = pipe / model_rate
    verdict = "PASS" if ratio >= PIPELINE_RATIO_TARGET else "FAIL"
    print(f"   pipeline delivers:   {pipe:8.1f} batches/s (1 process, no workers)")
    print(f"   model consumes:      {model_rate:8.2f} batches/s (forward + losses + backward + AdamW)")
    print(f"   ratio:               {ratio:8.1f}x  target >= {PIPELINE_RATIO_TARGET:.0f}x [{verdict}]")
    print(f"   training samples/s:  {model_rate * bs:8.1f} (CPU, batch {bs})")


def _old_embed_loop(bundle, m1, batch_size: int = 1024) -> np.ndarray:
    """The embed_bars loop before issue 13 (sequential window building, no_grad): the reference."""
    wb = bundle.window_builder(m1, "fx")
    out = np.zeros((len(m1), bundle.embedding_dim), np.float32)
    rows = np.flatnonzero(wb.valid)
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            r = rows[i : i + batch_size]
            xs = {tf: torch.from_numpy(x) for tf, x in wb.inputs(r).items()}
            out[r] = embed_tokens(bundle.model, xs).float().numpy()
    return out


def bench_embed(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # all rows are "train": only the encoder's architecture and statistics matter for speed
        cfg = PretrainConfig(cache_dir=tmp, splits=SplitConfig(train=1.0, val=0.0, test=0.0))
        m1 = generate_market(SyntheticConfig(n_bars=rows, seed=0, market="fx"))
        prepared = prepare(cfg, m1=m1)
        module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict())
        path = save_encoder(module, Path(tmp) / "enc")
        bundle = load_encoder(path)
        print(
            f"== frozen-encoder embeddings, default encoder ({len(cfg.window.timeframes)} timeframes, "
            f"d_model {cfg.model.d_model}), {rows:,} synthetic FX bars, torch threads {torch.get_num_threads()}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        n = int(bundle.valid_rows(m1, "fx").sum())  # rows past the longest window's warm-up are embedded
        t0 = time.perf_counter()
        ref = _old_embed_loop(bundle, m1)
        old = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        emb = bundle.embed_bars(m1, "fx")
        new = n / (time.perf_counter() - t0)
        assert np.allclose(ref, emb, atol=1e-5), "embed_bars differs from the reference loop"
        print(f"   previous loop:            {old:9,.0f} bars/s (reference)")
        print(f"   embed_bars (now):         {new:9,.0f} bars/s ({new / old:.2f}x)")
        sha = sha256_file(path)
        t0 = time.perf_counter()
        cached_embeddings(bundle, sha, m1, "fx", cache_dir=Path(tmp) / "emb")
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, _, hit = cached_embeddings(bundle, sha, m1, "fx", cache_dir=Path(tmp) / "emb")
        warm = time.perf_counter() - t0
        print(f"   cache cold (compute+write): {cold:7.2f} s;  warm (load): {warm:6.2f} s (hit={hit})")


def _skip_reason() -> str | None:
    if torch.cuda.is_available():
        return None
    return "no CUDA device on this machine (this task was not given a GPU machine)"


def bench_cuda() -> None:
    print("== CUDA: it/s at batch 64 (earlier system: " + CUDA_REFERENCE + ")")
    models = {"default": {}, "GPU-sized (d256, 6 layers)": {"d_model": 256, "n_heads": 8, "n_layers": 6, "d_ff": 1024}}
    why = _skip_reason()
    for precision in ("16-mixed", "bf16-mixed"):
        for name, over in models.items():
            if why:
                print(f"   {precision:10s} {name:28s} skipped: {why}")
            else:
                _cuda_row(precision, name, over)


def _cuda_row(precision: str, name: str, over: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PretrainConfig(cache_dir=tmp, model=PretrainConfig().model.model_copy(update=over))
        prepared = prepare(cfg)
    dev = torch.device("cuda")
    module = PretrainModule(config_to_dict(cfg), prepared.arrays.lengths, prepared.stats.to_dict()).to(dev)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    pos = prepared.split_positions("train")
    ds = RandomMaskBatches(prepared.arrays, pos, cfg.mask, 0)
    rng = np.random.default_rng(0)
    n = 60
    batches = [ds[rng.integers(0, len(pos), 64).tolist()] for _ in range(n + 5)]
    for i, b in enumerate(batches):
        if i == 5:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        b = {k: v.to(dev, non_blocking=True) for k, v in b.items()}
        with torch.autocast("cuda", dtype=dtype):
            recon, _ = module.model(inputs(b, module.timeframes))
            loss, _ = total_loss(recon, b, module.timeframes, cfg.loss)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    torch.cuda.synchronize()
    rate = n / (time.perf_counter() - t0)
    print(f"   {precision:10s} {name:28s} {torch.cuda.get_device_name(0)}: {rate:.1f} it/s at batch 64")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3_100_000)
    ap.add_argument("--embed-rows", type=int, default=40_000)
    ap.add_argument("--only", choices=("index", "cpu", "embed", "cuda"), default=None, help="run one section")
    args = ap.parse_args()
    if args.only in (None, "index"):
        bench_index(args.rows)
    if args.only in (None, "cpu"):
        bench_cpu()
    if args.only in (None, "embed"):
        bench_embed(args.embed_rows)
    if args.only in (None, "cuda"):
        bench_cuda()


if __name__ == "__main__":
    main()
