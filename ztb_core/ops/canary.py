"""`ztb canary`: the original project's three phases, driven by a fault table, with one set of
artifacts (a temporary folder unless `--keep`), a pass/fail table per phase and fault row.

Phases
* replay — a tiny agent is trained on the synthetic crypto market and traded through the paper
  broker (`ztb live --dry-run --checkpoint`) on the emulator's recorded tape. Pass: exit 0, the
  session completed, no order of unknown outcome left in the journal.
* live-lite — the `--minimal` flow (one minimum order placed and cancelled) against the emulator.
  Pass: exit 0 and the exchange agrees with the journal (no open order left, every journaled
  exchange id known to the exchange, no order placed twice).
* kill/resume — a training run (its own process) is SIGKILLed after its first checkpoint and
  resumed. Pass: it completes with exactly the configured step total, no train-metric step is
  counted twice, and its final checkpoint is on disk.

Fault rows: `none`; exchange faults the emulator injects (`disconnect` = connection reset,
`timeout`, `429`, `5xx`) for replay and live-lite; storage faults for kill/resume through the
checkpoint saver's `write_file` hook in the training process (`slow_disk`: every checkpoint write
sleeps 0.3 s; `memory`: the first checkpoint write raises MemoryError, as an allocation failure
would). A cell that does not apply to a phase is "-".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..live.emulator import EmulatorConfig, EmulatorServer, load_synthetic
from ..live.emulator.config import FaultRule
from ..manifest import Manifest
from ..runs import RunReader
from .smoke import TRAIN_SETS, Step, _env, live_sets, run_step

EXCHANGE_FAULTS: dict[str, list[dict]] = {
    "none": [],
    "disconnect": [{"kind": "connection_reset", "endpoint": "*", "times": 2, "after": 2}],
    "timeout": [{"kind": "timeout", "endpoint": "*", "times": 1, "after": 2, "hang_ms": 2500}],
    "429": [{"kind": "http_429", "endpoint": "*", "times": 2, "after": 2}],
    "5xx": [{"kind": "http_5xx", "endpoint": "*", "times": 2, "after": 2, "status": 503}],
}
#: storage faults, set in the training process through CheckpointSaver.write_file
STORAGE_FAULTS = ("none", "slow_disk", "memory")
ROWS = (*EXCHANGE_FAULTS, "slow_disk", "memory")
PHASES = ("replay", "live-lite", "kill/resume")
EMU_KEY, EMU_SECRET = "canary-key-0000", "canary-secret-0000"
CRYPTO_SETS = [*TRAIN_SETS, "data.market=crypto", "data.synthetic.market=crypto"]

#: the training process of kill/resume: applies the row's storage fault, then runs the real CLI
TRAIN_CHILD = textwrap.dedent("""
    import sys, time
    from ztb_core.rl.checkpoints import CheckpointSaver
    fault = sys.argv[1]
    real = CheckpointSaver.write_file
    state = {"n": 0}
    def faulty(path, data):
        state["n"] += 1
        if fault == "slow_disk":
            time.sleep(0.3)
        elif fault == "memory" and state["n"] == 1:
            raise MemoryError("canary: simulated allocation failure while writing a checkpoint")
        real(path, data)
    CheckpointSaver.write_file = staticmethod(faulty)
    from ztb_core.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@dataclass
class Cell:
    phase: str
    row: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass
class CanaryResult:
    cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cells)


def _journal_orders(artifacts: Path) -> list[dict]:
    import sqlite3

    out = []
    for path in Path(artifacts).rglob("*.sqlite"):
        db = sqlite3.connect(path)
        db.row_factory = sqlite3.Row
        try:
            out += [dict(r) for r in db.execute("SELECT client_id, state, exchange_id FROM orders")]
        except sqlite3.DatabaseError:
            continue
        finally:
            db.close()
    return out


def _last_run(artifacts: Path, kind: str) -> Path | None:
    runs = sorted((Path(artifacts) / "runs").glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def replay(main: Callable[[list[str]], int], emu: EmulatorServer, art: Path) -> tuple[bool, str]:
    before = {o["client_id"] for o in _journal_orders(art)}
    step = Step("replay", ["live", "--dry-run", "--max-bars", "3", "--checkpoint", "canary-agent", *live_sets(emu)])
    run_step(step, main)
    run = _last_run(art, "live")
    state = RunReader(run).status().get("state") if run else None
    unknown = [
        o for o in _journal_orders(art) if o["client_id"] not in before and o["state"] in ("unknown", "submitted")
    ]
    ok = step.code == 0 and state == "completed" and not unknown
    return ok, f"exit {step.code}, state {state}, unresolved orders {len(unknown)}" + _tail(step, ok)


def live_lite(main: Callable[[list[str]], int], emu: EmulatorServer, art: Path) -> tuple[bool, str]:
    step = Step("live-lite", ["live", "--minimal", *live_sets(emu)])
    run_step(step, main)
    with emu.state.lock:
        exchange = {str(oid): o for oid, o in emu.state.orders.items()}
        open_at_exchange = [oid for oid, o in exchange.items() if o.open]
    journal = _journal_orders(art)
    ids = [o["exchange_id"] for o in journal if o["exchange_id"]]
    unknown_ids = [i for i in ids if i not in exchange]
    dupes = len(ids) - len(set(ids))
    ok = step.code == 0 and not open_at_exchange and not unknown_ids and dupes == 0
    detail = (
        f"exit {step.code}, open at exchange {len(open_at_exchange)}, journaled ids unknown to the exchange "
        f"{len(unknown_ids)}, duplicates {dupes}"
    )
    return ok, detail + _tail(step, ok)


def kill_resume(art: Path, fault: str, env: dict[str, str], total: int = 2048) -> tuple[bool, str]:
    run_id = f"canary-kill-{fault.replace('_', '-')}"
    sets = [a for s in [*TRAIN_SETS[:-1], f"total_timesteps={total}"] for a in ("--set", s)]
    cmd = [sys.executable, "-c", TRAIN_CHILD, fault]
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [*cmd, "train", "--headless", "--run-id", run_id, *sets],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    run_dir = Path(art) / "runs" / run_id
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and first.poll() is None:
        try:
            entries = Manifest(run_dir / "checkpoints").entries() if (run_dir / "checkpoints").is_dir() else []
        except (ValueError, OSError):
            entries = []
        if entries:
            killed_at = max(e["step"] for e in entries)  # the newest checkpoint when the kill lands
            os.killpg(first.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    first.wait()
    if killed_at is None:
        return False, f"the first process ended (exit {first.returncode}) before a checkpoint to kill after"
    second = subprocess.run(
        [*cmd, "train", "--headless", "--resume", run_id],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    reader = RunReader(run_dir)
    status = reader.status()
    rows = [r["step"] for r in reader.metrics_tail().poll().records if r.get("split") == "train"]
    twice = len(rows) - len(set(rows))
    final = status.get("step")
    manifest = Manifest(run_dir / "checkpoints").entries()
    on_disk = any(e["step"] == final and (run_dir / "checkpoints" / e["file"]).exists() for e in manifest)
    alerts = [e for e in reader.events() if e.get("event") == "alert"]
    ok = second.returncode == 0 and status.get("state") == "completed" and final == total and not twice and on_disk
    detail = (
        f"killed after the checkpoint at step {killed_at}, resumed: exit {second.returncode}, {status.get('state')} at {final} of {total}, "
        f"steps counted twice {twice}, final checkpoint on disk {on_disk}, alerts {len(alerts)}"
    )
    if not ok:
        detail += "\n" + (second.stdout + second.stderr)[-1500:]
    return ok, detail


PhaseFn = Callable[[Callable[[list[str]], int], EmulatorServer, Path], tuple[bool, str]]


def _checked_phase(
    fn: PhaseFn, main: Callable[[list[str]], int], emu: EmulatorServer, art: Path, row: str
) -> tuple[bool, str]:
    """Run an exchange phase; a fault row whose fault never fired proved nothing: that cell fails."""
    ok, detail = fn(main, emu, art)
    fired = sum(emu.faults.fired.values())
    if row != "none" and fired == 0:
        return False, f"the {row} fault never fired; {detail}"
    return ok, f"{detail}; faults fired {fired}"


def _tail(step: Step, ok: bool) -> str:
    return "" if ok else "\n" + step.output[-1500:]


def run_canary(
    keep: Path | None = None,
    rows: tuple[str, ...] = ROWS,
    phases: tuple[str, ...] = PHASES,
    on_cell: Callable[[Cell], None] | None = None,
) -> CanaryResult:
    from ..cli import main

    result = CanaryResult()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ztb-canary-")) if keep is None else Path(keep)
    art = tmp / "artifacts"
    env = {
        "ZTB_ARTIFACTS": str(art),
        "ZTB_DATA": str(art / "data"),
        "ZTB_KILL": str(tmp / "ztb.stop"),
        "COINCHECK_API_KEY": EMU_KEY,
        "COINCHECK_API_SECRET": EMU_SECRET,
        "DISCORD_WEBHOOK": "",
        "ZTB_NOTIFY": "",
    }

    def record(phase: str, row: str, fn: Callable[[], tuple[bool, str]]) -> None:
        c0 = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as exc:  # noqa: BLE001 - a phase that crashes is a failed cell, not a crashed canary
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        cell = Cell(phase, row, ok, detail, time.perf_counter() - c0)
        result.cells.append(cell)
        if on_cell is not None:
            on_cell(cell)

    with _env(env):
        if "replay" in phases:
            agent = Step(
                "train agent",
                ["train", "--headless", "--run-id", "canary-agent", *[a for s in CRYPTO_SETS for a in ("--set", s)]],
            )
            run_step(agent, main)
            if not agent.passed:
                record("replay", "setup", lambda: (False, "training the tiny agent failed" + _tail(agent, False)))
        for row in rows:
            if row in EXCHANGE_FAULTS:
                for phase, fn in (("replay", replay), ("live-lite", live_lite)):
                    if phase not in phases:
                        continue
                    emu_cfg = EmulatorConfig(
                        speed=120,
                        clock="tape",
                        history_s=3 * 3600,
                        api_key=EMU_KEY,
                        secret=EMU_SECRET,
                        balances={"jpy": 1_000_000.0, "btc": 0.1},
                        faults=[FaultRule.model_validate(f) for f in EXCHANGE_FAULTS[row]],
                    )
                    with EmulatorServer(emu_cfg, tape=load_synthetic(0.5, seed=3)) as emu:
                        record(phase, row, partial(_checked_phase, fn, main, emu, art, row))
            if row in STORAGE_FAULTS and "kill/resume" in phases:
                record("kill/resume", row, partial(kill_resume, art, row, env))
    result.seconds = time.perf_counter() - t0
    if keep is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result
