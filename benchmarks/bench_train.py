"""Benchmark of the main job (`ztb train`), each figure next to its target in the same run:

1. environment steps/s (one env, technical-66, 32-bar lookback, random actions) vs
   gym-anytrading's ForexEnv on the same bars (target: >= 2x);
2. PPO fps with the default config and the share of wall time spent inside the env
   (targets: >= 2,000 fps, env share < 10%);
3. checkpoints: median time the training loop blocks (target < 50 ms), save time, size, ratio;
4. stop latency: kill-file creation to process exit, final checkpoint included (target < 5 s);
5. PPO fps before / after the rollout speed-ups, in one run, interleaved (`--only speed`):
   "before" is stable-baselines3's own path (DummyVecEnv's per-step deepcopy of the infos,
   torch.distributions' argument checks) with the old default's 4 envs x 8,192 steps, "old default" the
   same shape with today's trainer, "default" today's config (16 envs x 2,048 steps: the same 32,768
   samples per update, a quarter of the forward passes; target >= 10,000 fps on 2 cores).
   Each is run `--speed-repeats` times in turn; the median fps and the median of each round's
   ratio to that round's "before" are printed (on a shared machine the absolute figures move with
   the load, the paired ratios much less).

gym-anytrading is installed for this benchmark only, outside the project's dependencies:
    .venv/bin/pip install --no-deps --target benchmarks/.venv-ref gym-anytrading
Without it the ForexEnv column is skipped with a message.

Usage: .venv/bin/python benchmarks/bench_train.py [--ppo-steps 40960] [--env-steps 200000]
       .venv/bin/python benchmarks/bench_train.py --only speed [--speed-steps 65536] [--speed-repeats 3]
       .venv/bin/python benchmarks/bench_train.py --encoder --only encoder [--encoder-steps 8192]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "benchmarks" / ".venv-ref"
console = Console()
rows: list[tuple[str, str, str, str]] = []


def verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"


def bench_env(n_steps: int) -> None:
    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.env import TradingEnv
    from ztb_core.rl.market import prepare_market

    cfg = load_config(TrainConfig)
    m = prepare_market(cfg, "train")
    # the reference shape: technical-66 with a 32-bar window (the default config uses 8)
    env = TradingEnv(
        m.features, m.open, m.close, cfg.env.model_copy(update={"episode_length": 10_000_000, "lookback": 32})
    )
    acts = np.random.default_rng(0).integers(0, 3, n_steps).tolist()

    def run_ours() -> float:
        env.reset(seed=0)
        t0 = time.perf_counter()
        for a in acts:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        return n_steps / (time.perf_counter() - t0)

    ours = max(run_ours() for _ in range(3))
    console.print(f"TradingEnv: obs {env.observation_space.shape}, {ours:,.0f} steps/s")
    ref = None
    if REF.is_dir():
        sys.path.insert(0, str(REF))
    try:
        import pandas as pd
        from gym_anytrading.envs import ForexEnv

        df = pd.DataFrame({"Close": m.close, "Open": m.open})
        n = min(len(df), n_steps + 64)

        def run_ref() -> float:
            fx = ForexEnv(df.iloc[:n].reset_index(drop=True), window_size=32, frame_bound=(32, n))
            fx.reset(seed=0)
            k = 0
            t0 = time.perf_counter()
            for a in acts[: n - 32 - 1]:
                _, _, term, trunc, _ = fx.step(a % 2)
                k += 1
                if term or trunc:
                    break
            return k / (time.perf_counter() - t0)

        ref = max(run_ref() for _ in range(3))
        console.print(f"gym-anytrading ForexEnv: {ref:,.0f} steps/s")
    except ImportError as exc:
        console.print(
            f"[yellow]gym-anytrading not installed ({exc}); skipping the ForexEnv column. Install it for the "
            f"benchmark only: .venv/bin/pip install --no-deps --target benchmarks/.venv-ref gym-anytrading[/]"
        )
    if ref:
        rows.append(
            (
                "env steps/s (technical-66, lookback 32)",
                f"{ours:,.0f}  (ForexEnv {ref:,.0f}, {ours / ref:.1f}x)",
                ">= 2x ForexEnv",
                verdict(ours >= 2 * ref),
            )
        )
    else:
        rows.append(
            ("env steps/s (technical-66, lookback 32)", f"{ours:,.0f}", ">= 2x ForexEnv", "[yellow]no reference[/]")
        )


def bench_ppo(steps: int, art: Path) -> None:
    from ztb_core.config import load_config
    from ztb_core.rl import env as env_mod
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.trainer import run_training

    os.environ["ZTB_ARTIFACTS"] = str(art)
    os.environ["ZTB_KILL"] = str(art / "none.stop")
    cfg = load_config(TrainConfig, None, [f"total_timesteps={steps}", "eval.every_steps=0"])
    spent = [0.0]
    real_step = env_mod.TradingEnv.step

    def timed(self, action):
        t0 = time.perf_counter()
        out = real_step(self, action)
        spent[0] += time.perf_counter() - t0
        return out

    env_mod.TradingEnv.step = timed
    try:
        t0 = time.perf_counter()
        out = run_training(cfg, run_id="bench-ppo", progress=False)
    finally:
        env_mod.TradingEnv.step = real_step
    wall = time.perf_counter() - t0
    share = spent[0] / wall
    rows.append(
        (f"PPO fps (default config, {out.step:,} steps)", f"{out.fps:,.0f}", ">= 2,000", verdict(out.fps >= 2000))
    )
    rows.append(
        (
            "env share of wall time",
            f"{share * 100:.1f}%  (whole command {wall:.1f}s incl. data + setup)",
            "< 10%",
            verdict(share < 0.10),
        )
    )
    from ztb_core.manifest import Manifest

    blocks = [b for b in out.block_ms]
    entries = Manifest(out.run_dir / "checkpoints").entries()
    med = statistics.median(blocks)
    rows.append(
        (
            "checkpoint: loop blocked, median",
            f"{med:.2f} ms (max {max(blocks):.2f}, n={len(blocks)})",
            "< 50 ms",
            verdict(med < 50),
        )
    )
    saves = [e["save_seconds"] for e in entries]
    e = entries[-1]
    rows.append(
        (
            "checkpoint: background save (serialise+zstd+fsync)",
            f"{statistics.median(saves) * 1000:.0f} ms median",
            "-",
            "",
        )
    )
    rows.append(
        (
            "checkpoint: size / raw / zstd ratio",
            f"{e['size'] / 1e6:.2f} MB / {e['raw_size'] / 1e6:.2f} MB / {e['ratio']:.3f}",
            "-",
            "",
        )
    )


def bench_stop(art: Path, repeats: int) -> None:
    env = {**os.environ, "ZTB_ARTIFACTS": str(art), "ZTB_KILL": str(art / "none.stop")}
    lat = []
    for i in range(repeats):
        rid = f"bench-stop-{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ztb_core.cli", "train", "--headless", "--no-progress", "--run-id", rid],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        status = art / "runs" / rid / "status.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                st = json.loads(status.read_text())
                if st.get("state") == "running" and st.get("step", 0) >= 3000 + 1000 * i:
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.05)
        t0 = time.monotonic()
        (art / "runs" / rid / "ztb.stop").write_text("bench\n")
        rc = proc.wait(timeout=60)
        lat.append(time.monotonic() - t0)
        st = json.loads(status.read_text())
        ok = rc == 0 and st["state"] == "stopped"
        console.print(
            f"stop {i}: {lat[-1]:.2f}s, exit {rc}, state {st['state']}, step {st['step']}{'' if ok else '  [red]NOT CLEAN[/]'}"
        )
    rows.append(
        (
            "stop latency: kill-file -> exit (final ckpt incl.)",
            f"{max(lat):.2f} s max of {repeats} (median {statistics.median(lat):.2f})",
            "< 5 s",
            verdict(max(lat) < 5.0),
        )
    )


# The default before 2026-12-08: 4 environments of 8,192 steps, the same 32,768 samples per update
# as today's 16 of 2,048 (tests/rl/test_ppo_speed.py keeps the two in step).
OLD_SHAPE = ("ppo.n_envs=4", "ppo.n_steps=8192")


def bench_speed(steps: int, repeats: int, art: Path) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from ztb_core.config import load_config
    from ztb_core.rl import trainer
    from ztb_core.rl.config import TrainConfig

    os.environ["ZTB_ARTIFACTS"] = str(art)
    os.environ["ZTB_KILL"] = str(art / "none.stop")
    sets = [f"total_timesteps={steps}", "eval.every_steps=0", f"checkpoint.every_steps={10 * steps}"]
    fast_vec, unvalidated = trainer.FreshInfoDummyVecEnv, trainer.unvalidated_distributions
    before, old, default = "before (SB3 path, 4 x 8,192)", "old default (4 x 8,192)", "default (16 x 2,048)"
    variants: dict[str, tuple[tuple[str, ...], bool]] = {  # name: (overrides, speed-ups on)
        before: (OLD_SHAPE, False),
        old: (OLD_SHAPE, True),
        default: ((), True),
    }
    fps: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats):
        for i, (name, (shape, fast)) in enumerate(variants.items()):
            # "before": stable-baselines3's DummyVecEnv (deepcopy of the infos) and argument checks on
            trainer.FreshInfoDummyVecEnv = fast_vec if fast else DummyVecEnv  # type: ignore[misc,assignment]
            trainer.unvalidated_distributions = unvalidated if fast else contextlib.nullcontext  # type: ignore[assignment]
            try:
                cfg = load_config(TrainConfig, None, [*sets, *shape])
                out = trainer.run_training(cfg, run_id=f"bench-speed-{r}-{i}", progress=False)
            finally:
                trainer.FreshInfoDummyVecEnv, trainer.unvalidated_distributions = fast_vec, unvalidated  # type: ignore[misc]
            fps[name].append(out.fps)
            console.print(f"round {r}: {name}: {out.step:,} steps at {out.fps:,.0f} fps")
    # the ratio to the "before" run of the same round: the load of a shared machine moves between
    # rounds more than within one, so paired ratios are steadier than a ratio of medians
    for name, got in fps.items():
        ratios = [x / b for x, b in zip(got, fps[before], strict=True)]
        spread = ", ".join(f"{x:,.0f}" for x in got)
        per_round = ", ".join(f"{x:.2f}" for x in ratios)
        rows.append(
            (
                f"PPO fps: {name}",
                f"{statistics.median(got):,.0f} median ({spread})",
                f"{statistics.median(ratios):.2f}x of before (rounds: {per_round})",
                "",
            )
        )
    got = statistics.median(fps[default])
    rows.append(("PPO fps: the default config", f"{got:,.0f}", ">= 10,000 on 2 cores", verdict(got >= 10_000)))


def bench_encoder(steps: int, finetune_steps: int, n_bars: int, art: Path) -> None:
    from ztb_core.config import config_to_dict, load_config
    from ztb_core.pretrain.config import PretrainConfig
    from ztb_core.pretrain.export import load_encoder, save_encoder
    from ztb_core.pretrain.module import PretrainModule
    from ztb_core.pretrain.prepare import prepare
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.trainer import run_training
    from ztb_core.runs import RunReader

    os.environ["ZTB_ARTIFACTS"] = str(art)
    os.environ["ZTB_KILL"] = str(art / "none.stop")
    # the default pretrain architecture (configs/pretrain.yaml defaults); statistics from a small sample
    pcfg = load_config(PretrainConfig, None, ["data.synthetic.n_bars=200000", f"cache_dir={art / 'cache'}"])
    p = prepare(pcfg)
    enc = save_encoder(PretrainModule(config_to_dict(pcfg), p.arrays.lengths, p.stats.to_dict()), art / "encoder")
    bundle = load_encoder(enc)
    n_params = sum(t.numel() for t in bundle.model.parameters())
    console.print(
        f"encoder: timeframes {bundle.timeframes}, lengths {bundle.lengths}, D={bundle.embedding_dim}, "
        f"{n_params:,} parameters (decoders included)"
    )
    import torch

    threads = torch.get_num_threads()  # what a fresh `ztb train` process starts with (training sets ppo.torch_threads)
    base = [f"data.synthetic.n_bars={n_bars}", "eval.every_steps=0", f"checkpoint.every_steps={10 * steps}"]
    fps: dict[str, float] = {}
    for mode, total in (("none", steps), ("frozen", steps), ("finetune", finetune_steps)):
        extra = [] if mode == "none" else [f"encoder.path={enc}", f"encoder.mode={mode}"]
        cfg = load_config(TrainConfig, None, [*base, f"total_timesteps={total}", *extra])
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        out = run_training(cfg, run_id=f"bench-enc-{mode}", progress=False)
        wall = time.perf_counter() - t0
        ready = next(e for e in RunReader(out.run_dir).events() if e.get("event") == "data_ready")
        fps[mode] = out.fps
        console.print(
            f"encoder {mode}: {out.step:,} steps at {out.fps:,.0f} fps; data {ready['seconds']:.1f}s "
            f"({ready['n_features']} features/bar), command {wall:.1f}s"
        )
        label = {
            "none": "PPO fps, no encoder (same bars)",
            "frozen": "PPO fps, frozen encoder",
            "finetune": "PPO fps, fine-tuned encoder",
        }[mode]
        note = f"{out.fps:,.0f}"
        if mode != "none":
            note += f"  ({out.fps / fps['none']:.2f}x of no encoder)"
        if mode == "frozen":
            note += f"; embeddings of {n_bars:,} bars precomputed in {ready['seconds']:.1f}s (data step)"
        # frozen: the PPO target still holds (the wider observation costs the MLP a little);
        # finetune: no target, the reference figure for a transformer in PPO's loop
        target = {"none": ">= 2,000", "frozen": ">= 2,000", "finetune": "ref. ~90-150"}[mode]
        ok = {"none": out.fps >= 2000, "frozen": out.fps >= 2000, "finetune": None}[mode]
        rows.append((label, note, target, "" if ok is None else verdict(ok)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-steps", type=int, default=200_000)
    ap.add_argument("--ppo-steps", type=int, default=40_960)
    ap.add_argument("--stop-repeats", type=int, default=2)
    ap.add_argument(
        "--speed-steps", type=int, default=65_536, help="steps per run of the before/after rows (2 rollouts)"
    )
    ap.add_argument("--speed-repeats", type=int, default=3, help="runs of each before/after variant, interleaved")
    ap.add_argument("--only", choices=("env", "ppo", "stop", "encoder", "speed"), help="run one part only")
    ap.add_argument("--encoder", action="store_true", help="also measure PPO with a Stage-1 encoder (frozen, finetune)")
    ap.add_argument("--encoder-steps", type=int, default=8192, help="PPO steps of the no-encoder and frozen rows")
    ap.add_argument("--finetune-steps", type=int, default=4096, help="PPO steps of the fine-tune row (2 rollouts)")
    ap.add_argument("--encoder-bars", type=int, default=60_000, help="synthetic M1 bars of the encoder rows")
    args = ap.parse_args()
    console.print(f"bench_train: {os.cpu_count()} CPU cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="ztb-bench-train-") as tmp:
        art = Path(tmp) / "artifacts"
        if args.only in (None, "env"):
            bench_env(args.env_steps)
        if args.only in (None, "ppo"):
            bench_ppo(args.ppo_steps, art)
        if args.only in (None, "stop"):
            bench_stop(art, args.stop_repeats)
        if args.only in (None, "speed"):
            bench_speed(args.speed_steps, args.speed_repeats, art)
        if args.encoder or args.only == "encoder":
            bench_encoder(args.encoder_steps, args.finetune_steps, args.encoder_bars, art)
    table = Table(title="ztb train benchmark")
    for col in ("measure", "result", "target", ""):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)


if __name__ == "__main__":
    main()
