"""A stateful fuzzer for live trading's market-data channels: the real bot (`LiveRunner.step`, the
loop `ztb live` runs, with its `MarketFeed` on ccxt.pro's websocket client, REST trade polling as
the fallback, `OrderManager` and the SQLite journal) trades against the real emulator and its
websocket server while the fuzzer makes the socket go silent with the connection held open, the
public REST endpoints fail (the ticker, the trades, or all of them), the private ones fail, the
signal change and a person reset the breakers.

The emulator replays its tape 60 times faster than the wall clock (a bar a second, stamped on the
tape's clock), so a sequence of a few seconds holds dozens of bars. A monitor samples, between two
turns of the loop, what the world did (when the socket last spoke, which endpoints answer, when the
exchange last saw a private read) and what the bot shows (its channel, its breakers, its bars),
and judges the rules in `MARKET_RULES`; the order referee of the order fuzzer (`Referee`) judges
the books at every step and, once the faults are off, that the journal equals the exchange.

CI runs a few derandomized sequences (ZTB_FUZZ_MARKET_EXAMPLES, default 2); `make fuzz` runs more
and prints how many sequences reached each scenario and broke each rule. The positive controls at
the end break the real code for every rule and show the monitor catches it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, settings
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
from ztb_core.live.emulator.ws import WsServer
from ztb_core.live.market.stream import MarketFeed

from .fuzz_harness import KEY, RISK, RULES, SECRET, Bot, Referee

EXAMPLES = int(os.environ.get("ZTB_FUZZ_MARKET_EXAMPLES", "2"))
STEPS = int(os.environ.get("ZTB_FUZZ_MARKET_STEPS", "10"))
#: the tapes, per speed (shared read-only): at 60x ~5.5 h of trades, one every 0.5 s on average; in
#: real time a busier market (one every 0.1 s), so a second without a trade is rare, not routine
TAPES = {
    60.0: TradeTape.random_walk(n=40_000, seed=23),
    1.0: TradeTape.random_walk(n=30_000, mean_gap_ms=100.0, seed=29),
}
#: tape seconds per wall second: 60, a one-minute bar closes every second (the bars' rules and the
#: books); 1, the exchange's clock is the local one (the stale-data rules too)
SPEEDS = list(TAPES)

# the bot's settings, in wall seconds (the stale-data limit and the timers run on the local clock)
SILENCE_S = 0.5  # ws_silence_s
RECONNECT_S = 0.5  # ws_reconnect_s
GAP_REFILL_S = 0.1  # ws_gap_refill_s (at 60x the socket speaks every few ms)
RISK_INTERVAL_S = 0.3  # risk_interval_s: the watch's private sync and risk checks
STALE_S = 1.5  # risk.stale_data_s
# what a loaded 2-core machine may add to each deadline before a rule counts as broken (the
# ccxt.pro client, the emulator's servers and the bot share the interpreter and the cores)
LATE_S = 1.5
#: a fresh websocket connection: handshake and subscriptions before its first message
CONNECT_S = 1.5
#: how much older than the world's last fresh price the bot's may be (one turn of the loop)
EARLY_S = 0.6
#: a turn of the loop longer than this (a decision's requests on a loaded machine) is not judged by
#: the timed rules: the bot could not look at the world meanwhile (counted in the report)
SLOW_TURN_S = 0.75

PRIVATE_ENDPOINTS = ("open_orders", "transactions", "transactions_pagination", "order")

#: the market-data invariants; each violation message starts with "[tag]"
MARKET_RULES = {
    "ws_fallback": "a websocket that sends nothing for ws_silence_s (socket open) hands the bars to REST polling",
    "ws_recovery": "once the websocket speaks again, the bars come back to it within ws_reconnect_s",
    "private_sync": "the private syncs (open orders, fills) run every risk_interval_s whatever the market data does",
    "stale_trips": "no fresh price from either channel for risk.stale_data_s trips the stale-data breaker",
    "stale_false": "the stale-data breaker does not trip while a channel delivers fresh prices",
    "bars_tape": "every minute the tape printed is in the bot's bars once, with the tape's open/high/low/close/volume "
    "(unless trades of it were printed while the REST trades failed and the socket could not push them)",
}


class Tally:
    """Sequences, steps and coverage over every run in this process (printed by the test)."""

    sequences = 0
    steps = 0
    bars = 0
    slow_turns = 0
    orders = 0
    seconds = 0.0
    scenarios: Counter[str] = Counter()
    violations: Counter[str] = Counter()

    @classmethod
    def reset(cls) -> None:
        cls.sequences = cls.steps = cls.bars = cls.orders = cls.slow_turns = 0
        cls.seconds = 0.0
        cls.scenarios, cls.violations = Counter(), Counter()


def emulator_config(speed: float) -> EmulatorConfig:
    return EmulatorConfig(
        speed=speed,
        clock="tape",  # the exchange's stamps run on the tape: bars are tape minutes
        history_s=1800,
        api_key=KEY,
        secret=SECRET,
        balances={"jpy": 2_000_000.0, "btc": 0.1},
    )


def tape_bars(state: object) -> pd.DataFrame:
    """The M1 bars of every trade the exchange has printed (stamped as the exchange reports them)."""
    tape, clock = state.tape, state.clock  # type: ignore[attr-defined]
    n = state.visible  # type: ignore[attr-defined]
    stamps = [clock.report_ms(t) for t in tape.ts_ms[:n]]
    df = pd.DataFrame(
        {"price": tape.price[:n].round(1), "size": tape.size[:n].round(8)},
        index=pd.to_datetime(stamps, unit="ms", utc=True),
    )
    g = df.groupby(df.index.floor("1min"))
    return pd.DataFrame(
        {
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["size"].sum(),
        }
    )


def _minutes_between(lo_ms: int, hi_ms: int) -> set[pd.Timestamp]:
    """The bar minutes (exchange stamps) that the span lo..hi touches."""
    first = pd.Timestamp(lo_ms, unit="ms", tz="UTC").floor("1min")
    last = pd.Timestamp(hi_ms, unit="ms", tz="UTC").floor("1min")
    return set(pd.date_range(first, last, freq="1min"))


@dataclass
class Monitor:
    """What the world did and what the bot showed, sampled between turns of the loop; `judge`
    returns the broken rules ("[tag] what")."""

    t0: float = field(default_factory=time.monotonic)
    ws_messages: int = 0
    ws_spoke_at: float = field(default_factory=time.monotonic)  # the socket's newest message
    fallbacks: int = 0  # the feed's hand-overs to REST seen so far
    fallbacks_at_spoke: int = 0  # the feed's hand-overs when the socket last spoke
    # on REST, the first trade printed since the fallback while the socket is not silenced: a fresh
    # connection could hear the venue from then on (None: not yet, or the bars are on the socket)
    speaks_since: float | None = None
    private_reads: int = 0
    private_at: float = field(default_factory=time.monotonic)  # the exchange's newest private read
    fresh_at: float = field(default_factory=time.monotonic)  # the newest price a channel could give
    printed: int = 0  # trades the exchange had printed at the last sample
    pushed: int = 0  # trades its socket had pushed
    # minutes with trades printed while neither channel could deliver them (the socket silent, the
    # REST trades failing): no rule can ask the bot for trades nobody would give it
    blackout: set[pd.Timestamp] = field(default_factory=set)
    tape_ms: int | None = None  # the exchange's clock at the last sample
    dark: bool = False  # whether neither channel could deliver trades at the last sample
    fallbacks_at_tape: int = 0  # the feed's fallbacks at the last sample
    stale: bool = False
    reset_at: float = 0.0  # when a person last reset the breakers
    bars: dict[pd.Timestamp, tuple[float, ...]] = field(default_factory=dict)
    double: list[pd.Timestamp] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def restart_clocks(self) -> None:
        """The private syncs' deadline counts from now: between two drives the loop does not turn."""
        self.private_at = time.monotonic()


class MarketFaultMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        Tally.sequences += 1
        if Tally.sequences % 10 == 0:
            print(f"[fuzz-market] {Tally.sequences} sequences, {Tally.steps} steps", file=sys.__stdout__, flush=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="ztb-fuzz-market-"))
        self.public_down: set[str] = set()
        self.private_down = False
        self.failed = False
        self.mon = Monitor()
        self.speed = 0.0
        self.emu: EmulatorServer | None = None
        self.ws: WsServer | None = None
        self.bot: Bot | None = None

    def _build(self, speed: float) -> None:
        """The exchange replaying its tape `speed` times faster than the wall clock, its websocket,
        and `ztb live` on both (its journal, its feed)."""
        self.speed = speed
        self.emu = EmulatorServer(emulator_config(speed), tape=TAPES[speed])
        self.emu.start()
        self.ws = WsServer(self.emu.state)
        self.ws.start()
        self.referee = Referee(self.emu, self.tmp / "journal.sqlite")
        self.bot = Bot(self.emu.base_url, self.tmp / "journal.sqlite", self.tmp / "run")
        # on a compressed tape the exchange's clock runs `speed` times the local one: a decision's
        # bar age (exchange seconds) and the watch's data age (local seconds) cannot share a limit,
        # so the stale-data limit is only fuzzed where both clocks agree (speed 1)
        stale = STALE_S if speed == 1 else 1e9
        self.bot.cfg = self.bot.cfg.model_copy(
            update={
                "market_data": "websocket",
                "ws_url": self.ws.url,
                "ws_silence_s": SILENCE_S,
                "ws_reconnect_s": RECONNECT_S,
                "ws_gap_refill_s": GAP_REFILL_S,
                "risk_interval_s": RISK_INTERVAL_S,
                "poll_interval_s": 0.05,
                "risk": RISK.model_copy(update={"stale_data_s": stale, "max_consecutive_errors": 1_000}),
            }
        )
        self.feed = MarketFeed.websocket(
            self.bot.adapter, self.ws.url, self.bot.cfg.ws_max_failures, SILENCE_S, RECONNECT_S, GAP_REFILL_S
        )
        self.bot.rebuild_runner(feed=self.feed)

    # ---- the world --------------------------------------------------------------------------------
    def _sync_faults(self) -> None:
        rows = [FaultRule(kind="http_5xx", endpoint=e, times=None) for e in sorted(self.public_down)]
        if self.private_down:
            rows += [
                FaultRule(kind="http_5xx", endpoint=e, times=None) for e in ("open_orders", "transactions_pagination")
            ]
        self.emu.faults.clear()
        self.emu.faults.extend(rows)

    def _fresh_at(self, now: float, printed: bool, pushed: bool) -> float:
        """When either channel could last give the bot a fresh price: now while the REST ticker
        answers; else when the socket pushed new trades (the bars on it, or a reconnect attempt
        listening), or when a new trade was printed while the bars are on REST and its trades answer."""
        if "ticker" not in self.public_down or pushed:
            return now
        if self.feed.mode == "rest" and printed and "trades" not in self.public_down:
            return now
        return self.mon.fresh_at

    def _sample(self, judge: bool = True) -> None:
        """Read the world and the bot; judge the timed rules unless the loop's last turn was slow (a
        turn the machine's load stretched past SLOW_TURN_S: the bot could not look meanwhile)."""
        m, now = self.mon, time.monotonic()
        if self.ws.messages != m.ws_messages:
            m.ws_messages, m.ws_spoke_at, m.fallbacks_at_spoke = self.ws.messages, now, self.feed.fallbacks
        reads = sum(self.emu.requests[e] for e in PRIVATE_ENDPOINTS)
        if reads != m.private_reads:
            m.private_reads, m.private_at = reads, now
        visible = self.emu.state.visible
        printed = visible != m.printed
        m.printed = visible
        # the exchange's clock runs on whether anyone asks: a blackout is the span of its clock
        # since the last sample, not the trades made visible meanwhile
        tape_ms = self.emu.state.clock.report_ms(self.emu.state.clock.tape_now_ms())
        # dark: the REST trades fail and the socket cannot push (silent, or the bars are on REST
        # and no subscription is listening: a socket pushes only what prints while it listens)
        dark = "trades" in self.public_down and (self.ws.silent() or self.feed.mode == "rest")
        # a fallback and its hand-back inside one long turn leave no sample on REST between them
        handed = self.feed.fallbacks != m.fallbacks_at_tape and "trades" in self.public_down
        if dark or m.dark or handed:  # a span dark at either end (or in between) may hold lost trades
            m.blackout |= _minutes_between(m.tape_ms or tape_ms, tape_ms)
        m.tape_ms, m.dark, m.fallbacks_at_tape = tape_ms, dark, self.feed.fallbacks
        if self.feed.fallbacks != m.fallbacks or self.feed.mode == "websocket" or self.ws.silent():
            m.fallbacks, m.speaks_since = self.feed.fallbacks, None
        elif printed and m.speaks_since is None:
            m.speaks_since = now
        pushed = self.ws.trades_pushed != m.pushed
        m.pushed = self.ws.trades_pushed
        m.fresh_at = self._fresh_at(now, printed, pushed)
        bars = self.bot.runner.bars
        if bars is not None:
            for ts, row in bars[["open", "high", "low", "close", "volume"]].iterrows():
                values = tuple(float(v) for v in row)
                if ts in m.bars and m.bars[ts] != values:
                    m.double.append(ts)
                m.bars[ts] = values
        stale = "stale_data" in self.bot.runner.risk.state.breakers
        problems = self._judge_timed(now, stale) if judge else []
        Tally.slow_turns += not judge
        m.stale = stale
        self._record(problems)

    def _judge_timed(self, now: float, stale: bool) -> list[str]:
        m, feed, out = self.mon, self.feed, []
        # the rule is the hand-over itself: a stall must have sent the bars to REST at least once
        # (whether a reconnect attempt later hands them back is ws_recovery's business)
        handed_over = feed.fallbacks > m.fallbacks_at_spoke
        if feed.mode == "websocket" and feed.heard and not handed_over and now - m.ws_spoke_at > SILENCE_S + LATE_S:
            out.append(f"[ws_fallback] the socket has said nothing for {now - m.ws_spoke_at:.1f}s, bars still on it")
            self.seen("ws_fallback_due")
        if feed.mode == "rest" and m.speaks_since is not None:
            voiced = now - m.speaks_since
            if voiced > RECONNECT_S + CONNECT_S + LATE_S:
                out.append(f"[ws_recovery] the socket could be heard for {voiced:.1f}s, bars still on REST")
        if now - m.private_at > RISK_INTERVAL_S + LATE_S:
            out.append(f"[private_sync] no private read for {now - m.private_at:.1f}s (channel {feed.mode})")
        if self.speed != 1:
            return out
        lost = now - m.fresh_at
        # due one watch after the data went stale, or after a person reset the breakers
        due = max(m.fresh_at + STALE_S, m.reset_at) + RISK_INTERVAL_S + LATE_S
        if not stale and now > due:
            out.append(f"[stale_trips] no fresh price possible for {lost:.1f}s, no stale-data breaker")
        if stale and not m.stale:
            if lost < STALE_S - EARLY_S:
                out.append(
                    f"[stale_false] the stale-data breaker tripped {lost:.1f}s after the last fresh price was "
                    f"possible (limit {STALE_S}s; ticker {'down' if 'ticker' in self.public_down else 'up'}, "
                    f"socket {'silent' if self.ws.silent() else 'speaking'}, bars on {feed.mode})"
                )
            else:
                self.seen("stale_tripped")
        return out

    def _judge_bars(self) -> list[str]:
        """The bot's bars against the tape's (minutes fully printed), and none missing in between."""
        m = self.mon
        if not m.bars:
            return []
        truth = tape_bars(self.emu.state)
        out = [f"[bars_tape] bar {ts} changed after it closed" for ts in m.double[:3]]
        first, last = min(m.bars), max(m.bars)
        if m.blackout:
            self.seen("bars_lost_to_a_blackout")
        for ts in truth.index[(truth.index >= first) & (truth.index < last)]:
            if ts in m.blackout:
                continue
            want = tuple(float(v) for v in truth.loc[ts])
            got = m.bars.get(ts)
            if got is None:
                out.append(f"[bars_tape] the tape's bar {ts} is missing from the bot's bars")
            elif any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(got, want, strict=True)):
                out.append(f"[bars_tape] bar {ts}: the bot has {got}, the tape {want}")
            if len(out) >= 3:
                break
        return out

    def seen(self, scenario: str) -> None:
        self.mon.seen.add(scenario)

    def _record(self, problems: list[str]) -> None:
        if problems:
            self.failed = True
            Tally.violations.update({p[1 : p.index("]")] for p in problems})
            events = [e for e in self.bot.writer.events if e[0] not in ("reconciled",)][-10:]
            raise AssertionError("invariants broken:\n  " + "\n  ".join(problems) + f"\nlast events: {events}")

    def drive(self, seconds: float) -> None:
        """`ztb live`'s loop for `seconds` of wall time (the tape prints meanwhile), judged between turns."""
        self.mon.restart_clocks()
        self._sample()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            bars, t0 = self.bot.runner.stats.bars, time.monotonic()
            self.bot.runner.step()
            Tally.bars += self.bot.runner.stats.bars - bars
            self._sample(judge=time.monotonic() - t0 <= SLOW_TURN_S)
        if self.feed.fallbacks:
            self.seen("ws_fallback")
        if self.feed.recoveries:
            self.seen("ws_recovered")
        if self.bot.journal.position() != 0 and self.ws.silent():
            self.seen("stall_holding_a_position")

    # ---- rules ---------------------------------------------------------------------------------
    @initialize(signal_=st.sampled_from([1.0, 0.5, 0.0]), speed=st.sampled_from(SPEEDS))
    def opening(self, signal_: float, speed: float) -> None:
        """`ztb live` starts (reconciliation, history, the socket) and trades for a few bars."""
        Tally.steps += 1
        self._build(speed)
        self.seen(f"tape_{speed:g}x")
        self.bot.policy.signal = signal_
        assert self.bot.ensure_started()
        assert self.feed.wait_connected(10.0), "the websocket never connected"
        self.drive(1.5)

    @rule(seconds=st.sampled_from([0.5, 1.5, 3.0]))
    def run_for(self, seconds: float) -> None:
        Tally.steps += 1
        self.drive(seconds)

    @rule(signal_=st.sampled_from([0.0, 1.0, 0.5]), seconds=st.sampled_from([0.5, 1.5]))
    def signal_changes(self, signal_: float, seconds: float) -> None:
        """The policy wants another position from the next bar on."""
        Tally.steps += 1
        self.bot.policy.signal = signal_
        self.drive(seconds)

    @rule(for_s=st.sampled_from([0.2, 1.5, 4.0, 600.0]), seconds=st.sampled_from([1.5, 3.0, 5.0]))
    def ws_goes_silent(self, for_s: float, seconds: float) -> None:
        """The socket stays open and sends nothing for `for_s` seconds (600: the rest of the
        sequence), the tape printing on; the bot runs `seconds` meanwhile."""
        Tally.steps += 1
        self.ws.silence(for_s)
        if for_s > SILENCE_S:
            self.seen("ws_stall")
        self.drive(seconds)

    @rule(
        endpoints=st.sampled_from([("ticker",), ("trades",), ("ticker", "trades", "order_books")]),
        on=st.booleans(),
        seconds=st.sampled_from([0.5, 2.0, 4.0]),
    )
    def public_rest(self, endpoints: tuple[str, ...], on: bool, seconds: float) -> None:
        """Public REST endpoints fail (every request, until they come back), or come back."""
        Tally.steps += 1
        self.public_down = self.public_down - set(endpoints) if on else self.public_down | set(endpoints)
        self._sync_faults()
        if self.public_down:
            self.seen("public_rest_down")
        if "ticker" in self.public_down and "trades" not in self.public_down:
            self.seen("ticker_down_trades_up")
        self.drive(seconds)

    @rule(for_s=st.sampled_from([1.5, 600.0]), seconds=st.sampled_from([2.0, 4.0]))
    def blackout(self, for_s: float, seconds: float) -> None:
        """Both channels at once: every public REST endpoint fails and the socket goes silent for
        `for_s` (the REST endpoints stay down until a `public_rest` step brings them back)."""
        Tally.steps += 1
        self.public_down |= {"ticker", "trades", "order_books"}
        self._sync_faults()
        self.ws.silence(for_s)
        self.seen("public_rest_down")
        self.seen("ws_stall")
        self.drive(seconds)

    @rule(on=st.booleans(), seconds=st.sampled_from([0.5, 2.0]))
    def private_rest(self, on: bool, seconds: float) -> None:
        """The private reads (open orders, fills) fail, or come back."""
        Tally.steps += 1
        self.private_down = not on
        self._sync_faults()
        if self.private_down:
            self.seen("private_rest_down")
        self.drive(seconds)

    @precondition(lambda self: bool(self.bot.runner.risk.state.breakers))
    @rule()
    def operator_resets_breakers(self) -> None:
        """A person resets the breakers (`ztb live --reset-breakers`, the console's key)."""
        Tally.steps += 1
        self.bot.runner.risk.reset_breakers()
        self.mon.stale, self.mon.reset_at = False, time.monotonic()
        self.drive(0.5)

    @invariant()
    def books_and_bars(self) -> None:
        self._record(self.referee.check(self.bot.journal) + self._judge_bars())

    def teardown(self) -> None:
        try:
            if self.bot is not None and not self.failed:
                # faults off, the socket speaking: the bars come back, and the books settle
                self.public_down, self.private_down = set(), False
                self._sync_faults()
                self.ws.end_silence()
                self.drive(RECONNECT_S + CONNECT_S + 1.0)
                self.bot.manager.reconcile()  # faults are off: a failure here is a finding, not noise
                self._record(self.referee.check(self.bot.journal, settled=True) + self._judge_bars())
                Tally.orders += len(self.referee.placements)
                Tally.scenarios.update(self.mon.seen)
        finally:
            if self.bot is not None:
                self.feed.stop()
                self.bot.close()
            if self.ws is not None:
                self.ws.stop()
            if self.emu is not None:
                self.emu.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


SCENARIOS = [
    "tape_60x",
    "tape_1x",
    "ws_stall",
    "ws_fallback",
    "ws_recovered",
    "stall_holding_a_position",
    "public_rest_down",
    "ticker_down_trades_up",
    "private_rest_down",
    "stale_tripped",
    "bars_lost_to_a_blackout",
]


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize="ZTB_FUZZ_MARKET_EXAMPLES" not in os.environ,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # timing: a replay is not the same run
    )


def report_lines(seconds: float) -> list[str]:
    lines = [
        f"[fuzz-market] {Tally.sequences} sequences, {Tally.steps} steps, {Tally.bars} bars decided, "
        f"{Tally.orders} orders reached the exchange, {Tally.slow_turns} slow turns not judged, in {seconds:.1f}s",
        "[fuzz-market] sequences per scenario:",
    ]
    lines += [f"[fuzz-market]   {name:<32} {Tally.scenarios[name]:>6}" for name in SCENARIOS]
    lines.append("[fuzz-market] sequences per broken rule:")
    lines += [f"[fuzz-market]   {tag:<32} {Tally.violations[tag]:>6}" for tag in [*MARKET_RULES, *RULES]]
    return lines


@pytest.mark.slow
def test_market_data_fault_fuzzer(capsys):
    """CI: ZTB_FUZZ_MARKET_EXAMPLES sequences (default 2, the same every run); `make fuzz`: more."""
    Tally.reset()
    t0 = time.perf_counter()
    try:
        run_state_machine_as_test(MarketFaultMachine, settings=fuzz_settings(EXAMPLES))
    finally:
        with capsys.disabled():
            print("\n" + "\n".join(report_lines(time.perf_counter() - t0)))
