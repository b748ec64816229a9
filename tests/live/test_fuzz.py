"""A stateful fault fuzzer for live trading: the real bot against the real emulator, faults on and
off, partial fills, delayed and lost responses, failed cancels, someone else's orders, restarts
and kill -9 of a real bot process; after every step the journal is judged against the emulator's
own books (see `fuzz_harness.Referee.check` for the invariants).

CI runs a bounded number of sequences; `make fuzz` runs ZTB_FUZZ_EXAMPLES=1000 and prints how
many sequences and steps were tried. The positive controls at the end break the order manager on
purpose and show the referee catches it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, FaultRule, TradeTape
from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import CANCEL_REQUESTED, CANCELLED, OPEN, Order
from ztb_core.live.execution.reconcile import _to_fill, reconcile
from ztb_core.live.loop.risk import RiskDecision, RiskManager
from ztb_core.live.venue.exchange import ExchangeCallError

from .fuzz_harness import KEY, SECRET, Bot, Referee, fork_bot

EXAMPLES = int(os.environ.get("ZTB_FUZZ_EXAMPLES", "12"))
STEPS = int(os.environ.get("ZTB_FUZZ_STEPS", "18"))
TAPE = TradeTape.random_walk(n=30_000, seed=11)  # ~4 h of trades around 1.2M JPY, shared read-only

#: every kind of the emulator's fault table (partial_fill has its own rule), new kinds included
FAULT_KINDS = [k for k in get_args(FaultRule.model_fields["kind"].annotation) if k != "partial_fill"]
# cancels are listed twice: a failed cancel leaves an order resting that every later decision must
# count at its worst case, the richest source of trouble
FAULT_ENDPOINTS = [
    "create_order",
    "cancel_order",
    "cancel_order",
    "open_orders",
    "transactions_pagination",
    "ticker",
    "*",
]


class Tally:
    """Sequences and steps tried, over every run in this process (printed by the test)."""

    sequences = 0
    steps = 0
    kills = 0
    restarts = 0
    faults = 0
    # coverage: how often the situations the invariants guard were actually reached
    orders = 0  # our orders that reached the exchange
    fills = 0
    many_fill_orders = 0  # orders with more than 100 fills (more than one page of history)
    reduce_only_orders = 0  # orders that reached the exchange while reduce-only was in force
    unknown_outcomes = 0  # placements journaled as unknown
    foreign_orders = 0
    t0 = 0.0

    @staticmethod
    def line() -> str:
        return _tally_line()


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        speed=0, history_s=1800, api_key=KEY, secret=SECRET, balances={"jpy": 2_000_000.0, "btc": 0.1}
    )


class LiveFaultMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        Tally.sequences += 1
        if Tally.sequences % 100 == 0:  # long runs (make fuzz) show progress past pytest's capture
            print(f"[fuzz] {Tally.line()}", file=sys.__stdout__, flush=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="ztb-fuzz-"))
        self.emu = EmulatorServer(emulator_config(), tape=TAPE)
        self.emu.start()
        self.journal_path = self.tmp / "journal.sqlite"
        self.referee = Referee(self.emu, self.journal_path)
        self.bot: Bot | None = Bot(self.emu.base_url, self.journal_path, self.tmp / "run")
        self.active: list[FaultRule] = []
        self.lives = 0

    # ---- helpers ----------------------------------------------------------------------------
    def _sync_faults(self) -> None:
        self.emu.faults.clear()
        self.emu.faults.extend(self.active)

    def _new_bot(self) -> None:
        self.lives += 1
        self.bot = Bot(self.emu.base_url, self.journal_path, self.tmp / f"run{self.lives}")

    def _violations(self, settled: bool = False) -> list[str]:
        return self.referee.check(self.bot.journal, settled=settled)

    def _assert_clean(self, settled: bool = False) -> None:
        problems = self._violations(settled)
        if problems:
            events = [e for e in self.bot.writer.events if e[0] not in ("reconciled",)][-12:]
            raise AssertionError("invariants broken:\n  " + "\n  ".join(problems) + f"\nlast events: {events}")

    def settle(self) -> None:
        """Faults off, then the bot syncs until no outcome is unknown: the journal must now equal
        the exchange's books exactly."""
        self.active.clear()
        self._sync_faults()
        if self.bot.journal.unresolved():
            time.sleep(0.35)  # past reconcile_grace_s: a placement not at the exchange by now never will be
        self.bot.ensure_started()
        for _ in range(3):
            self.bot.manager.reconcile()
            if not self.bot.journal.unresolved():
                break
            self.referee.play_operator(self.bot.journal)  # ambiguous matches: decide with the truth
        self._assert_clean(settled=True)

    @initialize(
        signal_=st.sampled_from([1.0, 0.5, 0.0]),
        aggressiveness=st.sampled_from([-20.0, 5.0]),
        fault=st.sampled_from([None, "cancel_order", "transactions_pagination", "create_order"]),
    )
    def opening(self, signal_: float, aggressiveness: float, fault: str | None) -> None:
        """Every sequence starts with something at stake: a first decision (resting or filled), and
        perhaps one endpoint already failing."""
        Tally.steps += 1
        self.bot.decide(signal_, aggressiveness)
        if fault is not None:
            self.active.append(FaultRule(kind="http_5xx", endpoint=fault, times=None, probability=0.5))
            self._sync_faults()

    # ---- rules: the market and the bot -----------------------------------------------------------
    @rule(seconds=st.sampled_from([1, 20, 60, 180, 600]))
    def time_passes(self, seconds: int) -> None:
        """Tape trades print: resting orders fill, often partly."""
        Tally.steps += 1
        self.emu.advance(seconds)

    @rule(
        signal_=st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.75]),
        aggressiveness=st.sampled_from([5.0, -20.0, 30.0, -2.0]),
    )
    def decide(self, signal_: float, aggressiveness: float) -> None:
        """One bar close through the real runner: sync, risk, sizing, cancel what rests, place."""
        Tally.steps += 1
        self.bot.decide(signal_, aggressiveness)

    @rule()
    def cancel_everything(self) -> None:
        """The stop path: cancel every resting order (failures are the runner's to report)."""
        Tally.steps += 1
        if self.bot.ensure_started():
            try:
                self.bot.manager.cancel_all()
            except Exception as exc:  # noqa: BLE001 - only exchange errors may escape cancel_all
                if not isinstance(exc, ExchangeCallError):
                    raise

    @rule(action=st.sampled_from(["trip", "trip", "reset"]))
    def breaker(self, action: str) -> None:
        """A breaker latches (reduce-only) or a person resets them."""
        Tally.steps += 1
        if action == "reset":
            self.bot.runner.risk.reset_breakers()
        else:
            self.bot.runner.risk.trip("manual", "fuzzer: operator switched to reduce-only")

    # ---- rules: faults ----------------------------------------------------------------------------
    @rule(
        kind=st.sampled_from(FAULT_KINDS),
        endpoint=st.sampled_from(FAULT_ENDPOINTS),
        times=st.sampled_from([2, 1, 5, None]),  # 2+: the adapter's retry fails too
        probability=st.sampled_from([1.0, 0.5]),
    )
    def fault_on(self, kind: str, endpoint: str, times: int | None, probability: float) -> None:
        Tally.steps += 1
        Tally.faults += 1
        # hangs just past the client's 150 ms timeout; on order entry, latency that outlives the
        # request (a delayed execution), elsewhere a short stall
        latency = 180.0 if endpoint == "create_order" else 20.0
        self.active.append(
            FaultRule(
                kind=kind, endpoint=endpoint, times=times, probability=probability, hang_ms=180.0, latency_ms=latency
            )
        )
        self._sync_faults()

    @rule(ratio=st.sampled_from([0.004, 0.1, 0.5]))
    def partial_fills(self, ratio: float) -> None:
        """Orders placed from now on fill at most `ratio` of their amount per execution (0.004: more
        than 100 fills for one order)."""
        Tally.steps += 1
        self.active.append(FaultRule(kind="partial_fill", endpoint="create_order", times=None, fill_ratio=ratio))
        self._sync_faults()

    @precondition(lambda self: bool(self.active))
    @rule(which=st.integers(0, 7))
    def fault_off(self, which: int) -> None:
        Tally.steps += 1
        self.active.pop(which % len(self.active))
        self._sync_faults()

    # ---- rules: someone else on the account ---------------------------------------------------------
    @rule(side=st.sampled_from(["buy", "sell"]), offset_bps=st.sampled_from([-20, 0, 20]))
    def foreign_order(self, side: str, offset_bps: int) -> None:
        Tally.steps += 1
        last = self.emu.state.last_price()
        rate = (last * (1 + Decimal(offset_bps) / 10_000)).quantize(Decimal(1))
        # an amount no decision of the bot produces: a foreign order that happens to match an unknown
        # placement exactly is the foreign_twin rule's job
        self.referee.place_foreign(side, Decimal("0.0071"), rate)

    @precondition(lambda self: self.referee.unknown_but_placed(self.bot.journal) is not None)
    @rule()
    def foreign_twin(self) -> None:
        """Someone places an order with exactly the keys of one of ours whose placement outcome the
        bot does not know (and which did reach the exchange): two candidates, only one ours. (Were
        ours never placed, the twin would be the only candidate: without a client order id nothing
        can tell it from a late execution of ours, so that case is not generated.)"""
        Tally.steps += 1
        u = self.referee.unknown_but_placed(self.bot.journal)
        self.referee.place_foreign(u.side, u.amount, u.price)

    # ---- rules: the bot process dies ----------------------------------------------------------------
    @rule()
    def restart(self) -> None:
        """A clean restart on the same journal (reconciliation at start)."""
        Tally.steps += 1
        Tally.restarts += 1
        self.bot.close()
        self._new_bot()

    @rule(
        crash_at=st.integers(1, 60),
        signals=st.lists(
            st.tuples(st.sampled_from([0.0, 1.0, 0.5]), st.sampled_from([5.0, -20.0])), min_size=1, max_size=3
        ),
    )
    def kill9(self, crash_at: int, signals: list[tuple[float, float]]) -> None:
        """The bot runs as a separate process (forked: start, then a few decisions) and is killed with
        SIGKILL at the `crash_at`-th HTTP call or journal write, before or after it; a new bot then
        starts on the same journal."""
        Tally.steps += 1
        Tally.kills += 1
        self.bot.close()
        status = fork_bot(self.emu.base_url, self.journal_path, self.tmp / "child", signals, crash_at, timeout_s=30)
        assert status in (-signal.SIGKILL, 0), f"bot process ended with {status}"
        self._new_bot()
        self.bot.ensure_started()  # `ztb live` restarted: reconciliation at start

    # ---- the referee ----------------------------------------------------------------------------------
    @invariant()
    def books_agree(self) -> None:
        self._assert_clean()

    def _tally_coverage(self) -> None:
        ref = self.referee
        Tally.orders += len(ref.placements)
        fills = ref.our_fills()
        Tally.fills += len(fills)
        per_order: dict[int, int] = {}
        for f in fills:
            per_order[f.order_id] = per_order.get(f.order_id, 0) + 1
        Tally.many_fill_orders += sum(1 for n in per_order.values() if n > 100)
        Tally.reduce_only_orders += sum(
            1 for p in ref.placements if p.risk and (p.risk.get("breakers") or p.risk.get("daily_halt"))
        )
        Tally.unknown_outcomes += sum(1 for row in self.bot.journal.transitions() if row["to_state"] == "unknown")
        Tally.foreign_orders += len(ref.foreign)

    def teardown(self) -> None:
        try:
            if self.bot is not None:
                self.settle()
                self._tally_coverage()
        finally:
            if self.bot is not None:
                self.bot.close()
            self.emu.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        # the suite's dozen sequences are the same on every run (a red CI is a regression, not a
        # lucky draw); `make fuzz` (ZTB_FUZZ_EXAMPLES set) draws new ones and keeps failures in
        # .hypothesis/ to replay them first next time
        derandomize="ZTB_FUZZ_EXAMPLES" not in os.environ,
    )


def _tally_line() -> str:
    return (
        f"{Tally.sequences} sequences, {Tally.steps} steps ({Tally.kills} kill -9s, {Tally.restarts} restarts, "
        f"{Tally.faults} fault rows) after {time.perf_counter() - Tally.t0:.0f}s"
    )


def _report(capsys, what: str, seconds: float) -> None:
    with capsys.disabled():
        print(
            f"\n[fuzz] {what}: {Tally.sequences} sequences, {Tally.steps} steps "
            f"({Tally.kills} kill -9s, {Tally.restarts} restarts, {Tally.faults} fault rows) in {seconds:.1f}s"
            f"\n[fuzz] reached: {Tally.orders} orders at the exchange, {Tally.fills} fills, "
            f"{Tally.many_fill_orders} orders with >100 fills, {Tally.reduce_only_orders} orders in reduce-only, "
            f"{Tally.unknown_outcomes} unknown outcomes, {Tally.foreign_orders} foreign orders"
        )


def test_live_fault_fuzzer(capsys):
    """CI: a bounded number of sequences (ZTB_FUZZ_EXAMPLES, default 12); `make fuzz`: 1,000."""
    for k, v in list(vars(Tally).items()):
        if not k.startswith("_") and isinstance(v, (int, float)):
            setattr(Tally, k, 0)
    t0 = Tally.t0 = time.perf_counter()
    try:
        run_state_machine_as_test(LiveFaultMachine, settings=fuzz_settings(EXAMPLES))
    finally:
        _report(capsys, f"max_examples={EXAMPLES}, up to {STEPS} steps each", time.perf_counter() - t0)


# ---- a real bot process in a fresh interpreter, killed with SIGKILL and restarted ---------------------
HARNESS = Path(__file__).with_name("fuzz_harness.py")


@pytest.mark.slow
def test_kill9_of_a_fresh_bot_process_and_restarts(tmp_path, subprocess_env):
    """`python tests/live/fuzz_harness.py` is the bot (start, reconcile, decide); it is SIGKILLed at
    three points in a row on one journal, restarted each time, then judged on the emulator's books."""
    with EmulatorServer(emulator_config(), tape=TAPE) as emu:
        path = tmp_path / "journal.sqlite"
        referee = Referee(emu, path)
        signals = [(1.0, 30.0), (0.5, -20.0), (0.0, 5.0)]
        outcomes = []
        for crash_at in (4, 17, 40):  # during start-up reconciliation, around a placement, later
            child = subprocess.run(
                [
                    sys.executable,
                    str(HARNESS),
                    emu.base_url,
                    str(path),
                    str(tmp_path / "run"),
                    json.dumps(signals),
                    str(crash_at),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env=subprocess_env,
            )
            assert child.returncode in (-signal.SIGKILL, 0), child.stderr[-2000:]
            outcomes.append(child.returncode)
            emu.advance(30)  # the market moves while the bot is dead
        assert -signal.SIGKILL in outcomes, "no crash point was reached: the test proved nothing"
        assert emu.state.orders, "the bot never placed an order"
        bot = Bot(emu.base_url, path, tmp_path / "after")
        try:
            time.sleep(0.35)  # past reconcile_grace_s
            assert bot.ensure_started()
            bot.manager.reconcile()
            assert referee.check(bot.journal, settled=True) == []
        finally:
            bot.close()


# ---- positive controls: a broken bot must be caught -----------------------------------------------
def _scenario(machine: LiveFaultMachine, steps) -> list[str]:
    """Run `steps` (callables on the machine), then settle; return what the referee found."""
    try:
        for step in steps:
            step(machine)
        try:
            machine.settle()
        except AssertionError:
            pass
        return machine._violations(settled=True)
    finally:
        machine.bot.close()
        machine.emu.stop()
        shutil.rmtree(machine.tmp, ignore_errors=True)


REDUCE_ONLY_BREACH = [
    lambda m: m.breaker("trip"),  # reduce-only, flat: nothing may be bought
    lambda m: m.decide(1.0, 30.0),
]


def test_referee_passes_a_correct_bot_in_reduce_only():
    assert _scenario(LiveFaultMachine(), REDUCE_ONLY_BREACH) == []


def test_referee_catches_a_broken_reduce_only_check(monkeypatch):
    monkeypatch.setattr(
        RiskManager, "check_order", lambda self, side, amount, price, *a, **k: RiskDecision(True, amount, None, True)
    )
    found = _scenario(LiveFaultMachine(), REDUCE_ONLY_BREACH)
    assert any("adds exposure in reduce-only" in v for v in found), found


DROPPED_FILL = [lambda m: m.decide(1.0, 30.0), lambda m: m.time_passes(20), lambda m: m.decide(1.0, 30.0)]


def test_referee_catches_a_dropped_fill(monkeypatch):

    record = Journal.record_fill
    dropped: list[str] = []

    def drop_first(self, fill):
        if not dropped:
            dropped.append(fill.trade_id)
        if fill.trade_id in dropped:
            return False  # "already recorded": the fill never reaches the journal
        return record(self, fill)

    assert _scenario(LiveFaultMachine(), DROPPED_FILL) == []  # the control's control: a correct journal
    monkeypatch.setattr(Journal, "record_fill", drop_first)
    found = _scenario(LiveFaultMachine(), DROPPED_FILL)
    assert dropped and any("not in the journal" in v for v in found), found


def test_referee_catches_an_order_placed_while_another_is_unknown(monkeypatch):
    steps = [
        lambda m: m.fault_on("timeout", "create_order", 1, 1.0),  # the placement's outcome is unknown
        lambda m: m.decide(0.5, 30.0),
        lambda m: m.decide(1.0, 30.0),  # within the grace period: it must stay blocked
    ]
    assert _scenario(LiveFaultMachine(), steps) == []
    monkeypatch.setattr(OrderManager, "_ensure_resolved", lambda self: None)
    found = _scenario(LiveFaultMachine(), steps)
    assert any("had an unknown outcome" in v for v in found), found


# ---- regressions for what the fuzzer found -----------------------------------------------------------
def test_fill_journaled_just_before_a_kill_still_updates_its_closed_order(tmp_path):
    """Found by the fuzzer (kill -9 inside reconciliation): a fill of an order already closed was
    journaled, and the process died before the order's filled amount was updated. The fill is never
    new again, so reconciliation must compare the amounts, not wait for a new fill."""

    with EmulatorServer(emulator_config(), tape=TAPE) as emu:
        bot = Bot(emu.base_url, tmp_path / "journal.sqlite", tmp_path / "run")
        try:
            last = emu.state.last_price()
            ack = bot.adapter.create_limit_order("buy", Decimal("0.05"), last, "ztb-0-regress", "BTC/JPY")
            for _ in range(120):  # let the tape fill part of it
                emu.advance(1)
                if emu.state.orders[int(ack.exchange_id)].remaining < Decimal("0.05"):
                    break
            bot.adapter.cancel_order(ack.exchange_id)
            j = bot.journal
            order = j.record_submission(
                Order.create("BTC/JPY", "buy", Decimal("0.05"), last, client_id="ztb-0-regress")
            )
            order = j.transition(order, OPEN, exchange_id=ack.exchange_id)
            order = j.transition(order, CANCEL_REQUESTED)
            order = j.transition(order, CANCELLED)
            fills = [f for f in bot.adapter.fetch_my_trades("BTC/JPY") if f.order_id == ack.exchange_id]
            assert fills, "the tape filled nothing: the test proves nothing"
            for f in fills:  # the dead process got this far: every fill journaled, the order not updated
                j.record_fill(_to_fill(f, order.client_id))
            reconcile(j, bot.adapter, "BTC/JPY")
            after = j.get(order.client_id)
            assert after.filled == sum((f.amount for f in fills), Decimal(0)) == j.filled_of(order.client_id)[0]
        finally:
            bot.close()
