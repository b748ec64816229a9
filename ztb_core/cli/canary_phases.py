"""The phases of `ztb canary` (run by `canary.run_canary`): the original project's three phases (kill/resume in two halves), driven by a fault table, with one set of
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
* kill/resume live — a real-trading `ztb live` session (its own process group, SMA policy, limit
  prices 2 bps behind the touch so orders rest and some fill) is SIGKILLed while an order of it
  rests at the exchange and its journal has no placement in flight (no `submitted`/`unknown` order;
  10 s after the first order it is killed whatever rests). It is relaunched on the same journal and
  stopped by its run's kill-file once it made a few decisions and resolved every placement of
  unknown outcome. Not a mid-placement kill: on this tape-clock emulator the exchange's order times
  are tape times, years from the wall clock we sent at, so reconcile cannot match such a placement
  by time; it keeps it unknown and blocking for the operator (`ztb live reconcile --resolve`), which
  is safe (the canary first found it placed twice, now fixed) but not a state this phase can pass
  unattended; a wall-clock emulator cannot show the 40 warm-up bars at 120x. Pass: the resumed session exits 0 `stopped` and
  `check_books` finds the journal equal to the exchange's own books: every exchange order journaled
  exactly once and no journaled id unknown to it, no order of unknown outcome left, per-order filled
  amounts equal, nothing left open, every journal fill a real exchange fill and every exchange fill
  journaled, the same position. Each cell keeps its own journal (the emulator's ids restart at 1).

* live session — a real-trading `ztb live` session (its own process, SMA policy, passive limit
  prices, its own journal) under a fault the other phases cannot show, stopped by its kill-file:
  - `late_execution`: the first order placement is executed by the emulator 15 s after it arrived,
    long after the client's 2 s timeout and the reconcile grace (the venue's queued matching engine).
    The session runs until the late order has landed and no placement of unknown outcome is left
    (90 s at most). Pass: exit 0 `stopped` and `check_books` finds the journal equal to the
    exchange's books (the late order journaled once, its fills too, no order placed twice).
  - `silent_stall`: the session reads bars from the emulator's websocket, which goes silent with
    the socket held open once the session made a few decisions. Pass: the bot says it fell back to
    REST (an alert), goes on deciding and syncing through the stall (decisions and `market` watch
    rows after it began), exits 0 `stopped`, and `check_books` is clean.

Fault rows: `none`; exchange faults the emulator injects (`disconnect` = connection reset,
`timeout`, `429`, `5xx`) for replay, live-lite and kill/resume live (there they fire on the first
session's early requests, its start-up reconcile and first polls, not on a chosen order call: they
prove the killed and resumed sessions still agree with the exchange after them); storage faults
for kill/resume through the checkpoint saver's `write_file` hook in the training process
(`slow_disk`: every checkpoint write sleeps 0.3 s; `memory`: the first checkpoint write raises
MemoryError, as an allocation failure would). A cell that does not apply to a phase is "-".
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..live.emulator import EmulatorServer
from ..live.emulator.state import PAIR
from ..live.emulator.ws import WsServer
from ..live.execution.journal import Journal
from ..live.execution.orders import LIVE, UNRESOLVED
from ..live.loop.live_config import journal_path_for
from ..manifest import Manifest
from ..runs import RunReader
from .smoke import TRAIN_SETS, Step, live_sets, run_step

EXCHANGE_FAULTS: dict[str, list[dict]] = {
    "none": [],
    "disconnect": [{"kind": "connection_reset", "endpoint": "*", "times": 2, "after": 2}],
    "timeout": [{"kind": "timeout", "endpoint": "*", "times": 1, "after": 2, "hang_ms": 2500}],
    "429": [{"kind": "http_429", "endpoint": "*", "times": 2, "after": 2}],
    "5xx": [{"kind": "http_5xx", "endpoint": "*", "times": 2, "after": 2, "status": 503}],
}
#: storage faults, set in the training process through CheckpointSaver.write_file
STORAGE_FAULTS = ("none", "slow_disk", "memory")
#: the client timeout (live_sets: 2 s) and the reconcile grace (10 s) are long over when it lands
LATE_HANG_MS = 15_000
#: faults of the live-session phase only (the other phases never place the order they target)
SESSION_FAULTS: dict[str, list[dict]] = {
    "late_execution": [{"kind": "late_execution", "endpoint": "create_order", "times": 1, "hang_ms": LATE_HANG_MS}],
    "silent_stall": [],  # the websocket's silence, switched on by the phase itself
}
ROWS = (*EXCHANGE_FAULTS, "slow_disk", "memory", *SESSION_FAULTS)
PHASES = ("replay", "live-lite", "kill/resume", "kill/resume live", "live session")
#: silent_stall: decisions before the stall, decisions after it that show the bot goes on
STALL_AFTER_BARS, STALL_BARS = 3, 4
EMU_KEY, EMU_SECRET = "canary-key-0000", "canary-secret-0000"
#: the venue and symbol the live session trades (LiveConfig's defaults: the emulator is Coincheck BTC/JPY)
LIVE_VENUE, LIVE_SYMBOL = "coincheck", "BTC/JPY"
#: limit prices this far behind the touch (passive): orders rest a while (a resting one to kill
#: over) and the tape fills some of them (fills to reconcile)
LIVE_BPS = -2
#: the fault rows of kill/resume live
LIVE_KILL_ROWS = tuple(EXCHANGE_FAULTS)
#: decisions the resumed live session makes before its kill-file stops it
RESUME_BARS = 4
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
    from ztb_core.cli.app import main
    sys.exit(main(sys.argv[2:]))
""")


def _journal_orders(artifacts: Path) -> list[dict]:
    """Orders of the sessions that use the default journals (replay's paper one, live-lite's live
    one); kill/resume live keeps a journal per cell under its own name, checked by check_books."""
    out = []
    for path in (Path(artifacts) / "live").glob("journal-*.sqlite"):
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
    return ok, f"exit {step.code}, state {state}, unresolved orders {len(unknown)}" + step_tail(step, ok)


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
    return ok, detail + step_tail(step, ok)


def check_books(journal: Journal, emu: EmulatorServer, stopped: bool = True) -> tuple[list[str], dict[str, Any]]:
    """The journal against the exchange's own books, after a session ended: (violations, figures).

    Every order on the canary's emulator is ours, so the two books must agree exactly: each exchange
    order journaled once (an unjournaled one is a decision placed twice or a placement lost), no
    journaled id the exchange never saw, no order of unknown outcome left, each order's filled amount
    as the exchange has it, the journal's resting orders = the exchange's open ones (none after a
    kill-file stop, which cancels), every journal fill a real exchange fill (same order, side, amount,
    price) and every exchange fill journaled, so the journal's position is the exchange's."""
    with emu.state.lock:
        exchange = {str(oid): o for oid, o in emu.state.orders.items()}
        fills = {str(f.id): f for f in emu.state.fills if f.pair == PAIR and str(f.order_id) in exchange}
    orders = journal.orders()
    jfills = {f.trade_id: f for f in journal.fills()}
    ids = [o.exchange_id for o in orders if o.exchange_id]
    bad: list[str] = []
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        bad.append(f"exchange ids journaled more than once: {twice}")
    if missing := sorted(set(exchange) - set(ids), key=int):
        bad.append(f"exchange orders not in the journal (placed twice or lost): {missing}")
    if unknown := sorted(set(ids) - set(exchange)):
        bad.append(f"journaled exchange ids the exchange never saw: {unknown}")
    if unresolved := [o.client_id for o in orders if o.state in UNRESOLVED]:
        bad.append(f"journal orders of unknown outcome left: {unresolved}")
    for o in orders:
        x = exchange.get(o.exchange_id or "")
        if x is not None and o.filled != x.amount - x.remaining:
            bad.append(f"order {o.exchange_id}: journal filled {o.filled}, exchange {x.amount - x.remaining}")
    open_x = sorted(i for i, o in exchange.items() if o.open)
    live_j = sorted(o.exchange_id or o.client_id for o in orders if o.state in LIVE)
    if live_j != open_x:
        bad.append(f"journal's live orders {live_j} != the exchange's open orders {open_x}")
    if stopped and open_x:
        bad.append(f"orders left open at the exchange after the stop: {open_x}")
    for tid, f in jfills.items():
        xf = fills.get(tid)
        if xf is None:
            bad.append(f"journal fill {tid} is not an exchange fill of our orders")
        elif (f.exchange_order_id, f.side, f.amount, f.price) != (str(xf.order_id), xf.side, xf.amount, xf.rate):
            bad.append(f"journal fill {tid} differs from the exchange's: {f} vs {xf}")
    if unjournaled := sorted(set(fills) - set(jfills), key=int):
        bad.append(f"exchange fills missing from the journal: {unjournaled}")
    pos_j = journal.position()
    pos_x = sum((xf.amount if xf.side == "buy" else -xf.amount for xf in fills.values()), Decimal(0))
    if pos_j != pos_x:
        bad.append(f"position: journal {pos_j} != exchange {pos_x}")
    figures = {
        "orders": len(exchange),
        "journaled": len(ids),
        "open": len(open_x),
        "fills": len(fills),
        "journal_fills": len(jfills),
        "position_journal": pos_j,
        "position_exchange": pos_x,
    }
    return bad, figures


def kill_resume_live(art: Path, env: dict[str, str], emu: EmulatorServer, row: str = "none") -> tuple[bool, str]:
    """SIGKILL a real `ztb live` session (its own process group) while an order of it rests at the
    exchange and no placement is in flight, resume it on the same journal, stop it with its
    kill-file after a few bars, then `check_books`."""
    tag = f"canary-live-kill-{row.replace('_', '-')}"
    journal_path = journal_path_for("live", LIVE_VENUE, LIVE_SYMBOL, Path(art) / "live" / f"{tag}.sqlite")
    sets = ["mode=live", f"journal_path={journal_path}", "policy.kind=sma", f"sizing.aggressiveness_bps={LIVE_BPS}"]
    cmd = [sys.executable, "-m", "ztb_core.cli", "live", "--confirm-live", *live_sets(emu)]
    cmd += [a for s in sets for a in ("--set", s)]
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    log = Path(art) / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        first = subprocess.Popen(
            [*cmd, "--run-id", f"{tag}-1", "--max-bars", "400"],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    launched = time.monotonic()
    deadline, first_order = launched + 120, None
    at_kill: dict[str, Any] = {}
    while time.monotonic() < deadline and first.poll() is None:
        with emu.state.lock:
            orders = list(emu.state.orders.values())
            n_fills = len(emu.state.fills)
        if orders:
            first_order = first_order or time.monotonic()
            # a resting order makes the resume cancel what the killed process left; wait a little for one
            resting = any(o.open for o in orders) and not _unresolved(journal_path)
            if resting or time.monotonic() - first_order > 10:
                os.killpg(first.pid, signal.SIGKILL)
                at_kill = {
                    "s": time.monotonic() - launched,
                    "orders": len(orders),
                    "open": sum(o.open for o in orders),
                    "fills": n_fills,
                }
                break
        time.sleep(0.02)
    if first.poll() is None:  # no order in time: end it all the same
        os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    if not at_kill:
        return False, f"the session ended (exit {first.returncode}) or placed no order before the kill\n" + _log_tail(
            log
        )
    with Journal(journal_path, "live", LIVE_VENUE, LIVE_SYMBOL) as journal:  # what the killed process left
        left = {k: v for k, v in journal.counts().items() if k != "fills"}
    run_dir = Path(art) / "runs" / f"{tag}-2"
    with log.open("ab") as out:
        second = subprocess.Popen(
            [*cmd, "--run-id", f"{tag}-2", "--max-bars", "400"], env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    # a few bars of the resumed session and every placement of unknown outcome resolved (reconcile
    # waits its grace period before it calls one never placed), then its kill-file: a stop cancels
    # what rests. Past the deadline it is stopped anyway and the check names what stayed unresolved.
    while second.poll() is None:
        bars = (RunReader(run_dir).status().get("step") or 0) if run_dir.is_dir() else 0
        if time.monotonic() > deadline or (bars >= RESUME_BARS and not _unresolved(journal_path)):
            (run_dir / "ztb.stop").write_text("canary\n")
            break
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    try:
        second.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        second.kill()
        second.wait()
    state = RunReader(run_dir).status().get("state") if run_dir.is_dir() else None
    with Journal(journal_path, "live", LIVE_VENUE, LIVE_SYMBOL) as journal:
        bad, fig = check_books(journal, emu)
    ok = second.returncode == 0 and state == "stopped" and not bad
    detail = (
        f"killed {at_kill['s']:.1f}s after launch with {at_kill['orders']} orders at the exchange "
        f"({at_kill['open']} resting, {at_kill['fills']} fills; journal {left}); resumed: exit {second.returncode}, "
        f"{state}; exchange orders {fig['orders']}, journaled {fig['journaled']}, open {fig['open']}; fills exchange "
        f"{fig['fills']} journal {fig['journal_fills']}; position journal {fig['position_journal']:f} exchange "
        f"{fig['position_exchange']:f}; violations {len(bad)}"
    )
    if not ok:
        detail += "\n" + "\n".join(bad) + "\n" + _log_tail(log)
    return ok, detail


def live_session(art: Path, env: dict[str, str], emu: EmulatorServer, row: str) -> tuple[bool, str]:
    """A real-trading `ztb live` process under one of SESSION_FAULTS, stopped by its kill-file once
    the fault has shown itself (see the module docstring); then `check_books`."""
    tag = f"canary-live-session-{row.replace('_', '-')}"
    journal_path = journal_path_for("live", LIVE_VENUE, LIVE_SYMBOL, Path(art) / "live" / f"{tag}.sqlite")
    sets = ["mode=live", f"journal_path={journal_path}", "policy.kind=sma", f"sizing.aggressiveness_bps={LIVE_BPS}"]
    ws = WsServer(emu.state) if row == "silent_stall" else None
    if ws is not None:
        sets += ["market_data=websocket", f"ws_url={ws.start()}", "ws_silence_s=1", "ws_reconnect_s=600"]
        sets += ["risk_interval_s=0.5"]
    cmd = [sys.executable, "-m", "ztb_core.cli", "live", "--confirm-live", *live_sets(emu)]
    cmd += [a for s in sets for a in ("--set", s)] + ["--run-id", tag, "--max-bars", "400"]
    log = Path(art) / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    run_dir = Path(art) / "runs" / tag
    stall: dict[str, Any] = {}
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 90
        while proc.poll() is None:
            bars = (RunReader(run_dir).status().get("step") or 0) if run_dir.is_dir() else 0
            if ws is not None and not stall and bars >= STALL_AFTER_BARS:
                ws.silence(for_s=600)  # the socket stays open; nothing more is sent
                stall = {"bars": bars, "at": time.time()}
            if time.monotonic() > deadline or _session_done(row, emu, journal_path, bars, stall):
                (run_dir / "ztb.stop").write_text("canary\n")
                break
            time.sleep(0.05)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        if ws is not None:
            ws.stop()
    state = RunReader(run_dir).status().get("state") if run_dir.is_dir() else None
    with Journal(journal_path, "live", LIVE_VENUE, LIVE_SYMBOL) as journal:
        bad, fig = check_books(journal, emu)
    detail = (
        f"exit {proc.returncode}, {state}; exchange orders {fig['orders']}, journaled {fig['journaled']}, open "
        f"{fig['open']}; fills exchange {fig['fills']} journal {fig['journal_fills']}; position journal "
        f"{fig['position_journal']:f} exchange {fig['position_exchange']:f}; violations {len(bad)}"
    )
    if row == "late_execution":
        detail = f"late executions {emu.faults.fired.get('late_execution', 0)}; " + detail
    else:
        bad += _stall_problems(run_dir, stall, ws)
        detail = f"stall after {stall.get('bars')} bars, messages withheld {ws.silenced if ws else 0}; " + detail
    ok = proc.returncode == 0 and state == "stopped" and not bad
    if not ok:
        detail += "\n" + "\n".join(bad) + "\n" + _log_tail(log)
    return ok, detail


def _session_done(row: str, emu: EmulatorServer, journal_path: Path, bars: int, stall: dict[str, Any]) -> bool:
    if row == "late_execution":
        # the late order has landed at the exchange (the hanging request is done) and nothing is unknown
        landed = emu.faults.fired.get("late_execution", 0) and _late_landed(emu)
        return bool(landed) and bars >= 2 and not _unresolved(journal_path)
    return bool(stall) and bars >= stall["bars"] + STALL_BARS


def _late_landed(emu: EmulatorServer) -> bool:
    """True once every placement that reached the emulator is an order there: the delayed one (its
    request hangs LATE_HANG_MS before the work is done) has been executed."""
    with emu.state.lock:
        return len(emu.state.orders) >= emu.requests["create_order"] > 0


def _stall_problems(run_dir: Path, stall: dict[str, Any], ws: WsServer | None) -> list[str]:
    """What the silent-stall row requires of the session beyond clean books."""
    if not stall or ws is None or not ws.silenced:
        return ["the websocket stall never began (too few decisions before the deadline)"]
    reader = RunReader(run_dir)
    events = reader.events()
    bad = []
    if not any(e.get("event") == "alert" and "websocket silent" in str(e.get("message")) for e in events):
        bad.append("no alert that the silent websocket was given up for REST")
    metrics = reader.metrics_tail().poll().records
    after = [m for m in metrics if m.get("split") == "live" and m["time"] > stall["at"]]
    if len(after) < STALL_BARS:
        bad.append(f"only {len(after)} decisions after the stall began (want {STALL_BARS})")
    watch = [m for m in metrics if m.get("split") == "market" and m["time"] > stall["at"]]
    if not any(m.get("synced") for m in watch):
        bad.append("no private sync on the watch timer during the stall")
    return bad


def _unresolved(journal_path: Path) -> int:
    """Orders of unknown outcome in a journal another process is writing (read-only: WAL lets both)."""
    try:
        db = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return 0
    try:
        marks = ",".join("?" * len(UNRESOLVED))
        return int(
            db.execute(f"SELECT COUNT(*) FROM orders WHERE state IN ({marks})", sorted(UNRESOLVED)).fetchone()[0]
        )
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:] if log.exists() else ""


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


def step_tail(step: Step, ok: bool) -> str:
    """The end of a failed step's output, for its cell's detail."""
    return "" if ok else "\n" + step.output[-1500:]
