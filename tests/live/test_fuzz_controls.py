"""Positive controls of the live fault fuzzer: for every rule the referee claims (`RULES`), the real
code is broken on purpose (monkeypatched to the faulty behaviour) and the fuzzer, run on a few
generated sequences, must report a violation of THAT rule; the same fuzzer on the unbroken code
must report none. A rule without such a control could pass forever while checking nothing.

Each control runs the real state machine (`LiveFaultMachine`) with only the rules that lead to its
situation (the others are hidden), a handful of derandomized sequences and no shrinking, so the
whole file takes a minute or so. The scripted tests at the end replay the minimal sequences of what
the fuzzer found (and, for a scenario in test_fuzz.AWAITING_FIX, would be strict xfails until fixed).
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RULE_MARKER, initialize, precondition, rule, run_state_machine_as_test

from ztb_core.live.execution import reconcile as live_reconcile
from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import CANCELLED
from ztb_core.live.loop.risk import RiskManager
from ztb_core.live.loop.runner import LiveRunner
from ztb_core.live.venue.coincheck import CoincheckAdapter
from ztb_core.live.venue.errors import ExchangeCallError, OrderOutcomeUnknown, OrderRejected

from . import fuzz_harness, test_fuzz
from .fuzz_harness import GRACE_S, RULES, play_script
from .test_fuzz import LiveFaultMachine

RULE_NAMES = sorted(
    name for name in dir(LiveFaultMachine) if getattr(getattr(LiveFaultMachine, name), RULE_MARKER, None) is not None
)


def focused(*keep: str, extra: dict[str, Any] | None = None, **narrowed: dict[str, Any]) -> type[LiveFaultMachine]:
    """The fuzzer with only the rules `keep` (plus the opening decision and the referee); a rule
    given in `narrowed` draws its arguments from the strategies given instead of its own (the same
    code, fewer choices), `opening` included; `extra` adds rules that chain the machine's own steps
    (the situation is reached in one step instead of by luck)."""
    unknown = (set(keep) | set(narrowed)) - set(RULE_NAMES) - {"opening"}
    assert not unknown, f"no such fuzzer rule: {unknown}"
    # the opening decision without its fault or clock skew unless narrowed otherwise: a control's
    # sequence should reach its rule, not another one's
    narrowed.setdefault("opening", opening(0.0, 0.5, 1.0))
    body: dict[str, Any] = {name: None for name in RULE_NAMES if name not in keep and name not in narrowed}
    for name, strategies in narrowed.items():
        body[name] = _narrow(name, strategies)
    body.update(extra or {})
    return type(f"Focused_{'_'.join([*keep, *narrowed, *(extra or {})])}", (LiveFaultMachine,), body)


def _narrow(name: str, strategies: dict[str, Any]) -> Any:
    base = getattr(LiveFaultMachine, name)

    def step(self: LiveFaultMachine, **kwargs: Any) -> None:
        base(self, **kwargs)

    step.__name__ = name
    return (initialize if name == "opening" else rule)(**strategies)(step)


def one_of(*values: Any) -> Any:
    return st.sampled_from(values)


def opening(*signals: float, aggressiveness: tuple[float, ...] = (30.0, -20.0)) -> dict[str, Any]:
    """The opening decision narrowed to `signals`, with no fault and no clock skew."""
    return {
        "signal_": one_of(*signals),
        "aggressiveness": one_of(*aggressiveness),
        "fault": st.none(),
        "skew_ms": one_of(0),
    }


def run_fuzzer(machine: type[LiveFaultMachine], examples: int, steps: int) -> str | None:
    """Run `examples` generated sequences (the same every time, no shrinking); the first failure's
    message, or None when every sequence passed."""
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            ),
        )
    except AssertionError as exc:  # the message, then the failing sequence hypothesis noted
        return "\n".join([str(exc), *getattr(exc, "__notes__", [])])
    return None


def assert_caught(
    monkeypatch: pytest.MonkeyPatch, rule_tag: str, machine: type[LiveFaultMachine], mutate, examples=8, steps=10
) -> None:
    """The control's control first (the focused fuzzer passes the real code), then the mutation
    must be reported as a violation of `rule_tag`."""
    assert rule_tag in RULES
    clean = run_fuzzer(machine, examples, steps)
    assert clean is None, f"the unbroken bot fails the focused fuzzer:\n{clean}"
    mutate(monkeypatch)
    found = run_fuzzer(machine, examples, steps)
    assert found is not None, f"{examples} sequences did not catch the broken rule {rule_tag}"
    assert f"[{rule_tag}]" in found, f"caught, but not as {rule_tag}:\n{found}"


def test_every_rule_has_a_positive_control():
    controlled = {name.removeprefix("test_fuzzer_catches_") for name in globals() if name.startswith("test_fuzzer_")}
    assert set(RULES) <= controlled, f"rules without a positive control: {sorted(set(RULES) - controlled)}"


# ---- the mutations, one per rule ------------------------------------------------------------------
def test_fuzzer_catches_position_limit(monkeypatch):
    check = RiskManager.check_order

    def no_position_cap(mp):
        def check_order(self, *args, **kwargs):
            real = self.cfg
            self.cfg = real.model_copy(update={"max_position": Decimal(1000)})
            try:
                return check(self, *args, **kwargs)
            finally:
                self.cfg = real

        mp.setattr(RiskManager, "check_order", check_order)

    assert_caught(monkeypatch, "position_limit", focused("decide", "time_passes"), no_position_cap)


def test_fuzzer_catches_reduce_only(monkeypatch):
    def halts_ignored(mp):
        mp.setattr(RiskManager, "_halt_reason", lambda self: None)

    @rule(signal_=one_of(1.0, 0.75), aggressiveness=one_of(30.0, 5.0))
    def trip_then_bar(self, signal_: float, aggressiveness: float) -> None:
        LiveFaultMachine.breaker(self, "trip")
        LiveFaultMachine.decide(self, signal_, aggressiveness)

    machine = focused("time_passes", opening=opening(0.0, 0.5), extra={"trip_then_bar": trip_then_bar})
    assert_caught(monkeypatch, "reduce_only", machine, halts_ignored)


def test_fuzzer_catches_trades_per_day(monkeypatch):
    def count_forgotten(mp):
        mp.setattr(RiskManager, "trades_today", lambda self: 0)

    assert_caught(monkeypatch, "trades_per_day", focused("decide"), count_forgotten, examples=4, steps=20)


def test_fuzzer_catches_private_down(monkeypatch):
    sync = LiveRunner._sync

    def sync_failure_ignored(mp):
        mp.setattr(LiveRunner, "_sync", lambda self: sync(self) or True)

    assert_caught(
        monkeypatch,
        "private_down",
        focused("private_reads_fail", "decide", opening=opening(0.0, 0.5, 1.0)),
        sync_failure_ignored,
    )


def test_fuzzer_catches_cancel_retry(monkeypatch):
    def never_retried(mp):
        mp.setattr(OrderManager, "retry_cancels", lambda self: [])

    machine = focused(
        "cancel_everything",
        decide={"signal_": one_of(1.0, 0.5), "aggressiveness": one_of(-20.0)},
        cancels_fail={"times": one_of(4, None)},
    )
    assert_caught(monkeypatch, "cancel_retry", machine, never_retried)


def test_fuzzer_catches_close_before_fills(monkeypatch):
    def executed_amount_ignored(mp):  # reconciliation closes an order that left the book at once
        mp.setattr(CoincheckAdapter, "exchange_filled", lambda self, *a, **k: None)

    # no unknown outcomes here: the history may lag as long as the sequence lasts
    monkeypatch.setattr(test_fuzz, "LAG_S", 60.0)

    @rule(signal_=one_of(1.0, 0.75))
    def lag_then_bar(self, signal_: float) -> None:
        LiveFaultMachine.history_lags(self, True)
        LiveFaultMachine.decide(self, signal_, 30.0)

    machine = focused("cancel_everything", opening=opening(0.0), extra={"lag_then_bar": lag_then_bar})
    assert_caught(monkeypatch, "close_before_fills", machine, executed_amount_ignored)


def test_fuzzer_catches_unknown_outcome(monkeypatch):
    def not_waiting(mp):
        mp.setattr(OrderManager, "_ensure_resolved", lambda self: None)

    @rule(kind=one_of("timeout", "late_execution", "response_lost"))
    def lost_then_two_bars(self, kind: str) -> None:
        LiveFaultMachine.placement_answer_lost(self, kind, 250.0)
        LiveFaultMachine.decide(self, 0.25, 30.0)  # 0.0075 BTC, outcome unknown
        LiveFaultMachine.decide(self, 1.0, 30.0)  # room for more under the 0.02 limit

    # the shipped grace (10 s), so that the second bar comes well within it on a loaded machine
    monkeypatch.setattr(fuzz_harness, "GRACE_S", 10.0)
    machine = focused("time_passes", opening=opening(0.0), extra={"lost_then_two_bars": lost_then_two_bars})
    assert_caught(monkeypatch, "unknown_outcome", machine, not_waiting)


def test_fuzzer_catches_journal_orders(monkeypatch):
    cancel = OrderManager.cancel

    def failed_cancel_booked_as_done(mp):
        def cancelled_anyway(self, order):
            try:
                return cancel(self, order)
            except ExchangeCallError:
                return self.journal.transition(self.journal.get(order.client_id), CANCELLED)

        mp.setattr(OrderManager, "cancel", cancelled_anyway)

    machine = focused("decide", "cancels_fail", "cancel_everything", opening=opening(1.0, 0.5, aggressiveness=(-20.0,)))
    assert_caught(monkeypatch, "journal_orders", machine, failed_cancel_booked_as_done)


def test_fuzzer_catches_exchange_orders(monkeypatch):
    create = CoincheckAdapter.create_limit_order

    def lost_answer_taken_as_no(mp):  # "no answer" read as "not placed"
        def create_limit_order(self, *args, **kwargs):
            try:
                return create(self, *args, **kwargs)
            except OrderOutcomeUnknown as exc:
                raise OrderRejected(str(exc), kind="rejected", method="create_order") from exc

        mp.setattr(CoincheckAdapter, "create_limit_order", create_limit_order)

    @rule(kind=one_of("response_lost", "late_execution"), signal_=one_of(0.5, 1.0), aggressiveness=one_of(30.0, -20.0))
    def lost_then_bar(self, kind: str, signal_: float, aggressiveness: float) -> None:
        LiveFaultMachine.placement_answer_lost(self, kind, 180.0)
        LiveFaultMachine.decide(self, signal_, aggressiveness)

    machine = focused("decide", "time_passes", opening=opening(0.0), extra={"lost_then_bar": lost_then_bar})
    assert_caught(monkeypatch, "exchange_orders", machine, lost_answer_taken_as_no)


def test_fuzzer_catches_fills_books(monkeypatch):
    to_fill = live_reconcile._to_fill

    def amount_truncated(mp):  # a fill's amount cut to 4 decimals (the precision some venues display)
        def lossy(t, client_id):
            fill = to_fill(t, client_id)
            return replace(fill, amount=fill.amount.quantize(Decimal("0.0001"), ROUND_DOWN))

        mp.setattr(live_reconcile, "_to_fill", lossy)

    assert_caught(monkeypatch, "fills_books", focused("decide", "time_passes"), amount_truncated)


def test_fuzzer_catches_a_dropped_fill(monkeypatch):
    """A second fills_books control: a fill that never reaches the journal (reported as "already
    recorded")."""
    record = Journal.record_fill

    def drop_first(mp):
        dropped: list[str] = []

        def record_fill(self, fill):
            if not dropped:
                dropped.append(fill.trade_id)
            return False if fill.trade_id in dropped else record(self, fill)

        mp.setattr(Journal, "record_fill", record_fill)

    assert_caught(monkeypatch, "fills_books", focused("decide", "time_passes"), drop_first)


def test_fuzzer_catches_position_books(monkeypatch):
    def sells_not_counted(mp):
        mp.setattr(
            Journal, "position", lambda self: sum((f.amount for f in self.fills() if f.side == "buy"), Decimal(0))
        )

    # one exit only: a bot that believes it is still long would sell again and again, and the position
    # limit would be the first rule to see it
    @precondition(lambda self: not getattr(self, "exited", False))
    @rule(aggressiveness=one_of(30.0, 5.0))
    def exit_bar(self, aggressiveness: float) -> None:
        self.exited = True
        LiveFaultMachine.decide(self, 0.0, aggressiveness)

    machine = focused("time_passes", opening=opening(1.0, 0.5, aggressiveness=(30.0,)), extra={"exit_bar": exit_bar})
    assert_caught(monkeypatch, "position_books", machine, sells_not_counted)


def test_fuzzer_catches_foreign(monkeypatch):
    cancel_all = OrderManager.cancel_all

    def cancels_the_whole_account(mp):
        def cancel_everything(self):
            asked = cancel_all(self)
            for o in self.venue.fetch_open_orders(self.symbol):
                self.venue.cancel_order(o.exchange_id, self.symbol)
            return asked

        mp.setattr(OrderManager, "cancel_all", cancel_everything)

    machine = focused("foreign_order", "decide", "cancel_everything")
    assert_caught(monkeypatch, "foreign", machine, cancels_the_whole_account)


# ---- minimal sequences of what the fuzzer found ------------------------------------------------------
def _scripted(steps) -> str | None:
    """Run `steps` on a fresh machine (the referee after each), then its teardown (settle + final
    check); the first failure's message, or None."""
    return play_script(LiveFaultMachine(), steps, LiveFaultMachine.books_agree)


def test_late_execution_beyond_the_grace_keeps_the_books():
    """Defect 1's minimal sequence (an order entered 1 s after it was sent, the next bar 0.4 s later):
    the unknown placement counts at its worst case until the venue's window rules on it: the bot must
    not rule it "never placed" and place again, and the books agree once it lands."""
    found = _scripted(
        [
            lambda m: m.placement_answer_lost("late_execution", 1_000.0),
            lambda m: m.decide(1.0, 30.0),
            lambda m: time.sleep(GRACE_S + 0.1),
            lambda m: m.decide(1.0, 30.0),
        ]
    )
    assert found is None, found


def test_a_bot_that_asks_leaves_a_twin_of_a_placement_that_never_reached_the_book():
    """Our order times out without being entered; someone else places the same side/price/amount
    right after. With `in_flight_match: ask` the twin is neither adopted nor cancelled: the bot blocks
    and asks (the fuzzer's operator answers with the truth when the books settle)."""
    found = _scripted(
        [
            lambda m: m.opening(0.0, 5.0, None, 0, "ask"),
            lambda m: m.twin_next_lost_placement("after"),
            lambda m: m.twin_next_lost_placement("after"),
            lambda m: m.placement_answer_lost("timeout", 180.0),
            lambda m: m.decide(1.0, -20.0),
            lambda m: time.sleep(GRACE_S + 0.1),
            lambda m: m.decide(0.0, -20.0),
        ]
    )
    assert found is None, found


def test_a_bot_that_adopts_takes_such_a_twin_for_its_own():
    """The control of the test above, and the documented limit of `in_flight_match: adopt`: the same
    twin is adopted as ours (the referee reports it), because nothing the venue returns tells it from
    an order of ours that was entered while our request was at the exchange."""
    found = _scripted(
        [
            lambda m: setattr(m.referee, "twins_of_unseen", True),
            lambda m: m.twin_next_lost_placement("after"),
            lambda m: m.placement_answer_lost("timeout", 180.0),
            lambda m: m.decide(1.0, -20.0),
            lambda m: time.sleep(GRACE_S + 0.1),
            lambda m: m.decide(0.0, -20.0),
        ]
    )
    assert found is not None and "[foreign]" in found, found


def test_unplaced_order_still_flagged_rejected_when_no_twin():
    """The twin control's control: the same timeout without a twin is ruled never placed, cleanly."""
    found = _scripted(
        [
            lambda m: m.placement_answer_lost("timeout", 180.0),
            lambda m: m.decide(1.0, -20.0),
            lambda m: time.sleep(GRACE_S + 0.1),
            lambda m: m.decide(0.0, -20.0),
        ]
    )
    assert found is None, found


def test_clock_stepping_back_while_an_order_rests():
    """Found by the fuzzer (clock_step): an order rests; the bot host's clock steps 180 s back; the
    order is cancelled. Once the books settle the journal must say cancelled, not wait three minutes
    for the local clock to catch up (an order is judged gone by having been journaled before the
    open orders were read, not by comparing wall-clock stamps across the step)."""
    found = _scripted(
        [
            lambda m: m.opening(1.0, -20.0, None, 0),
            lambda m: LiveFaultMachine.clock_steps(m, -180_000),
            lambda m: m.cancel_everything(),
        ]
    )
    assert found is None, found


def test_clock_stepping_forward_does_not_rule_a_late_order_never_placed():
    """The wall clock steps 180 s forward (NTP, a resumed VM) while a placement's outcome is unknown
    and the venue enters it 1 s late: by the wall clock the order has been absent for minutes, past
    the window, but only a second has passed. It must stay unknown (counted at its worst case) until
    it shows up, not be ruled never placed and sent again."""
    found = _scripted(
        [
            lambda m: m.placement_answer_lost("late_execution", 1_000.0),
            lambda m: m.decide(1.0, 30.0),
            lambda m: LiveFaultMachine.clock_steps(m, 180_000),
            lambda m: m.decide(1.0, 30.0),
            lambda m: time.sleep(1.2),  # the late entry lands
            lambda m: m.decide(1.0, 30.0),
        ]
    )
    assert found is None, found


def test_a_bot_restarted_after_a_clock_step_does_not_rule_a_late_order_never_placed():
    """Found by `make fuzz`: a placement's answer is lost (the venue enters it 1 s late), the wall
    clock steps 6 minutes forward, and the bot is killed and restarted. The new process saw the order
    for the first time with a wall-clock age of minutes and ruled it never placed at once; the late
    entry then rested unclaimed. The monotonic send time is journaled with the order, so a process
    restarted on the same boot ages it truly."""
    found = _scripted(
        [
            lambda m: m.opening(1.0, 5.0, None, -180_000, "ask"),
            lambda m: m.bar_with_lost_answer("late_execution", 1_000.0, 0.25, -20.0, None),
            lambda m: LiveFaultMachine.clock_steps(m, 180_000),
            lambda m: m.kill9(19, [(0.5, 5.0)]),
            lambda m: time.sleep(1.2),  # the late entry lands
            lambda m: m.between_bars(),
        ]
    )
    assert found is None, found


def test_a_delayed_entry_is_judged_on_what_the_bot_knew_when_it_sent_it():
    """Found by `make fuzz`: an order sent in normal mode, entered 250 ms later by the exchange after
    the fuzzer had tripped a breaker meanwhile, was reported as "adds exposure in reduce-only". The
    referee snapshots the journal when the request arrives, not when the late work is done."""
    found = _scripted(
        [
            lambda m: m.opening(0.0, 30.0, None, 0),
            lambda m: m.bar_with_lost_answer("late_execution", 250.0, 0.5, 30.0, None),
            lambda m: m.breaker("trip"),
            lambda m: time.sleep(0.4),  # the late entry lands
            lambda m: m.time_passes(1),
        ]
    )
    assert found is None, found
