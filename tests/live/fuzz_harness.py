"""The fault fuzzer's world: the real bot (LiveRunner + OrderManager + ExchangeAdapter + SQLite
Journal) against the real loopback emulator, with the emulator's own books as the referee.

Nothing here is a stand-in for the code under test: decisions go through `LiveRunner.poll` (ticker,
sync, risk, sizing, cancel, place), orders through ccxt over HTTP into the emulator, state into the
journal. The only scripted parts are the ones the world supplies: the policy's signal (chosen by
the fuzzer), constant-close bars (so the decision depends on the signal, not on indicators), and
an in-memory event sink instead of a run directory.

The referee (`Referee`) hooks the emulator's order entry: at the instant an order of ours reaches
the exchange it snapshots the exchange-side position, our resting orders and the journal (read-only
SQLite connection: the risk state and how many placements have an unknown outcome), so the rules
"no order while an earlier outcome is unknown", "reduce-only never adds exposure" and the daily
limits are judged on what was true when the order was sent, not on what the bot believed.

Every broken invariant is reported as "[rule] what": `RULES` lists the rules the referee claims,
and tests/live/test_fuzz_controls.py breaks the real code for each one (a positive control) and
shows the fuzzer catches it.

The world's faults the referee also drives: a lagging fill history (`history_lag`), foreign twins of
our orders placed just before ours arrives (`arm_twin`), delayed work tracked until it has landed
(`wait_for_delayed_work`), the bot's clock running off the venue's (`set_clock_skew`), and the bot's
monotonic clock advancing with the tape (`WorldClock`, so cancel backoffs come due).

Run as a script (`python tests/live/fuzz_harness.py URL JOURNAL SIGNALS CRASH_AT`) it is the bot
process the kill-9 test restarts in a fresh interpreter; the state machine forks the same code.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from ztb_core.live.emulator.state import ApiError
from ztb_core.live.execution import orders as live_orders
from ztb_core.live.execution.journal import Journal
from ztb_core.live.loop.live_config import LiveConfig
from ztb_core.live.loop.risk import RiskConfig
from ztb_core.live.loop.runner import LiveRunner
from ztb_core.live.loop.sizing import SizingConfig
from ztb_core.live.venue.errors import ExchangeCallError
from ztb_core.live.venue.exchange import ExchangeAdapter
from ztb_core.live.venue.exchange_config import ExchangeConfig, RateLimitConfig, RetryConfig
from ztb_core.live.venue.factory import make_adapter
from ztb_core.live.venue.secrets import Credentials

KEY, SECRET = "fuzz-key-1d2c", "fuzz-secret-9a8b7c"
SYMBOL = "BTC/JPY"
CAPITAL = 36_000.0  # signal 1.0 at ~1.2M JPY is ~0.03 BTC: six minimum lots
RISK = RiskConfig(
    daily_loss_limit=Decimal("150"),  # reachable with a 0.02 BTC position and a few minutes of tape
    max_trades_per_day=6,
    # below what signal 1.0 sizes (~0.03): the position limit binds on every full-size decision, so a
    # broken limit shows on the first one
    max_position=Decimal("0.02"),
    max_notional=Decimal("10000000"),
    max_consecutive_errors=3,
    stale_data_s=1e9,  # bars are scripted; staleness is not what is fuzzed
    max_price_jump_pct=0.5,
    max_spread_bps=10_000.0,
    stop_loss_pct=0.05,
)
OPEN_STATES = ("NEW", "PARTIALLY_FILLED")
GRACE_S = 0.3  # the bot's reconcile_grace_s: how long an unknown placement may take to show up
#: the longest the world delays an order entry (test_fuzz HANGS_MS)
WORST_DELAY_S = 2.5
#: how long an unknown placement must stay absent before the bot may rule it never placed: a bot with
#: `unknown_outcome_window_s` (the venue's worst delay) is told the world's; one without uses the grace
_HAS_WINDOW = "unknown_outcome_window_s" in LiveConfig.model_fields
OUTCOME_WINDOW_S = WORST_DELAY_S + 1.0 if _HAS_WINDOW else GRACE_S

#: the invariants the referee judges; each violation message starts with "[tag]"
RULES = {
    "unknown_outcome": "no order is sent while an earlier placement's outcome is unknown, unless it reduces "
    "|position| even if every unknown placement executes",
    "reduce_only": "in reduce-only (breaker, daily halt, day loss past the limit) no order adds exposure",
    "trades_per_day": "no more exposure-adding orders per day than max_trades_per_day",
    "position_limit": "no exposure-adding order can take |position| (resting orders at worst case) past max_position",
    "private_down": "no order is sent while the private API (open orders, fills) cannot be read",
    "cancel_retry": "a cancel that failed is sent again until the exchange confirms it",
    "close_before_fills": "an order is not closed before its fills explain the amount the exchange executed",
    "journal_orders": "every journal order is the exchange order it names (keys, state, filled amount)",
    "exchange_orders": "every exchange order of ours is in the journal (or explained by an unknown placement)",
    "fills_books": "every exchange fill of ours is in the journal exactly once with its amount and price, and "
    "no journal fill is absent from the exchange",
    "position_books": "the journal's position equals the exchange's once the books settle",
    "foreign": "an order placed by someone else is never adopted nor cancelled",
}
#: fault kinds after which the client has no answer (every kind but these two fails the request)
HARMLESS_KINDS = ("latency", "partial_fill")
#: fault kinds whose request does the work (places the order) although the client gets no answer
WORK_DONE_KINDS = ("response_lost", "late_execution", "malformed_json", "latency", "partial_fill")
PRIVATE_READS = ("*", "open_orders", "transactions_pagination")


class WorldClock:
    """The bot's monotonic clock: wall time plus the tape seconds the fuzzer let pass, so a cancel
    backoff of 60 s comes due when a minute of market has gone by."""

    def __init__(self) -> None:
        self.extra_s = 0.0

    def advance(self, seconds: float) -> None:
        self.extra_s += seconds

    def __call__(self) -> float:
        return time.monotonic() + self.extra_s


#: the bot's wall clock runs this many ms off the venue's (the venue's clock is the machine's)
_SKEW = {"ms": 0}


class _SkewedTime:
    """The `time` the bot's wall clock (`orders.now_ms`, and the order ids) reads, `_SKEW` ms off."""

    @staticmethod
    def time_ns() -> int:
        return time.time_ns() + _SKEW["ms"] * 1_000_000


#: the bot's `in_flight_match` rule (adopt | ask), set per sequence; inherited by forked bot processes
_MATCH = {"rule": "adopt"}


def set_in_flight_match(rule: str) -> None:
    """Bots built from now on adopt a lone in-flight match (`adopt`) or ask the operator (`ask`)."""
    _MATCH["rule"] = rule


def set_clock_skew(ms: int) -> None:
    """Run the bot's clock `ms` off the exchange's: every part of the bot that reads the wall clock
    reads it through `orders.now_ms` (journal timestamps, submission times, reconciliation windows,
    the skew measurement itself), so patching the `time` that function reads skews them all alike.
    0 restores the real module, leaving nothing behind for later tests in the same process.
    Inherited by forked bot processes."""
    _SKEW["ms"] = int(ms)
    live_orders.time = _SkewedTime if ms else time  # type: ignore[assignment]


def live_config(url: str, journal_path: Path, aggressiveness_bps: float = 5.0) -> LiveConfig:
    """A long-only spot config with leverage 1 (constant bars: realised vol is the floor)."""
    return LiveConfig(
        mode="live",
        confirm_live=True,
        exchange=ExchangeConfig(
            exchange="coincheck",
            symbol=SYMBOL,
            api_url=url,
            timeout_ms=150,
            retry=RetryConfig(max_attempts=2, base_delay_ms=1, max_delay_ms=2),
            rate_limit=RateLimitConfig(requests_per_s=10_000, burst=10_000, ccxt_rate_limit=False),
        ),
        risk=RISK,
        sizing=SizingConfig(
            target_vol=5.0,
            expected_sharpe=100.0,
            kelly_fraction=1.0,
            max_leverage=1.0,
            vol_lookback_bars=10,
            min_change_fraction=0.0,
            allow_short=False,
            aggressiveness_bps=aggressiveness_bps,
        ),
        capital=CAPITAL,
        warmup_bars=12,
        journal_path=journal_path,
        reconcile_grace_s=GRACE_S,
        **({"unknown_outcome_window_s": OUTCOME_WINDOW_S} if _HAS_WINDOW else {}),
        **({"in_flight_match": _MATCH["rule"]} if "in_flight_match" in LiveConfig.model_fields else {}),
    )


class ScriptedPolicy:
    """The fuzzer's decision: whatever target `signal` the current step chose."""

    name = "fuzz"
    warmup_bars = 2
    buffer_bars = 12

    def __init__(self) -> None:
        self.signal = 0.0

    def decide(self, bars: pd.DataFrame, position: float) -> float:
        return self.signal


class ConstantBars:
    """`market` for the runner: one new constant-close bar per poll (no HTTP), limits from the adapter."""

    def __init__(self, adapter: ExchangeAdapter, close: float = 1_200_000.0) -> None:
        self.adapter, self.close = adapter, close
        self.hold = False  # True: no bar has closed since the last one (a poll between bars)

    def market_limits(self, symbol: str | None = None) -> Any:
        return self.adapter.market_limits(symbol)

    def fetch_ohlcv_or_build(self, tf: str, since_ms: int, now_ms: int) -> pd.DataFrame:
        if self.hold:
            return pd.DataFrame({k: [] for k in ("open", "high", "low", "close", "volume")})
        span = 60_000
        n = max(1, (now_ms - since_ms) // span) if now_ms - since_ms > span else 1
        start = pd.Timestamp(since_ms, unit="ms", tz="UTC").floor("1min")
        idx = pd.date_range(start, periods=int(min(n, 50)), freq="1min", tz="UTC")
        c = self.close
        return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, index=idx)


class EventSink:
    """The run directory's writer, in memory (the runner's events are kept for failure reports)."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        self.events: list[tuple[str, dict]] = []

    def event(self, name: str, /, **data: Any) -> None:
        self.events.append((name, data))

    def metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        pass

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        pass


class Bot:
    """One bot process's worth of objects on a journal: adapter, journal, runner."""

    def __init__(self, url: str, journal_path: Path, run_dir: Path, clock: WorldClock | None = None) -> None:
        self.cfg = live_config(url, journal_path)
        self.adapter = make_adapter(self.cfg.exchange, Credentials(KEY, SECRET, source="test"))
        self.journal = Journal(journal_path, "live", "coincheck", SYMBOL)
        self.policy = ScriptedPolicy()
        run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = EventSink(run_dir)
        self.bars = ConstantBars(self.adapter)
        self.runner = LiveRunner(self.cfg, self.bars, self.adapter, self.journal, self.policy, self.writer, mode="live")
        if clock is not None:  # the manager's cancel backoff runs on the world's clock
            self.runner.manager._clock = clock
        self.started = False

    def rebuild_runner(self, feed: Any = None) -> None:
        """A runner on `self.cfg` as it stands now (before `ensure_started`); with a `MarketFeed`,
        bars come from the trade stream and the history from the exchange, as in `ztb live`."""
        market = self.adapter if feed is not None else self.bars
        self.runner = LiveRunner(
            self.cfg, market, self.adapter, self.journal, self.policy, self.writer, mode="live", feed=feed
        )
        self.started = False

    @property
    def manager(self):
        return self.runner.manager

    def ensure_started(self) -> bool:
        """`LiveRunner.start` (reconciliation at start); a failed start is retried on the next call,
        as a supervisor restarting `ztb live` would."""
        if not self.started:
            try:
                self.runner.start()
                self.started = True
            except ExchangeCallError as exc:
                self.writer.event("start_failed", error=str(exc)[:200])
        return self.started

    def decide(self, signal_: float, aggressiveness_bps: float) -> None:
        if not self.ensure_started():
            return
        sizing = self.cfg.sizing.model_copy(update={"aggressiveness_bps": aggressiveness_bps})
        self.runner.cfg = self.cfg.model_copy(update={"sizing": sizing})
        self.policy.signal = signal_
        self.runner.poll()

    def tick(self) -> None:
        """A poll between two bars: cancel retries that are due, a sync if orders rest, no decision."""
        if not self.ensure_started():
            return
        self.bars.hold = True
        try:
            self.runner.poll()
        finally:
            self.bars.hold = False

    def close(self) -> None:
        self.journal.close()


def play_script(machine: Any, steps: list[Callable[[Any], None]], judge: Callable[[Any], None]) -> str | None:
    """Run a fuzzer's steps in order on `machine`, `judge` (its invariant) after each, then its
    teardown (settle + final check); the first violation's message, or None. A failed machine is
    only closed, not settled: the final check would mask the first failure."""
    try:
        for step in steps:
            step(machine)
            judge(machine)
    except AssertionError as exc:
        machine.failed = True
        machine.teardown()
        return str(exc)
    try:
        machine.teardown()
    except AssertionError as exc:
        return str(exc)
    return None


# ---- the referee -------------------------------------------------------------------------------
@dataclass
class Placement:
    """What was true at the exchange (and in the journal) when one of our orders arrived."""

    order_id: int
    side: str
    amount: Decimal
    rate: Decimal
    position: Decimal  # our filled position at the exchange just before
    resting: list[tuple[str, Decimal]]  # our open orders (side, remaining) just before
    unresolved: int  # journal orders in submitted/unknown, this one included
    risk: dict
    equity: Decimal  # capital + our cash flow + position * last, at the exchange
    private_down: list[str] = field(default_factory=list)  # fault rows failing every private read
    unknown: list[tuple[str, Decimal]] = field(default_factory=list)  # earlier unresolved placements

    @property
    def signed(self) -> Decimal:
        return self.amount if self.side == "buy" else -self.amount

    def _reduces(self, same_side: Decimal) -> bool:
        """Reduces |position| even if `same_side` more on this order's side executes first."""
        p, x = self.position, self.signed
        if p == 0 or (x > 0) == (p > 0):
            return False
        after = p + x + (same_side if self.side == "buy" else -same_side)
        return after == 0 or ((after > 0) == (p > 0) and abs(after) <= abs(p))

    def reducing(self) -> bool:
        """Reduces |position| whatever resting orders do: same-side resting orders counted as filled."""
        return self._reduces(sum((r for s, r in self.resting if s == self.side), Decimal(0)))

    def reducing_whatever_unknown(self) -> bool:
        """Reduces |position| even if every earlier placement of unknown outcome executes in full too."""
        same = sum((r for s, r in self.resting if s == self.side), Decimal(0))
        return self._reduces(same + sum((a for s, a in self.unknown if s == self.side), Decimal(0)))

    def worst_after(self) -> Decimal:
        """The position if this order and every resting order on its side fill."""
        same = sum((r for s, r in self.resting if s == self.side), Decimal(0))
        return self.position + self.signed + (same if self.side == "buy" else -same)


def private_reads_down(rules: list[Any]) -> list[str]:
    """The fault rows that fail every read of open orders or fills (every request, every time)."""
    return [
        f"{r.kind} on {r.endpoint}"
        for r in rules
        if r.endpoint in PRIVATE_READS
        and r.kind not in HARMLESS_KINDS
        and r.times is None
        and r.probability >= 1.0
        and r.after == 0
    ]


@dataclass
class Referee:
    """Hooks the emulator's order entry, cancel, fill history and fault table; judges the journal
    against the books. Every violation message starts with its rule's tag (see RULES)."""

    emulator: Any
    journal_path: Path
    capital: Decimal = Decimal(repr(CAPITAL))
    foreign: set[int] = field(default_factory=set)
    placements: list[Placement] = field(default_factory=list)
    cancelled_by_api: list[int] = field(default_factory=list)
    checked_upto: int = 0
    #: broken-invariant messages found at order entry (judged once, reported by `check`)
    entry_violations: list[str] = field(default_factory=list)
    #: fills the history shows while it lags (None: no lag): newer fills exist but are not listed yet
    lag_from: int | None = None
    #: monotonic time at which a lag ends by itself (a venue's history catches up within its worst delay)
    lag_until: float = 0.0
    #: whether a lag may go on while a placement of ours has no answer (its fills may be all the evidence
    #: there is of it: see test_fuzz.AWAITING_FIX late_beyond_grace); False ends the lag at such a placement
    lag_with_unknown: bool = True
    #: a foreign twin is placed for the next placement of ours whose answer is lost (before/after it)
    twin: str | None = None
    #: whether a twin may be made of a placement that is not on the book when the bot looks (never
    #: entered, or entered late; see test_fuzz.AWAITING_FIX twin_of_unseen)
    twins_of_unseen: bool = True
    #: (side, amount, price) of our placements that were given a foreign twin
    twinned: set[tuple] = field(default_factory=set)
    #: monotonic time by which every delayed request (late execution, hang) has done its work
    delayed_until: float = 0.0
    #: situations the world produced, for the per-scenario counts
    seen: set[str] = field(default_factory=set)
    client_timeout_s: float = 0.15

    def __post_init__(self) -> None:
        state, faults = self.emulator.state, self.emulator.faults
        self._create, self._cancel, self._transactions = state.create_order, state.cancel_order, state.transactions
        self._pick = faults.pick
        state.create_order = self._hooked_create
        state.cancel_order = self._hooked_cancel
        state.transactions = self._hooked_transactions
        faults.pick = self._hooked_pick
        self._local = threading.local()

    # -- exchange-side books --------------------------------------------------------------------
    def ours(self) -> dict[int, Any]:
        return {oid: o for oid, o in self.emulator.state.orders.items() if oid not in self.foreign}

    def our_fills(self) -> list[Any]:
        return [f for f in self.emulator.state.fills if f.order_id not in self.foreign]

    def position(self) -> Decimal:
        return sum((f.amount if f.side == "buy" else -f.amount for f in self.our_fills()), Decimal(0))

    def cash(self) -> Decimal:
        return sum(
            ((-f.rate * f.amount if f.side == "buy" else f.rate * f.amount) - f.fee for f in self.our_fills()),
            Decimal(0),
        )

    def place_foreign(self, side: str, amount: Decimal, rate: Decimal) -> int | None:
        """An order placed by someone else on the same account (straight into the books)."""
        try:
            out = self._create({"pair": "btc_jpy", "order_type": side, "rate": str(rate), "amount": str(amount)})
        except ApiError:
            return None
        self.foreign.add(int(out["id"]))
        return int(out["id"])

    def unknown_but_placed(self, journal: Journal) -> Any:
        """A journal order whose outcome the bot does not know although the exchange has it, and
        which the bot can see when it next looks: resting on the book (not filled and gone), or any
        order when a bot asks (a bot that adopts cannot tell ours from a twin it cannot see, the
        documented limit of `in_flight_match: adopt`)."""
        known = journal.known_exchange_ids()
        unmapped = [
            o
            for oid, o in self.ours().items()
            if str(oid) not in known and (self.twins_of_unseen or o.status in OPEN_STATES)
        ]
        for u in journal.unresolved():
            if any((o.side, o.amount, o.rate) == (u.side, u.amount, u.price) for o in unmapped):
                self.twinned.add((u.side, u.amount, u.price))
                return u
        return None

    def twin_in_doubt(self, journal: Journal) -> bool:
        """Whether a placement of ours with a foreign twin still has an unknown outcome (a lagging
        history now could hide ours once it fills, leaving a bot that adopts one candidate: the twin)."""
        return any((u.side, u.amount, u.price) in self.twinned for u in journal.unresolved())

    def play_operator(self, journal: Journal) -> None:
        """`ztb live reconcile --resolve ID --as ours|not-ours` for every ambiguous match, told the
        truth (the referee knows which orders are foreign)."""
        try:
            from ztb_core.live.execution.reconcile import AMBIGUOUS_KEY, ResolveError, resolve_order
        except ImportError:  # a bot without operator resolution (older code): nothing to decide
            return
        for _client_id, candidates in dict(journal.get_state(AMBIGUOUS_KEY, {})).items():
            for eid in candidates:
                if int(eid) in self.foreign:
                    resolve_order(journal, eid, "not-ours")
            for eid in candidates:
                if int(eid) not in self.foreign:
                    try:
                        resolve_order(journal, eid, "ours")
                    except ResolveError:
                        pass  # already adopted by another claimant
                    break

    def wait_for_delayed_work(self, limit_s: float = 15.0) -> None:
        """Keep the exchange running until every request that hangs before doing its work (a late
        execution, a delayed order entry) has done it: the final books include late work."""
        left = min(self.delayed_until - time.monotonic(), limit_s)
        if left > 0:
            time.sleep(left + 0.05)

    def _journal_view(self) -> tuple[list[tuple[str, Decimal, Decimal]], dict, set[str]]:
        """(side, amount, price) of every placement in submitted/unknown, the risk state, and the
        exchange ids the journal knows."""
        db = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(
                "SELECT side, amount, price FROM orders WHERE state IN ('submitted','unknown')"
            ).fetchall()
            row = db.execute("SELECT value FROM kv WHERE key='risk_state'").fetchone()
            known = {r[0] for r in db.execute("SELECT exchange_id FROM orders WHERE exchange_id IS NOT NULL")}
        except sqlite3.OperationalError:  # journal not created yet
            return [], {}, set()
        finally:
            db.close()
        unresolved = [(r[0], Decimal(r[1]), Decimal(r[2])) for r in rows]
        return unresolved, (json.loads(row[0]) if row else {}), known

    def _being_submitted(self) -> tuple[str, Decimal, Decimal] | None:
        """Side, amount and price of the order the bot is sending now (journaled `submitted` first)."""
        db = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute(
                "SELECT side, amount, price FROM orders WHERE state='submitted' ORDER BY created_ms DESC LIMIT 1"
            ).fetchone()
        except sqlite3.OperationalError:
            return None
        finally:
            db.close()
        return (row[0], Decimal(row[1]), Decimal(row[2])) if row else None

    # -- hooks ----------------------------------------------------------------------------------
    def _pick_rules(self) -> list[Any]:
        return self.emulator.faults.rules()

    def _hooked_pick(self, endpoint: str) -> tuple[list[Any], Any]:
        delays, fault = self._pick(endpoint)
        kind = fault.kind if fault is not None else None
        wait_s = sum(d.latency_ms for d in delays) / 1000.0
        hang_s = fault.hang_ms / 1000.0 if kind in ("timeout", "response_lost", "late_execution") else 0.0
        if wait_s + hang_s > 0:  # a request that hangs: its work (if any) lands later
            self.delayed_until = max(self.delayed_until, time.monotonic() + wait_s + hang_s + 0.05)
        self._local.twin_after = None
        if endpoint != "create_order":
            return delays, fault
        # what the bot knew when it sent the order (a delayed entry is judged on that, not on what
        # the fuzzer changed while the request hung)
        self._local.arrival = (self._journal_view(), private_reads_down(self._pick_rules()))
        work_s = wait_s + (hang_s if kind == "late_execution" else 0.0)  # before the order is entered
        placed = kind is None or kind in WORK_DONE_KINDS
        if placed and work_s > self.client_timeout_s:
            self.seen.add("late_beyond_grace" if work_s > GRACE_S else "late_within_grace")
        answer_lost = (kind is not None and kind not in HARMLESS_KINDS) or wait_s > self.client_timeout_s
        if answer_lost and not self.lag_with_unknown:
            self.lag_from = None
        # on the book when the bot next looks: entered at arrival, not late (nor never), and not
        # behind a lagging history should it fill at once
        visible = placed and work_s <= 0.05 and self.lag_from is None
        if self.twin is not None and answer_lost and (visible or self.twins_of_unseen):
            keys = self._being_submitted()
            if keys is not None:
                self.seen.add("twin_of_placed" if visible else "twin_of_unseen")
                self.twinned.add(keys)
                if self.twin == "before" or not placed:  # never placed: before and after are the same
                    self.place_foreign(*keys)
                else:
                    self._local.twin_after = keys
                self.twin = None
        return delays, fault

    def _hooked_transactions(self, params: dict, paginated: bool) -> dict:
        state = self.emulator.state
        if self.lag_from is not None and time.monotonic() > self.lag_until:
            self.lag_from = None  # caught up
        if self.lag_from is None:
            return self._transactions(params, paginated)
        with state.lock:
            state.advance()
            full = state.fills
            if len(full) > self.lag_from:
                self.seen.add("history_lag_hid_fills")
            state.fills = full[: self.lag_from]
            try:
                return self._transactions(params, paginated)
            finally:
                # the clock is manual (speed 0): nothing matched in between, so nothing was appended
                state.fills = full

    def _hooked_create(self, params: dict, fill_ratio: float | None = None) -> dict:
        state = self.emulator.state
        with state.lock:
            state.advance()
            arrival = getattr(self._local, "arrival", None)
            self._local.arrival = None
            (unresolved, risk, known_ids), down = arrival or (
                self._journal_view(),
                private_reads_down(self._pick_rules()),
            )
            this = (params["order_type"], Decimal(params["amount"]), Decimal(params["rate"]))
            if this in unresolved:  # the one being sent now
                unresolved.remove(this)
            # an unknown placement that has already reached the book is in the position or among the
            # resting orders below: counting it again as unknown would double its worst case
            for o in self.ours().values():
                keys = (o.side, o.amount, o.rate)
                if str(o.id) not in known_ids and keys in unresolved:
                    unresolved.remove(keys)
            resting = [(o.side, o.remaining) for o in self.ours().values() if o.open]
            pos = self.position()
            equity = self.capital + self.cash() + pos * state.last_price()
            out = self._create(params, fill_ratio)
            self.placements.append(
                Placement(
                    int(out["id"]),
                    params["order_type"],
                    Decimal(params["amount"]),
                    Decimal(params["rate"]),
                    pos,
                    resting,
                    len(unresolved) + 1,
                    risk,
                    equity,
                    down,
                    [(side, amount) for side, amount, _ in unresolved],
                )
            )
            keys = getattr(self._local, "twin_after", None)
            if keys is not None:  # someone else's order with our keys, right after ours
                self._local.twin_after = None
                self.place_foreign(*keys)
            return out

    def _hooked_cancel(self, raw_id: Any) -> dict:
        out = self._cancel(raw_id)
        self.cancelled_by_api.append(int(raw_id))
        return out

    # -- judging --------------------------------------------------------------------------------
    def _judge_entries(self) -> None:
        """Rules at order entry, each placement judged once."""
        for p in self.placements[self.checked_upto :]:
            self.checked_upto += 1
            where = f"order {p.order_id} ({p.side} {p.amount} @ {p.rate}, position {p.position})"
            if p.unresolved > 1 and not p.reducing_whatever_unknown():
                self.entry_violations.append(
                    f"[unknown_outcome] {where} was placed while {p.unresolved - 1} earlier placement(s) had an "
                    "unknown outcome"
                )
            if p.private_down:
                self.entry_violations.append(
                    f"[private_down] {where} was placed while every private read failed ({', '.join(p.private_down)})"
                )
            risk = p.risk or {}
            reasons = []
            if risk.get("breakers"):
                reasons.append(f"breakers {sorted(risk['breakers'])}")
            if risk.get("daily_halt"):
                reasons.append(f"daily halt ({risk['daily_halt']})")
            start = risk.get("day_start_equity")
            if start is not None and p.equity - Decimal(start) <= -RISK.daily_loss_limit:
                reasons.append(f"day loss {Decimal(start) - p.equity:.0f} >= limit {RISK.daily_loss_limit}")
            if reasons and not p.reducing():
                self.entry_violations.append(
                    f"[reduce_only] {where} adds exposure in reduce-only ({'; '.join(reasons)}); resting {p.resting}"
                )
            if not p.reducing() and abs(p.worst_after()) > RISK.max_position:
                self.entry_violations.append(
                    f"[position_limit] {where} can take the position to {p.worst_after()} (resting {p.resting}), "
                    f"limit {RISK.max_position}"
                )
        increasing = [p for p in self.placements if not p.reducing()]
        if len(increasing) > RISK.max_trades_per_day:
            msg = (
                f"[trades_per_day] {len(increasing)} exposure-adding orders placed today, limit "
                f"{RISK.max_trades_per_day}: {[p.order_id for p in increasing]}"
            )
            if msg not in self.entry_violations:
                self.entry_violations.append(msg)

    def check(self, journal: Journal, settled: bool = False) -> list[str]:
        """Every invariant against the emulator's books; `settled` after a fault-free sync, when the
        journal must agree with the exchange exactly (no lag allowed)."""
        self._judge_entries()
        out = list(self.entry_violations)
        state = self.emulator.state
        with state.lock:
            ours = self.ours()
            fills = {f.id: f for f in self.our_fills()}
            all_orders = dict(state.orders)
            foreign_status = {oid: state.orders[oid].status for oid in self.foreign}
        orders = journal.orders()
        by_eid = {o.exchange_id: o for o in orders if o.exchange_id is not None}
        # foreign orders: never adopted, never cancelled
        for oid in self.foreign:
            if str(oid) in by_eid:
                out.append(f"[foreign] foreign order {oid} was adopted by journal order {by_eid[str(oid)].client_id}")
            if oid in self.cancelled_by_api:
                out.append(f"[foreign] foreign order {oid} was cancelled by the bot (status {foreign_status[oid]})")
        # journal -> exchange
        for eid, o in by_eid.items():
            ex = all_orders.get(int(eid)) if eid.isdigit() else None
            if ex is None:
                out.append(
                    f"[journal_orders] journal order {o.client_id} names exchange order {eid}, which does not exist"
                )
                continue
            executed = ex.amount - ex.remaining
            if o.filled > executed:
                out.append(
                    f"[journal_orders] journal order {o.client_id} filled {o.filled} > exchange executed {executed}"
                )
            if o.terminal and o.filled != executed:
                out.append(
                    f"[close_before_fills] journal order {o.client_id} is {o.state} with {o.filled} filled, the "
                    f"exchange executed {executed} (status {ex.status}): closed before its fills were read"
                )
            if o.state == "filled" and ex.status != "FILLED":
                out.append(
                    f"[journal_orders] journal order {o.client_id} is filled, exchange order {eid} is {ex.status}"
                )
            if o.state == "cancelled" and ex.status in OPEN_STATES:
                out.append(
                    f"[journal_orders] journal order {o.client_id} is cancelled but exchange order {eid} still rests"
                )
            if (o.side, o.amount, o.price) != (ex.side, ex.amount, ex.rate):
                out.append(
                    f"[journal_orders] journal order {o.client_id} does not match exchange order {eid} "
                    "(side/amount/price)"
                )
            if settled and o.state == "cancel_requested" and ex.status in OPEN_STATES:
                out.append(
                    f"[cancel_retry] journal order {o.client_id} has asked for a cancel, the exchange still has "
                    f"order {eid} open after the faults cleared and the cancel backoff passed: not retried"
                )
            elif settled and (o.state in ("open", "partially_filled", "cancel_requested")) != (
                ex.status in OPEN_STATES
            ):
                out.append(
                    f"[journal_orders] after a clean sync journal order {o.client_id} is {o.state}, exchange "
                    f"{ex.status}"
                )
        # exchange -> journal: ours without a journal id must be explainable by an unresolved order
        unresolved = [o for o in orders if o.state in ("submitted", "unknown")]
        for oid, ex in sorted(ours.items()):
            if str(oid) in by_eid:
                continue
            twin = next((u for u in unresolved if (u.side, u.amount, u.price) == (ex.side, ex.amount, ex.rate)), None)
            if twin is None or settled:
                out.append(
                    f"[exchange_orders] exchange order {oid} ({ex.side} {ex.amount} @ {ex.rate}, {ex.status}) is "
                    "not in the journal"
                )
            else:
                unresolved.remove(twin)
        out.extend(self._check_fills(journal, fills, settled))
        for o in orders:
            # a live order's amount may trail its fills between two passes (a kill between journaling a
            # fill and updating the order; the next pass recomputes it); a closed one's never may
            total, _ = journal.filled_of(o.client_id)
            if total != o.filled and (settled or o.terminal):
                out.append(
                    f"[journal_orders] journal order {o.client_id} ({o.state}) says filled {o.filled}, its fills "
                    f"sum to {total}"
                )
        pos_fills = journal.position()
        pos_orders = sum((o.filled if o.side == "buy" else -o.filled for o in orders), Decimal(0))
        if settled and pos_fills != pos_orders:
            out.append(
                f"[position_books] journal position {pos_fills} (fills) != {pos_orders} (orders' filled amounts)"
            )
        if settled and pos_fills != self.position():
            out.append(f"[position_books] journal position {pos_fills} != exchange position {self.position()}")
        return out

    def _check_fills(self, journal: Journal, fills: dict[int, Any], settled: bool) -> list[str]:
        """The journal's fills against the exchange's: by the exchange's fill id, and by content (the
        exchange order, side, amount, price of each fill) so that the same fill journaled under two
        ids, or one journaled with another amount or price, shows."""
        out: list[str] = []
        jfills = journal.fills()
        journaled: Counter[tuple] = Counter()
        for f in jfills:
            ex = fills.get(int(f.trade_id)) if f.trade_id.isdigit() else None
            owner = journal.get(f.client_id) if f.client_id else None
            journaled[(owner.exchange_id if owner else None, f.side, f.amount, f.price)] += 1
            if ex is None:
                out.append(f"[fills_books] journal fill {f.trade_id} is not one of our fills at the exchange")
                continue
            if owner is None or owner.exchange_id != str(ex.order_id):
                out.append(
                    f"[fills_books] journal fill {f.trade_id} is booked to {f.client_id}, the exchange says order "
                    f"{ex.order_id}"
                )
            if (f.side, f.amount, f.price) != (ex.side, ex.amount, ex.rate):
                out.append(
                    f"[fills_books] journal fill {f.trade_id} is {f.side} {f.amount} @ {f.price}, the exchange's "
                    f"is {ex.side} {ex.amount} @ {ex.rate}"
                )
        if settled:
            at_exchange = Counter((str(f.order_id), f.side, f.amount, f.rate) for f in fills.values())
            for key in sorted(set(at_exchange) | set(journaled), key=str):
                if journaled[key] != at_exchange[key]:
                    eid, side, amount, price = key
                    out.append(
                        f"[fills_books] {side} {amount} @ {price} of exchange order {eid}: {at_exchange[key]} fill(s) "
                        f"at the exchange, {journaled[key]} in the journal"
                    )
        return out


# ---- the bot as a separate process, killed at a chosen point ----------------------------------
def install_crash_point(crash_at: int, on_crash: Callable[[], None] | None = None) -> None:
    """SIGKILL this process at the `crash_at`-th point, counting two per exchange HTTP attempt and
    two per journal transaction (just before it, just after it): a death between any two steps of
    the write-ahead protocol, including after the exchange acted but before the journal heard."""
    counter = {"n": 0}

    def tick() -> None:
        counter["n"] += 1
        if counter["n"] == crash_at:
            if on_crash is not None:
                on_crash()
            os.kill(os.getpid(), signal.SIGKILL)

    once = ExchangeAdapter._once

    def crashing_once(self, *args, **kwargs):
        tick()
        try:
            return once(self, *args, **kwargs)
        finally:
            tick()

    tx_enter, tx_exit = Journal._Tx.__enter__, Journal._Tx.__exit__

    def crashing_enter(self):
        tick()
        return tx_enter(self)

    def crashing_exit(self, *exc):
        out = tx_exit(self, *exc)
        tick()
        return out

    ExchangeAdapter._once = crashing_once
    Journal._Tx.__enter__ = crashing_enter
    Journal._Tx.__exit__ = crashing_exit


def bot_process(
    url: str,
    journal_path: Path,
    run_dir: Path,
    signals: list[tuple[float, float]],
    crash_at: int,
    clock: WorldClock | None = None,
) -> None:
    """The body of a bot process: start (reconcile), then one decision per signal. `clock`: the
    world's monotonic clock, as the bots of the parent read it (the journal stamps monotonic send
    times that every process on the machine must read alike)."""
    install_crash_point(crash_at)
    bot = Bot(url, journal_path, run_dir, clock)
    try:
        for sig, aggr in signals:
            bot.decide(sig, aggr)
    finally:
        bot.close()


def fork_bot(
    url: str,
    journal_path: Path,
    run_dir: Path,
    signals: list[tuple[float, float]],
    crash_at: int,
    timeout_s: float,
    clock: WorldClock | None = None,
) -> int:
    """Run `bot_process` in a forked child; returns its wait status as a negative signal or exit code.
    A child still alive after `timeout_s` is killed with SIGKILL too."""
    pid = os.fork()
    if pid == 0:  # the child: never return into the test runner
        code = 0
        try:
            bot_process(url, journal_path, run_dir, signals, crash_at, clock)
        except BaseException:  # noqa: BLE001 - the parent judges the journal, not the exit path
            code = 3
        os._exit(code)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


if __name__ == "__main__":  # the bot in a fresh interpreter: URL JOURNAL RUN_DIR SIGNALS_JSON CRASH_AT
    url_, journal_, run_, signals_, crash_ = sys.argv[1:6]
    bot_process(url_, Path(journal_), Path(run_), [tuple(s) for s in json.loads(signals_)], int(crash_))
