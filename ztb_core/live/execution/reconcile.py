"""Reconciliation: make the journal agree with the exchange.

Run at start (after a crash the journal may hold orders in `submitted` whose fate we never heard)
and on every sync of the decision loop. One pass:

1. fetch the exchange's open orders and every fill of ours newer than the journal's fill cursor
   (the newest fill id a complete pass has read) and back to the oldest order not matched yet or no
   longer on the book (its fills can be older than the cursor): all pages, not one;
2. resolve every unresolved order (`submitted`/`unknown`). Coincheck takes no client order id, so
   an order is matched by side, price, amount and the exchange's own timestamps: an open order at
   our price with remaining <= our amount, or an exchange order id whose fills (at or better than
   our limit, totalling <= our amount) are not claimed by another journaled order. Only orders
   that appeared after the newest exchange order id we had seen when ours was sent (the watermark
   recorded with the submission) qualify, and none the operator ruled foreign. Our send time is
   moved onto the exchange's clock with the measured skew; a match is adopted only as proof: it
   is the one match, stamped while our request could have been at the exchange (sent .. sent +
   HTTP timeout, give or take the skew's error). A match stamped before (a twin, or a clock that
   is off), after (a late execution, or a twin placed after ours), or several matches: the order
   stays unknown (counted at its worst case, new orders blocked, exits that only reduce still
   allowed), the report lists the candidates and the operator decides (`ztb live reconcile
   --resolve EXCHANGE_ID --as ours|not-ours`). No match at all over `grace_ms` (the venue's worst
   execution delay: minutes, `unknown_outcome_window_s`) is positive evidence that the exchange
   never took it: `rejected`;
3. record fills of known orders (idempotent by trade id) and move their states;
4. an order we believed resting that is no longer open is `cancelled` only when the exchange's
   executed amount for it is explained by the fills we recorded; otherwise it stays live (its
   fills are not readable yet) and the next pass looks again.

Exchange open orders that match nothing in the journal are reported as orphans (placed by a person
or another program); they are never touched.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from ...errors import ZtbError
from .journal import Journal
from .orders import (
    CANCEL_REQUESTED,
    CANCELLED,
    FILLED,
    NEW,
    OPEN,
    REJECTED,
    SUBMITTED,
    UNKNOWN,
    Fill,
    Order,
    now_ms,
)

log = logging.getLogger("ztb.live.reconcile")


class Venue(Protocol):
    """What reconciliation needs of an exchange (the ccxt adapter or the paper venue)."""

    def fetch_open_orders(self, symbol: str | None = None) -> list[Any]: ...

    def fetch_fills(self, symbol: str | None = None, since_ms: int | None = None, after: str | None = None) -> Any: ...

    def exchange_filled(self, exchange_id: str, symbol: str | None = None) -> Decimal | None: ...


@dataclass
class ReconcileReport:
    resolved: list[str] = field(default_factory=list)  # unresolved orders matched to the exchange
    not_placed: list[str] = field(default_factory=list)  # unresolved orders the exchange never took
    still_unresolved: list[str] = field(default_factory=list)
    new_fills: list[str] = field(default_factory=list)  # trade ids recorded this pass
    closed: list[str] = field(default_factory=list)  # orders that left the book
    orphans: list[str] = field(default_factory=list)  # exchange open orders not in the journal
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # unresolved order -> candidate exchange ids
    fills_pending: list[str] = field(default_factory=list)  # left the book, executed amount not yet in fills
    # exchange orders that appeared after the window and could be an order ruled never placed
    suspects: dict[str, str] = field(default_factory=dict)  # exchange id -> client id

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in self.__dict__.items()}

    @property
    def changed(self) -> bool:
        return bool(
            self.resolved or self.not_placed or self.new_fills or self.closed or self.ambiguous or self.suspects
        )


def _to_fill(t: Any, client_id: str | None) -> Fill:
    return Fill(
        trade_id=str(t.id),
        client_id=client_id,
        exchange_order_id=t.order_id,
        side=t.side,
        amount=Decimal(t.amount),
        price=Decimal(t.price),
        fee=Decimal(t.fee or 0),
        fee_currency=t.fee_currency or "",
        time_ms=int(t.timestamp_ms),
    )


def _price_ok(order: Order, price: Decimal) -> bool:
    return price <= order.price if order.side == "buy" else price >= order.price


def _left_book_as(venue: Venue, symbol: str, eid: str, order: Order, filled: Decimal) -> bool:
    """Could exchange order `eid`, gone from the book with `filled` executed, be our unknown `order`?
    Nobody can cancel an order of ours whose id we never learnt, so ours left the book fully filled;
    a smaller one is someone else's. The exception, an order the exchange itself cancelled part-way
    (maintenance), is told by the order's own amount and price where the venue can look it up."""
    if filled == order.amount:
        return True
    if filled > order.amount or not hasattr(venue, "fetch_order"):
        return False
    status = venue.fetch_order(eid, symbol)
    return status.amount == order.amount and status.price == order.price and status.side in (None, order.side)


#: journal kv keys
CURSOR_KEY = "fills_cursor"  # newest fill id read by a complete pass
WATERMARK_KEY = "exchange_order_watermark"  # newest numeric exchange order id seen (ours or not)
FOREIGN_KEY = "foreign_orders"  # exchange order ids the operator ruled not ours
AMBIGUOUS_KEY = "ambiguous_matches"  # unresolved client id -> candidate exchange ids
SUSPECT_KEY = "late_suspects"  # exchange id -> client id of an order ruled never placed that it could be
#: how long after an order was ruled never placed a matching exchange order still makes it a suspect
SUSPECT_HORIZON_MS = 86_400_000
NOT_PLACED_REASON = "not found at the exchange: it was never placed"


def order_watermark(journal: Journal) -> int | None:
    value = journal.get_state(WATERMARK_KEY)
    return int(value) if value is not None else None


def raise_watermark(journal: Journal, ids: Any) -> None:
    """Remember the newest numeric exchange order id seen (an order placed later has a larger one)."""
    numeric = [int(i) for i in ids if i is not None and str(i).isdigit()]
    old = order_watermark(journal)
    new = max(numeric, default=old)
    if new is not None and (old is None or new > old):
        journal.set_state(WATERMARK_KEY, new)


def _submitted_watermark(journal: Journal, order: Order) -> int | None:
    for row in journal.transitions(order.client_id):
        if row["to_state"] == NEW and row["detail"]:
            value = json.loads(row["detail"]).get("watermark")
            return int(value) if value is not None else None
    return None


class ResolveError(ZtbError):
    """An operator's --resolve cannot be applied (unknown order, not a candidate, already ours)."""


def resolve_order(journal: Journal, exchange_id: str, verdict: str) -> str:
    """The operator's decision on an exchange order an unknown placement could be: `ours` adopts it
    for the (one) unresolved order it is a candidate of; `not-ours` rules it foreign for good (never
    adopted, never cancelled). Returns a sentence saying what changed. All or nothing: one journal
    transaction, so a decision interrupted half-way (an error, a kill) leaves the journal as it was."""
    with journal.batch():
        return _resolve_order(journal, str(exchange_id), verdict)


def _resolve_order(journal: Journal, exchange_id: str, verdict: str) -> str:
    ambiguous: dict[str, list[str]] = dict(journal.get_state(AMBIGUOUS_KEY, {}))
    suspects: dict[str, str] = dict(journal.get_state(SUSPECT_KEY, {}))
    owner = journal.by_exchange_id(exchange_id)
    if owner is not None:
        raise ResolveError(f"exchange order {exchange_id} is already journal order {owner.client_id}")
    if verdict == "not-ours":
        foreign = sorted({*map(str, journal.get_state(FOREIGN_KEY, [])), exchange_id})
        journal.set_state(FOREIGN_KEY, foreign)
        journal.set_state(AMBIGUOUS_KEY, {c: [e for e in ids if e != exchange_id] for c, ids in ambiguous.items()})
        suspects.pop(exchange_id, None)
        journal.set_state(SUSPECT_KEY, suspects)
        return f"exchange order {exchange_id} is marked not ours: it will never be adopted or cancelled"
    if verdict != "ours":
        raise ResolveError(f"--as {verdict!r}: use ours or not-ours")
    if exchange_id in suspects:
        return _adopt_late(journal, exchange_id, suspects)
    claimants = [c for c, ids in ambiguous.items() if exchange_id in ids]
    if len(claimants) != 1:
        listed = "; ".join(f"{c}: {', '.join(ids)}" for c, ids in ambiguous.items()) or "none"
        raise ResolveError(
            f"exchange order {exchange_id} is not a candidate of exactly one unresolved order "
            f"(ambiguous matches: {listed})"
        )
    order = journal.get(claimants[0])
    if order is None or order.state not in (SUBMITTED, UNKNOWN):
        raise ResolveError(f"order {claimants[0]} is no longer unresolved ({order.state if order else 'missing'})")
    journal.transition(
        order, OPEN, detail={"why": "resolved by the operator", "exchange_id": exchange_id}, exchange_id=exchange_id
    )
    del ambiguous[claimants[0]]
    journal.set_state(AMBIGUOUS_KEY, ambiguous)
    # its fills may be older than the cursor: the next pass reads back to the oldest live order
    journal.set_state(CURSOR_KEY, None)
    return f"order {claimants[0]} is exchange order {exchange_id}; the next reconciliation applies its fills"


#: how far a measured clock skew may be off (the venue's ticker time has 1 s resolution, plus latency)
CLOCK_TOLERANCE_MS = 2_000


def valid_exchange_id(value: Any) -> str | None:
    """The exchange order id as a string, or None when it cannot identify an order: missing, empty,
    not a plain token, or a number that is not positive (an id `0` is what a parser makes of a
    missing field, and two such orders would share it)."""
    if value is None or isinstance(value, bool | float):
        return None
    text = str(value).strip()
    if not text or text.lower() in ("none", "null", "nan") or any(c.isspace() for c in text) or len(text) > 64:
        return None
    if text.lstrip("-").isdigit() and int(text) <= 0:
        return None
    return text


def _late_suspects(
    journal: Journal, open_by_id: dict[str, Any], trades_by_order: dict[str, list[Any]], settled: set[str], now: int
) -> dict[str, str]:
    """Exchange orders (open, or seen in fills) that no journal order claims and that could be an
    order ruled never placed in the last day: a venue slower than the window. Never adopted on a
    guess: they block new orders until the operator says (`ztb live reconcile --resolve`)."""
    ruled = [
        o
        for o in journal.orders([REJECTED])
        if o.exchange_id is None and o.reason == NOT_PLACED_REASON and o.updated_ms >= now - SUSPECT_HORIZON_MS
    ]
    if not ruled:
        return {}
    out: dict[str, str] = {}
    for eid, o in open_by_id.items():
        if eid in settled:
            continue
        seen = sum((Decimal(f.amount) for f in trades_by_order.get(eid, [])), Decimal(0))
        for r in ruled:
            # the whole amount, as for a candidate: a smaller order at our price is someone else's
            if o.side == r.side and Decimal(o.price) == r.price and Decimal(o.remaining) + seen == r.amount:
                out[eid] = r.client_id
                break
    for eid, fills in trades_by_order.items():
        if eid in settled or eid in out:
            continue
        total = sum((Decimal(f.amount) for f in fills), Decimal(0))
        for r in ruled:
            if all(f.side == r.side and _price_ok(r, Decimal(f.price)) for f in fills) and total == r.amount:
                out[eid] = r.client_id
                break
    return out


def stamped(ts: int | None, sent_ex: float, inflight_ms: int, tolerance: float) -> str:
    """When the exchange stamped a matching order, relative to our request (on its clock): `early`
    (before we sent ours), `inflight` (while our request could have been there) or `late`."""
    at = sent_ex if ts is None else ts
    if at < sent_ex - tolerance:
        return "early"
    return "inflight" if at <= sent_ex + inflight_ms + tolerance else "late"


def _adopt_late(journal: Journal, exchange_id: str, suspects: dict[str, str]) -> str:
    """The operator says a late exchange order is the one ruled never placed: journal it as a new
    order of ours (the ruled-out record stays as it was: terminal states are never reopened)."""
    ruled = journal.get(suspects[exchange_id])
    if ruled is None:
        raise ResolveError(f"order {suspects[exchange_id]} is missing from the journal")
    adopted = journal.record_submission(
        Order.create(ruled.symbol, ruled.side, ruled.amount, ruled.price, ruled.reduce_only),
        {"adopted_late": exchange_id, "ruled_not_placed": ruled.client_id},
    )
    journal.transition(
        adopted,
        OPEN,
        detail={"why": "late execution adopted by the operator", "exchange_id": exchange_id},
        exchange_id=exchange_id,
        # sent when the ruled-out one was: its fills are read back from then, not from now
        submitted_ms=ruled.submitted_ms or ruled.created_ms,
    )
    del suspects[exchange_id]
    journal.set_state(SUSPECT_KEY, suspects)
    journal.set_state(CURSOR_KEY, None)  # its fills may be older than the cursor
    return (
        f"exchange order {exchange_id} (executed after {ruled.client_id} was ruled never placed) is journal "
        f"order {adopted.client_id}; the next reconciliation applies its fills"
    )


@dataclass
class _Pass:
    """What one reconciliation pass read from the exchange and the journal, shared by its steps."""

    journal: Journal
    venue: Venue
    symbol: str
    report: ReconcileReport
    live: list[Order]
    #: orders journaled before the open orders were read: only these can be judged gone from the
    #: book (by membership, not by time: a step of the wall clock must not hide a cancelled order)
    before_read: set[str]
    started: int
    open_by_id: dict[str, Any]
    cursor: Any
    sync: Any
    trades_by_order: dict[str, list[Any]]
    known: set[str]
    foreign: set[str]


def reconcile(
    journal: Journal,
    venue: Venue,
    symbol: str,
    grace_ms: int = 5_000,
    slack_ms: int = 120_000,
    skew_ms: float | None = None,
    inflight_ms: int = 10_000,
    clock_trusted: bool = True,
    elapsed_ms: Callable[[Order, int], float] | None = None,
    adopt_in_flight: bool = True,
) -> ReconcileReport:
    """One pass (see the module docstring). `grace_ms`: how long (exchange time) an unknown order
    must stay absent from the open orders and the fills before it is ruled never placed: the
    venue's worst execution delay. `skew_ms`: the exchange clock minus ours, when measured (None:
    unknown, and the time windows fall back to `slack_ms` either side). `inflight_ms`: how long our
    placement request could have been at the exchange (its HTTP timeout). `clock_trusted`: the
    skew is known to the second (two measurements agree); otherwise the windows stay coarse.
    `elapsed_ms(order, now)`: how long ago an unknown order was sent, at least as a lower bound (the
    order manager bounds it with a monotonic clock, so a forward step of the wall clock cannot rule
    an order never placed early); default: the wall clock's difference. `adopt_in_flight`: False
    asks the operator even about a lone in-flight match (an account others trade too)."""
    report = ReconcileReport()
    ps = _read_pass(journal, venue, symbol, report, slack_ms)
    ambiguous_before = dict(journal.get_state(AMBIGUOUS_KEY, {}))
    # -- 2. resolve orders whose placement outcome we do not know, oldest first ------------------
    for order in [o for o in ps.live if o.state in (SUBMITTED, UNKNOWN)]:
        order, sent, found = _matches(ps, order, skew_ms, clock_trusted, slack_ms, inflight_ms)
        elapsed = ps.started - sent if elapsed_ms is None else elapsed_ms(order, ps.started)
        _rule_on(ps, order, found, elapsed, grace_ms, adopt_in_flight)
    if report.ambiguous != ambiguous_before:
        journal.set_state(AMBIGUOUS_KEY, report.ambiguous)
    _apply_fills(ps)
    return _finish(ps)


def _read_pass(journal: Journal, venue: Venue, symbol: str, report: ReconcileReport, slack_ms: int) -> _Pass:
    """Step 1: the open orders, then every fill since the oldest open question (after the cursor)."""
    live = journal.live_orders()
    before_read = {o.client_id for o in live}
    started = now_ms()
    open_orders = venue.fetch_open_orders(symbol)
    open_by_id = {str(o.exchange_id): o for o in open_orders}
    cursor = journal.get_state(CURSOR_KEY)
    # fills older than the cursor can matter only to orders not matched yet and to orders that left the
    # book (a fill the history showed late); an order still resting was known when the cursor moved
    # past its older fills, so reading back to it every pass is not needed
    looking = [o for o in live if o.exchange_id is None or str(o.exchange_id) not in open_by_id] if cursor else live
    oldest = min((o.submitted_ms or o.created_ms for o in looking), default=None)
    since = oldest - slack_ms if oldest is not None else (None if cursor else started - slack_ms)
    sync = venue.fetch_fills(symbol, since_ms=since, after=cursor)
    trades = list(sync.fills)
    trades_by_order: dict[str, list[Any]] = defaultdict(list)
    for t in trades:
        if t.order_id is not None:
            trades_by_order[str(t.order_id)].append(t)
    known = journal.known_exchange_ids()
    foreign = {str(x) for x in journal.get_state(FOREIGN_KEY, [])}
    return _Pass(
        journal,
        venue,
        symbol,
        report,
        live,
        before_read,
        started,
        open_by_id,
        cursor,
        sync,
        trades_by_order,
        known,
        foreign,
    )


def _matches(
    ps: _Pass, order: Order, skew_ms: float | None, clock_trusted: bool, slack_ms: int, inflight_ms: int
) -> tuple[Order, int, dict[str, list[str]]]:
    """(the order, now `unknown`; when it was sent on our clock; the exchange orders that match it by
    side, price and amount, by when the exchange stamped them: early, inflight or late)."""
    journal, venue, symbol = ps.journal, ps.venue, ps.symbol
    known, foreign, open_by_id, trades_by_order = ps.known, ps.foreign, ps.open_by_id, ps.trades_by_order
    if order.state == SUBMITTED:
        order = journal.transition(
            order,
            UNKNOWN,
            detail={"why": "found in submitted state by reconciliation (the process stopped during placement)"},
        )
    sent = order.submitted_ms or order.created_ms
    # when ours was sent, on the exchange's clock (the times below are the exchange's stamps)
    sent_ex = sent + (skew_ms or 0)
    # an unmeasured or untrusted skew leaves only a coarse window either side
    tolerance = CLOCK_TOLERANCE_MS if skew_ms is not None and clock_trusted else slack_ms
    watermark = _submitted_watermark(journal, order)

    def eligible(eid: str, watermark: int | None = watermark) -> bool:
        if eid in known or eid in foreign:
            return False
        # an order the exchange already showed us before ours was sent is not ours
        return watermark is None or not eid.isdigit() or int(eid) > watermark

    # every exchange order that matches ours in side, price and amount, by when the exchange
    # stamped it: `inflight` while our request could have been at the exchange (the only
    # window in which it could have taken ours in the normal way), `late` after our request
    # gave up (a queued or retried execution), `early` before ours was sent (a clock that is
    # off, or someone else's). Only a lone in-flight match is proof; anything else is asked.
    found: dict[str, list[str]] = {"early": [], "inflight": [], "late": []}

    for eid, o in open_by_id.items():
        if not eligible(eid) or o.side != order.side or Decimal(o.price) != order.price:
            continue
        # what rests plus what has filled must account for our whole amount: a smaller order
        # at the same price is someone else's (the fills are read after the book, so a fill
        # printed in between may be counted twice: at least the amount, never more than rests)
        seen = sum((Decimal(f.amount) for f in trades_by_order.get(eid, [])), Decimal(0))
        if Decimal(o.remaining) > order.amount or seen > order.amount or Decimal(o.remaining) + seen < order.amount:
            continue
        found[stamped(o.timestamp_ms, sent_ex, inflight_ms, tolerance)].append(eid)
    for eid, fills in trades_by_order.items():
        if not eligible(eid) or eid in open_by_id:
            continue
        if any(f.side != order.side or not _price_ok(order, Decimal(f.price)) for f in fills):
            continue
        if not _left_book_as(venue, symbol, eid, order, sum((Decimal(f.amount) for f in fills), Decimal(0))):
            continue
        found[stamped(min(f.timestamp_ms for f in fills), sent_ex, inflight_ms, tolerance)].append(eid)
    return order, sent, found


def _rule_on(
    ps: _Pass, order: Order, found: dict[str, list[str]], elapsed: float, grace_ms: int, adopt_in_flight: bool
) -> None:
    """Adopt a lone in-flight match, ask about any other match, rule the order never placed once it
    has stayed absent for the window, or leave it unknown."""
    journal, report, known = ps.journal, ps.report, ps.known
    inflight, late, early = found["inflight"], found["late"], found["early"]
    candidates = sorted(inflight + late + early)
    # an id that cannot identify an order (0, empty) is never adopted: it is asked, like a twin
    lone = len(inflight) == 1 and len(candidates) == 1 and valid_exchange_id(inflight[0]) is not None
    if lone and adopt_in_flight:
        eid = inflight[0]
        known.add(eid)
        # resting for now; step 3 applies its fills and closes it if it left the book
        order = journal.transition(
            order,
            OPEN,
            detail={
                "why": "matched by side/price/amount and the exchange's time of our request",
                "exchange_id": eid,
            },
            exchange_id=eid,
        )
        report.resolved.append(order.client_id)
        log.info("reconcile: order %s resolved as exchange order %s", order.client_id, eid)
    elif candidates:
        # more than one order could be ours, or the only one was stamped outside the time our
        # request was at the exchange (executed late, or someone else's twin): adopting it could
        # claim (and later cancel) someone else's order, and ruling ours out could place it
        # twice. The order stays unknown, counted at its worst case, until the operator decides.
        report.ambiguous[order.client_id] = candidates
        report.still_unresolved.append(order.client_id)
        log.warning(
            "reconcile: order %s could be exchange order(s) %s (in flight: %s, late: %s, early: %s); not adopting "
            "nor ruling it out: resolve with ztb live reconcile --resolve EXCHANGE_ID --as ours|not-ours",
            order.client_id,
            ", ".join(candidates),
            ", ".join(inflight) or "-",
            ", ".join(late) or "-",
            ", ".join(early) or "-",
        )
    elif elapsed >= grace_ms:
        # positive evidence: not among the open orders, and no fill of a matching order, over a
        # window as long as the venue's worst execution delay
        journal.transition(
            order,
            REJECTED,
            detail={"why": f"not found at the exchange in {elapsed / 1000:.1f} s (window {grace_ms / 1000:.0f} s)"},
            reason=NOT_PLACED_REASON,
        )
        report.not_placed.append(order.client_id)
        log.info("reconcile: order %s was never placed (not found at the exchange)", order.client_id)
    else:
        report.still_unresolved.append(order.client_id)


def _apply_fills(ps: _Pass) -> None:
    """Steps 3 and 4: new fills of the orders we know, their filled amounts, and the orders that left
    the book (closed once their fills explain what the exchange executed)."""
    journal, venue, symbol, report = ps.journal, ps.venue, ps.symbol, ps.report
    open_by_id, trades_by_order, before_read = ps.open_by_id, ps.trades_by_order, ps.before_read
    # -- 3./4. fills and states of the orders we know ------------------------------------------
    # a pass reads back every fill since its oldest open question, mostly fills already journaled:
    # only new trade ids are written (each write is an fsynced transaction; record_fill would
    # ignore a repeat anyway, after paying for it)
    recorded = {f.trade_id for f in journal.fills()}

    def record_new(t: Any, client_id: str) -> bool:
        if str(t.id) in recorded or not journal.record_fill(_to_fill(t, client_id)):
            return False
        recorded.add(str(t.id))
        return True

    for order in journal.live_orders():
        if order.exchange_id is None:
            continue
        eid = str(order.exchange_id)
        for t in trades_by_order.get(eid, []):
            if record_new(t, order.client_id):
                report.new_fills.append(str(t.id))
        filled, avg = journal.filled_of(order.client_id)
        if filled != order.filled:
            order = journal.save(order, order.with_fills(filled, avg), detail={"filled": str(filled)})
        if order.terminal:
            report.closed.append(order.client_id)
            continue
        if eid not in open_by_id and order.client_id in before_read:
            executed = venue.exchange_filled(eid, symbol)
            if executed is not None and Decimal(executed) > filled:
                # the exchange executed more than the fills we could read: not terminal until they show
                report.fills_pending.append(order.client_id)
                log.warning(
                    "reconcile: order %s left the book with %s executed but only %s in fills; keeping it live",
                    order.client_id,
                    executed,
                    filled,
                )
                continue
            why = "no longer open at the exchange" + (" (cancel confirmed)" if order.state == CANCEL_REQUESTED else "")
            journal.transition(order, CANCELLED, detail={"why": why, "filled": str(filled)})
            report.closed.append(order.client_id)

    # late fills of orders already closed (a fill printed while the cancel was in flight)
    by_eid = {o.exchange_id: o for o in journal.orders([FILLED, CANCELLED]) if o.exchange_id}
    for eid, fills in trades_by_order.items():
        closed = by_eid.get(eid)
        if closed is None:
            continue
        late = [str(t.id) for t in fills if record_new(t, closed.client_id)]
        report.new_fills.extend(late)
        # compared even when no fill is new: a process killed between journaling a fill and updating
        # its order leaves the fill recorded (so it is never new again) and the order's amount stale
        filled, avg = journal.filled_of(closed.client_id)
        if min(filled, closed.amount) != closed.filled:
            journal.save(closed, closed.with_fills(min(filled, closed.amount), avg), detail={"late_fills": late})


def _finish(ps: _Pass) -> ReconcileReport:
    """Orphans and late suspects; then, the pass being complete, the cursor and the watermark move."""
    journal, report, open_by_id, trades_by_order = ps.journal, ps.report, ps.open_by_id, ps.trades_by_order
    foreign, started, sync, cursor = ps.foreign, ps.started, ps.sync, ps.cursor
    known = journal.known_exchange_ids()
    report.orphans = sorted(eid for eid in open_by_id if eid not in known)
    report.suspects = _late_suspects(journal, open_by_id, trades_by_order, known | foreign, started)
    if report.suspects != journal.get_state(SUSPECT_KEY, {}):
        journal.set_state(SUSPECT_KEY, report.suspects)
    # only a complete pass moves the cursor and the watermark (an exception above leaves both)
    raise_watermark(journal, list(open_by_id) + list(trades_by_order))
    if sync.cursor is not None and sync.cursor != cursor:
        journal.set_state(CURSOR_KEY, sync.cursor)
    if report.orphans:
        log.warning(
            "reconcile: %d open order(s) at the exchange are not in the journal (left alone): %s",
            len(report.orphans),
            ", ".join(report.orphans),
        )
    return report
