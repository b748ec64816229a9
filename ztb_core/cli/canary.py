"""`ztb canary`: the runner. It drives the phases (`canary_phases.py`: replay, live-lite,
kill/resume, kill/resume live, live session, and the fault table) over the rows asked for, one
emulator per exchange-fault cell, in one set of artifacts (a temporary folder unless `keep`), and
returns one pass/fail cell per phase and row; the `canary` command (cli/ops.py) prints the table.
A phase that crashes is a failed cell, not a crashed canary."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..live.emulator import EmulatorServer
from .app import main
from .canary_phases import (
    CRYPTO_SETS,
    EMU_KEY,
    EMU_SECRET,
    EXCHANGE_FAULTS,
    LIVE_KILL_ROWS,
    LIVE_SYMBOL,
    LIVE_VENUE,
    PHASES,
    ROWS,
    SESSION_FAULTS,
    STORAGE_FAULTS,
    check_books,
    kill_resume,
    kill_resume_live,
    live_lite,
    live_session,
    replay,
    step_tail,
)
from .smoke import Step, _env, run_step, sandbox_emulator, sandbox_env

# the canary's public face: the command and the tests read the tables and the books check here
__all__ = [
    "EXCHANGE_FAULTS",
    "LIVE_SYMBOL",
    "LIVE_VENUE",
    "PHASES",
    "ROWS",
    "CanaryResult",
    "Cell",
    "canary_env",
    "check_books",
    "emulator",
    "run_canary",
]


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


def _checked_live_kill(art: Path, env: dict[str, str], emu: EmulatorServer, row: str) -> tuple[bool, str]:
    """kill/resume live under a fault row: as `_checked_phase`, a fault that never fired fails the cell."""
    ok, detail = kill_resume_live(art, env, emu, row)
    fired = sum(emu.faults.fired.values())
    if row != "none" and fired == 0:
        return False, f"the {row} fault never fired; {detail}"
    return ok, f"{detail}; faults fired {fired}"


def _checked_session(art: Path, env: dict[str, str], emu: EmulatorServer, row: str) -> tuple[bool, str]:
    """live session under a row: a late execution that never fired proved nothing and fails the cell."""
    ok, detail = live_session(art, env, emu, row)
    if row == "late_execution" and not emu.faults.fired.get("late_execution"):
        return False, f"the late_execution fault never fired; {detail}"
    return ok, detail


def canary_env(tmp: Path) -> dict[str, str]:
    """The environment every canary command runs in (smoke's sandbox with the canary's keys)."""
    return sandbox_env(tmp, EMU_KEY, EMU_SECRET)


def emulator(row: str) -> EmulatorServer:
    """The loopback exchange of one exchange-fault cell, the row's faults armed."""
    return sandbox_emulator(EMU_KEY, EMU_SECRET, EXCHANGE_FAULTS[row])


def run_canary(
    keep: Path | None = None,
    rows: tuple[str, ...] = ROWS,
    phases: tuple[str, ...] = PHASES,
    on_cell: Callable[[Cell], None] | None = None,
) -> CanaryResult:
    result = CanaryResult()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ztb-canary-")) if keep is None else Path(keep)
    art = tmp / "artifacts"
    env = canary_env(tmp)

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
                record("replay", "setup", lambda: (False, "training the tiny agent failed" + step_tail(agent, False)))
        for row in rows:
            if row in EXCHANGE_FAULTS:
                for phase, fn in (("replay", replay), ("live-lite", live_lite)):
                    if phase not in phases:
                        continue
                    with emulator(row) as emu:
                        record(phase, row, partial(_checked_phase, fn, main, emu, art, row))
            if row in LIVE_KILL_ROWS and "kill/resume live" in phases:
                with emulator(row) as emu:
                    record("kill/resume live", row, partial(_checked_live_kill, art, env, emu, row))
            if row in SESSION_FAULTS and "live session" in phases:
                with sandbox_emulator(EMU_KEY, EMU_SECRET, SESSION_FAULTS[row]) as emu:
                    record("live session", row, partial(_checked_session, art, env, emu, row))
            if row in STORAGE_FAULTS and "kill/resume" in phases:
                record("kill/resume", row, partial(kill_resume, art, row, env))
    result.seconds = time.perf_counter() - t0
    if keep is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
