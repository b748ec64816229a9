"""Positive controls of the market-data fuzzer (test_fuzz_market.py): for every rule it claims
(`MARKET_RULES`), the real code is broken on purpose, the way the defect it guards against looked
(a feed that never gives up on a silent socket, a watch that never runs, ...), and a short scripted
sequence of the fuzzer's own steps must report a violation of THAT rule; the unbroken code on the
same sequence reports none (so the sequence does reach the rule's situation)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ztb_core.live.loop.risk import RiskManager
from ztb_core.live.loop.runner import LiveRunner
from ztb_core.live.market import stream
from ztb_core.live.market.stream import MarketFeed

from . import test_fuzz_market
from .fuzz_harness import play_script
from .test_fuzz_market import MARKET_RULES, MarketFaultMachine

Step = Callable[[MarketFaultMachine], None]


def play(steps: list[Step]) -> str | None:
    """Run the fuzzer's steps in order, the referee after each; the violation report, or None."""
    return play_script(MarketFaultMachine(), steps, MarketFaultMachine.books_and_bars)


# the sequences: each reaches one rule's situation in a few steps
SILENT_FOR_GOOD = [lambda m: m.opening(1.0, 60.0), lambda m: m.ws_goes_silent(600.0, 3.0)]
SILENT_THEN_BACK = [lambda m: m.opening(1.0, 60.0), lambda m: m.ws_goes_silent(1.5, 3.0), lambda m: m.run_for(3.0)]
REAL_TIME = [lambda m: m.opening(1.0, 1.0), lambda m: m.run_for(3.0)]
BOTH_CHANNELS_DOWN = [
    lambda m: m.opening(1.0, 1.0),
    lambda m: m.public_rest(("ticker", "trades", "order_books"), False, 0.5),
    lambda m: m.ws_goes_silent(600.0, 5.0),
]
TICKER_DOWN_SOCKET_SPEAKING = [lambda m: m.opening(1.0, 1.0), lambda m: m.public_rest(("ticker",), False, 4.0)]
BARS = [lambda m: m.opening(1.0, 60.0), lambda m: m.run_for(3.0)]


def no_watch(self: LiveRunner) -> None:
    """The defect: no private sync and no risk check unless a bar closes."""


def stream_age_ignored(self: LiveRunner) -> float:
    """A data age that counts only REST tickers and decisions, not the trades the socket brings."""
    return time.monotonic() - self._fresh_at


def high_not_updated(bar: stream.ClosedBar, trade: stream.StreamTrade) -> None:
    """A bar that misses its highs (everything else still follows the trades)."""
    high = bar.high
    original_update(bar, trade)
    bar.high = high


original_update = stream._update


CONTROLS: dict[str, tuple[list[Step], object, str, object]] = {
    # rule: (sequence, owner, attribute, the broken version)
    "ws_fallback": (SILENT_FOR_GOOD, MarketFeed, "_check_silence", lambda self: None),
    "ws_recovery": (SILENT_THEN_BACK, MarketFeed, "_recover", lambda self: None),
    "private_sync": (REAL_TIME, LiveRunner, "_keep_watch", no_watch),
    "stale_trips": (BOTH_CHANNELS_DOWN, RiskManager, "observe_market", lambda self, *a, **k: None),
    "stale_false": (TICKER_DOWN_SOCKET_SPEAKING, LiveRunner, "_data_age_s", stream_age_ignored),
    "bars_tape": (BARS, stream, "_update", high_not_updated),
}


def test_every_market_rule_has_a_positive_control():
    assert set(CONTROLS) == set(MARKET_RULES)


@pytest.mark.slow
@pytest.mark.parametrize("rule", sorted(CONTROLS))
def test_the_market_fuzzer_catches_each_broken_rule(rule, monkeypatch):
    steps, owner, name, broken = CONTROLS[rule]
    assert play(steps) is None, f"the unbroken code already fails the {rule} sequence"
    monkeypatch.setattr(owner, name, broken)
    found = play(steps)
    assert found is not None and f"[{rule}]" in found, found


@pytest.mark.slow
def test_a_brief_stall_does_not_leave_a_bar_short_of_the_trades_it_dropped(monkeypatch):
    """Found by this fuzzer: the socket went quiet for 0.2 s (shorter than ws_silence_s, so no
    fallback) and the trades printed meanwhile were never pushed; the bar they belonged to was decided
    with a third of its volume missing. A message after a gap of ws_gap_refill_s now holds the bars
    until REST has completed them. Without the refill (the old feed) the same sequence breaks the
    bars rule."""
    steps: list[Step] = [
        lambda m: m.opening(0.0, 60.0),
        lambda m: m.ws_goes_silent(0.3, 2.0),
        lambda m: m.run_for(1.0),
    ]
    assert play(steps) is None
    monkeypatch.setattr(test_fuzz_market, "GAP_REFILL_S", None)
    found = play(steps)
    assert found is not None and "[bars_tape]" in found, found


@pytest.mark.slow
def test_bars_that_arrive_while_the_ticker_fails_still_join_the_buffer():
    """Found by this fuzzer: on REST bars after a stall, with the REST ticker failing, each closed bar
    was dropped with its decision (no quote to price an order), leaving holes in the buffer every later
    decision's features are built from. The bars now join the buffer; only the decision waits."""
    steps: list[Step] = [
        lambda m: m.opening(0.5, 60.0),
        lambda m: m.ws_goes_silent(600.0, 1.5),
        lambda m: m.public_rest(("ticker",), False, 7.0),  # past the stream touch's 5 s of freshness
    ]
    assert play(steps) is None
