"""Run folders written by the real commands, the way a user makes them: a tiny `ztb train
--headless`, `ztb eval` on it, a two-trial `ztb tune`, a `ztb pretrain --fast-dev-run` and a
few-step pretrain, and two short `ztb live --dry-run` runs against the loopback emulator (one
trading, one whose policy never gets enough history to decide).

Built once per test session (`real_runs` fixture) and read by the console tests, so the views are
checked against what the commands actually write, not against hand-written fixtures. Also runnable
by hand: `python tests/tui/real_runs.py <artifacts>` builds the same folders there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TRAIN = "train-real"
EVAL = "eval-real"
TUNE = "tune-real"
PRETRAIN_FDR = "pretrain-fdr"
PRETRAIN = "pretrain-real"
LIVE = "live-real"
LIVE_NOT_READY = "live-notready"

#: tiny but complete PPO settings: 128-step rollouts, an evaluation and a checkpoint every 256 steps
TRAIN_SETS = [
    "data.synthetic.n_bars=12000",
    "splits.embargo=0",
    "env.lookback=8",
    "env.episode_length=256",
    "ppo.n_envs=2",
    "ppo.n_steps=64",
    "ppo.batch_size=64",
    "ppo.n_epochs=2",
    "ppo.net_arch=[32,32]",
    "eval.max_bars=1000",
    "telemetry_interval_s=0.5",
]
EVAL_SETS = ["bootstrap.n_resamples=100", "monte_carlo.n_paths=100", "baselines.random_seeds=5"]
TUNE_SPACE = {"ppo.n_steps": {"choices": [64, 128]}, "ppo.gamma": {"low": 0.8, "high": 0.99}}
#: three optimizer steps and one validation: every train and validation metric, in seconds
PRETRAIN_SETS = [
    "trainer.max_steps=3",
    "trainer.epoch_steps=3",
    "trainer.val_batches=1",
    "trainer.log_every=1",
    "trainer.batch_size=8",
    "mask.val_samples=64",
    "model.n_layers=1",
]


def _live_sets(base_url: str, slow: int) -> list[str]:
    return [
        f"exchange.api_url={base_url}",
        "exchange.rate_limit.requests_per_s=10000",
        "exchange.rate_limit.burst=10000",
        "exchange.rate_limit.ccxt_rate_limit=false",
        "exchange.timeout_ms=2000",
        "poll_interval_s=0.05",
        "warmup_bars=40",
        "policy.sma_fast=2",
        f"policy.sma_slow={slow}",
        "sizing.min_change_fraction=0",
        "sizing.vol_lookback_bars=30",
    ]


def _sets(values: list[str]) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def ztb(env: dict, *args: str, timeout: float = 300) -> str:
    """The CLI as a user runs it; a failure shows the command's own output."""
    proc = subprocess.run(
        [sys.executable, "-m", "ztb_core.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"ztb {' '.join(args[:2])} exited {proc.returncode}:\n{out[-3000:]}")
    return out


def build(artifacts: Path) -> dict[str, Path]:
    """Every run folder, under `artifacts/runs`; returns run id -> folder."""
    from ztb_core.cli.smoke import sandbox_emulator
    from ztb_core.live.emulator import EmulatorServer  # noqa: F401  (the import fails early, not in a thread)

    artifacts = Path(artifacts)
    root = artifacts.parent
    env = {
        **os.environ,
        "ZTB_ARTIFACTS": str(artifacts),
        "ZTB_DATA": str(artifacts / "data"),
        "ZTB_KILL": str(root / "ztb-real.stop"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "HF_HUB_OFFLINE": "1",
    }
    train = _sets([*TRAIN_SETS, "eval.every_steps=256", "checkpoint.every_steps=256"])

    def train_then_eval() -> None:
        ztb(env, "train", "--headless", "--no-progress", "--run-id", TRAIN, "-n", "512", *train)
        ztb(env, "eval", "-m", TRAIN, "--run-id", EVAL, "--checkpoint", "latest", *_sets(EVAL_SETS))

    def tune() -> None:
        trial_sets = [*TRAIN_SETS, "eval.every_steps=128", "checkpoint.every_steps=128", "total_timesteps=256"]
        storage = f"sqlite:///{root / 'study.db'}"
        ztb(
            env,
            "tune",
            "--trials",
            "2",
            "--storage",
            storage,
            "--run-id",
            TUNE,
            *_sets(
                [f"train_overrides={json.dumps(trial_sets)}", f"space={json.dumps(TUNE_SPACE)}", "poll_s=0.2", "seed=0"]
            ),
        )

    def pretrain() -> None:
        # the small model of PRETRAIN_SETS, its own step counts (fast-dev-run: one batch of each)
        small = [v for v in PRETRAIN_SETS if not v.startswith(("trainer.max_steps", "trainer.epoch_steps"))]
        ztb(env, "pretrain", "--fast-dev-run", "--headless", "--run-id", PRETRAIN_FDR, *_sets(small))
        ztb(env, "pretrain", "--headless", "--run-id", PRETRAIN, *_sets(PRETRAIN_SETS))

    def live() -> None:
        with sandbox_emulator("tk-console", "ts-console") as emu:
            ztb(env, "live", "--dry-run", "--max-bars", "6", "--run-id", LIVE, *_sets(_live_sets(emu.base_url, 4)))
            # the slow window is longer than the history the run loads: every bar is `not_ready`
            ztb(
                env,
                "live",
                "--dry-run",
                "--max-bars",
                "4",
                "--run-id",
                LIVE_NOT_READY,
                *_sets(_live_sets(emu.base_url, 5000)),
            )

    # two workers on a two-core machine: the CPU-heavy jobs run beside the waiting ones
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(f) for f in (train_then_eval, live, pretrain, tune)]
        for job in jobs:
            job.result()
    runs = artifacts / "runs"
    return {p.name: p for p in sorted(runs.iterdir()) if (p / "run.json").exists()}


if __name__ == "__main__":
    t0 = time.monotonic()
    made = build(Path(sys.argv[1]).resolve())
    print(f"{len(made)} runs in {time.monotonic() - t0:.1f}s: {', '.join(made)}")
