"""`ztb smoke`: every command's happy path, in one process, on the synthetic market and a loopback
exchange emulator, inside a temporary artifacts folder; a pass/fail table and exit 1 on any failure.

For CI before the full suite (`make test` runs it first) and for a user after an upgrade. Each step
is the real CLI (`cli.main(argv)`) with tiny settings; the steps share one Python process so torch
and the data stack are imported once. The table (step, command, exit code, seconds) is returned
and, by the command, recorded as a `smoke` run in the real artifacts folder.

Not exercised here (and why): `tui` (an interactive terminal; tests/tui drives it with Textual's
pilot), `emulator` (serves until Ctrl-C; the steps use the same server in-process), `notify` (needs
a user's targets), `supervise` (spawns a second interpreter: slow; tests/rl covers it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..data.synthetic import SyntheticConfig, generate_market
from ..live.emulator import EmulatorConfig, EmulatorServer, FaultRule, load_synthetic
from .app import main

#: tiny PPO: a few hundred steps in seconds on a CPU
TRAIN_SETS = [
    "data.synthetic.n_bars=12000",
    "splits.embargo=0",
    "env.lookback=8",
    "env.episode_length=256",
    "ppo.n_envs=2",
    "ppo.n_steps=64",
    "ppo.batch_size=64",
    "ppo.n_epochs=1",
    "ppo.net_arch=[32,32]",
    "checkpoint.every_steps=128",
    "eval.every_steps=0",
    "telemetry_interval_s=0.5",
    "total_timesteps=256",
]
EVAL_SETS = ["bootstrap.n_resamples=50", "monte_carlo.n_paths=100", "baselines.random_seeds=5", "report.plots=false"]
#: a 1-layer 32-wide Stage-1 model on two timeframes, 6 steps
PRETRAIN_SETS = [
    "data.market=crypto",
    "data.synthetic.market=crypto",
    "data.synthetic.n_bars=20000",
    "window.timeframes=[M1,M5]",
    "window.seq_len=32",
    "mask.val_samples=64",
    "model.d_model=32",
    "model.n_heads=4",
    "model.n_layers=1",
    "model.d_ff=64",
    "model.bottleneck=8",
    "trainer.max_steps=6",
    "trainer.batch_size=16",
    "trainer.epoch_steps=3",
    "trainer.val_batches=1",
    "trainer.log_every=2",
    "trainer.accelerator=cpu",
]
EMU_KEY, EMU_SECRET = "smoke-key-0000", "smoke-secret-0000"


def sandbox_env(tmp: Path, key: str, secret: str) -> dict[str, str]:
    """The environment smoke and canary commands run in: artifacts, data and kill-file under `tmp`,
    the emulator's keys, no notifications."""
    art = Path(tmp) / "artifacts"
    return {
        "ZTB_ARTIFACTS": str(art),
        "ZTB_DATA": str(art / "data"),
        "ZTB_KILL": str(Path(tmp) / "ztb.stop"),
        "COINCHECK_API_KEY": key,
        "COINCHECK_API_SECRET": secret,
        "DISCORD_WEBHOOK": "",
        "ZTB_NOTIFY": "",
    }


def sandbox_emulator(key: str, secret: str, faults: list[dict] | None = None) -> EmulatorServer:
    """The loopback exchange smoke and canary trade against (start it with `with`): a 120x replay
    of the synthetic tape, one 1m bar every 0.5 s, `faults` armed."""
    cfg = EmulatorConfig(
        speed=120,
        clock="tape",
        history_s=3 * 3600,
        api_key=key,
        secret=secret,
        balances={"jpy": 1_000_000.0, "btc": 0.1},
        faults=[FaultRule(**f) for f in faults or []],
    )
    return EmulatorServer(cfg, tape=load_synthetic(0.5, seed=3))


@dataclass
class Step:
    name: str
    argv: list[str]
    ok_codes: tuple[int, ...] = (0,)
    code: int | None = None
    seconds: float = 0.0
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.code in self.ok_codes


@dataclass
class SmokeResult:
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.steps)


def live_sets(emu: EmulatorServer) -> list[str]:
    sets = [
        f"exchange.api_url={emu.base_url}",
        "exchange.rate_limit.requests_per_s=10000",
        "exchange.rate_limit.burst=10000",
        "exchange.rate_limit.ccxt_rate_limit=false",
        "exchange.timeout_ms=2000",
        # the emulator's worst execution delay is its longest fault hang (seconds), not a real
        # venue's minutes: an unknown placement is ruled out within the run
        "unknown_outcome_window_s=30",
        "poll_interval_s=0.05",
        "warmup_bars=40",
        "policy.sma_fast=2",
        "policy.sma_slow=4",
        "sizing.min_change_fraction=0",
        "sizing.vol_lookback_bars=30",
    ]
    return [a for s in sets for a in ("--set", s)]


def plan_steps(emu: EmulatorServer, data_csv: Path) -> list[Step]:
    sets = lambda items: [a for s in items for a in ("--set", s)]  # noqa: E731
    return [
        Step("doctor", ["doctor", "--json"]),
        Step(
            "data import", ["data", "import", str(data_csv), "--format", "csv", "--symbol", "SMOKE", "--market", "fx"]
        ),
        Step("data info", ["data", "info", "SMOKE"]),
        Step("data validate", ["data", "validate", "SMOKE"]),
        Step("train", ["train", "--headless", "--run-id", "smoke-train", *sets(TRAIN_SETS)]),
        Step("train --resume", ["train", "--headless", "--resume", "smoke-train", "--total-timesteps", "512"]),
        Step("runs", ["runs", "--json"]),
        Step("watch --once", ["watch", "smoke-train", "--once"]),
        Step("rollup", ["rollup", "smoke-train"]),
        Step("stop (finished run)", ["stop", "smoke-train"]),
        Step("eval", ["eval", "--model", "smoke-train", "--split", "val", "--run-id", "smoke-eval", *sets(EVAL_SETS)]),
        Step("pretrain", ["pretrain", "--headless", "--run-id", "smoke-pretrain", *sets(PRETRAIN_SETS)]),
        Step("pretrain-eval", ["pretrain-eval", "--checkpoint", "smoke-pretrain"]),
        Step("exchange health", ["exchange", "health", "--api-url", emu.base_url, "--samples", "2"]),
        Step("live --dry-run", ["live", "--dry-run", "--max-bars", "2", *live_sets(emu)]),
        Step("live --minimal", ["live", "--minimal", *live_sets(emu)]),
        Step("config schema", ["config", "schema", "train"]),
        Step("errors", ["errors"]),
        Step("janitor (dry run)", ["janitor"]),
        Step("report weekly", ["report", "weekly"]),
    ]


def write_csv(path: Path, n_bars: int = 3000) -> Path:
    """A few days of synthetic FX bars as a plain CSV (time,open,high,low,close,volume)."""
    bars = generate_market(SyntheticConfig(n_bars=n_bars, seed=7, market="fx"))
    out = bars[["open", "high", "low", "close", "volume"]].copy()
    out.index = out.index.tz_convert("UTC").tz_localize(None)
    out.to_csv(path, index_label="time")
    return path


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_step(step: Step, main: Callable[[list[str]], int]) -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    buf = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            step.code = main(step.argv)
    except SystemExit as exc:
        step.code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # noqa: BLE001 - a smoke step's crash is its failure, the table goes on
        step.code = -1
        buf.write(f"\n{type(exc).__name__}: {exc}")
    finally:
        step.seconds = time.perf_counter() - t0
        step.output = buf.getvalue()[-4000:]
        for h in list(root.handlers):  # a step's run log handler must not outlive the step
            if h not in handlers:
                root.removeHandler(h)
                h.close()


def run_smoke(
    keep: Path | None = None,
    only: list[str] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> SmokeResult:
    """Run every step (or those whose name starts with one of `only`) in a fresh temporary
    artifacts folder (kept at `keep` when given)."""
    result = SmokeResult()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ztb-smoke-")) if keep is None else Path(keep)
    tmp.mkdir(parents=True, exist_ok=True)
    env = sandbox_env(tmp, EMU_KEY, EMU_SECRET)
    try:
        with _env(env), sandbox_emulator(EMU_KEY, EMU_SECRET) as emu:
            csv = write_csv(tmp / "smoke.csv")
            for step in plan_steps(emu, csv):
                if only and not any(step.name.startswith(o) for o in only):
                    continue
                run_step(step, main)
                result.steps.append(step)
                if on_step is not None:
                    on_step(step)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    return result
