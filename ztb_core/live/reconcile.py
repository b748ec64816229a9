"""Reconciliation: make the journal agree with the exchange.

Run at start (after a crash the journal may hold orders in `submitted` whose fate we never heard)
and on every sync of the decision loop. One pass:

1. fetch the exchange's open orders and our recent fills;
2. resolve every unresolved order (`submitted`/`unknown`). Coincheck has no client order id, so an
   order is matched by side, price, amount and time: an open order at our price with
   remaining <= our amount, or an exchange order id whose fills (at or better than our limit,
   totalling <= our amount) are not claimed by another journaled order, first seen no earlier than
   `slack_ms` before we sent ours. The closest in time wins. No match once the order is older than
   `grace_ms` means the exchange never took it: `rejected`. Younger ones stay unresolved (a request
   that timed out may still be processed) and block new orders;
3. record fills of known orders (idempotent by trade id) and move their states;
4. an order we believed resting that is no longer open is `filled` when its fills cover it, else
   `cancelled` (cancelled elsewhere or expired by the exchange).

Exchange open orders that match nothing in the journal are reported as orphans (placed by a person
or another program); they are never touched.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from .journal import Journal
from .orders import CANCEL_REQUESTED, CANCELLED, FILLED, OPEN, REJECTED, SUBMITTED, UNKNOWN, Fill, Order, now_ms

log = logging.getLogger("ztb.live.reconcile")


class Venue(Protocol):
    """What reconciliation needs of an exchange (the ccxt adapter or the paper venue)."""

    def fetch_open_orders(self, symbol: str | None = None) -> list[Any]: ...

    def fetch_my_trades(
        self, symbol: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[Any]: ...


@dataclass
class ReconcileReport:
    resolved: list[str] = field(default_factory=list)  # unresolved orders matched to the exchange
    not_placed: list[str] = field(default_factory=list)  # unresolved orders the exchange never took
    still_unresolved: list[str] = field(default_factory=list)
    new_fills: list[str] = field(default_factory=list)  # trade ids recorded this pass
    closed: list[str] = field(default_factory=list)  # orders that left the book
    orphans: list[str] = field(default_factory=list)  # exchange open orders not in the journal

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @property
    def changed(self) -> bool:
        return bool(self.resolved or self.not_placed or self.new_fills or self.closed)


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


def reconcile(
    journal: Journal, venue: Venue, symbol: str, grace_ms: int = 5_000, slack_ms: int = 120_000, fills_limit: int = 100
) -> ReconcileReport:
    report = ReconcileReport()
    live = journal.live_orders()
    started = now_ms()
    open_orders = venue.fetch_open_orders(symbol)
    oldest = min((o.submitted_ms or o.created_ms for o in live), default=started) - slack_ms
    trades = [
        t
        for t in venue.fetch_my_trades(symbol, since_ms=oldest, limit=fills_limit)
        if t.timestamp_ms is None or t.timestamp_ms >= oldest
    ]
    open_by_id = {str(o.exchange_id): o for o in open_orders}
    trades_by_order: dict[str, list[Any]] = defaultdict(list)
    for t in trades:
        if t.order_id is not None:
            trades_by_order[str(t.order_id)].append(t)
    known = journal.known_exchange_ids()

    # -- 2. resolve orders whose placement outcome we do not know, oldest first ------------------
    for order in [o for o in live if o.state in (SUBMITTED, UNKNOWN)]:
        if order.state == SUBMITTED:
            order = journal.transition(
                order,
                UNKNOWN,
                detail={"why": "found in submitted state by reconciliation (the process stopped during placement)"},
            )
        sent = order.submitted_ms or order.created_ms
        candidates: list[tuple[int, str]] = []
        for eid, o in open_by_id.items():
            if eid in known or o.side != order.side or Decimal(o.price) != order.price:
                continue
            if Decimal(o.remaining) > order.amount:
                continue
            ts = o.timestamp_ms if o.timestamp_ms is not None else sent
            if ts >= sent - slack_ms:
                candidates.append((abs(ts - sent), eid))
        for eid, fills in trades_by_order.items():
            if eid in known or eid in open_by_id:
                continue
            if any(f.side != order.side or not _price_ok(order, Decimal(f.price)) for f in fills):
                continue
            if sum((Decimal(f.amount) for f in fills), Decimal(0)) > order.amount:
                continue
            ts = min(f.timestamp_ms for f in fills)
            if ts >= sent - slack_ms:
                candidates.append((abs(ts - sent), eid))
        if candidates:
            eid = min(candidates)[1]
            known.add(eid)
            # resting for now; step 3 applies its fills and closes it if it left the book
            order = journal.transition(
                order, OPEN, detail={"why": "matched by side/price/amount/time", "exchange_id": eid}, exchange_id=eid
            )
            report.resolved.append(order.client_id)
            log.info("reconcile: order %s resolved as exchange order %s", order.client_id, eid)
        elif started - sent >= grace_ms:
            journal.transition(
                order,
                REJECTED,
                detail={"why": "not found at the exchange by reconciliation"},
                reason="not found at the exchange: it was never placed",
            )
            report.not_placed.append(order.client_id)
            log.info("reconcile: order %s was never placed (not found at the exchange)", order.client_id)
        else:
            report.still_unresolved.append(order.client_id)

    # -- 3./4. fills and states of the orders we know ------------------------------------------
    for order in journal.live_orders():
        if order.exchange_id is None:
            continue
        eid = str(order.exchange_id)
        for t in trades_by_order.get(eid, []):
            if journal.record_fill(_to_fill(t, order.client_id)):
                report.new_fills.append(str(t.id))
        filled, avg = journal.filled_of(order.client_id)
        if filled != order.filled:
            order = journal.save(order, order.with_fills(filled, avg), detail={"filled": str(filled)})
        if order.terminal:
            report.closed.append(order.client_id)
            continue
        if eid not in open_by_id and (order.submitted_ms or 0) <= started:
            why = "no longer open at the exchange" + (" (cancel confirmed)" if order.state == CANCEL_REQUESTED else "")
            journal.transition(order, CANCELLED, detail={"why": why, "filled": str(filled)})
            report.closed.append(order.client_id)

    # late fills of orders already closed (a fill printed while the cancel was in flight)
    by_eid = {o.exchange_id: o for o in journal.orders([FILLED, CANCELLED]) if o.exchange_id}
    for eid, fills in trades_by_order.items():
        order = by_eid.get(eid)
        if order is None:
            continue
        for t in fills:
            if journal.record_fill(_to_fill(t, order.client_id)):
                report.new_fills.append(str(t.id))
                filled, avg = journal.filled_of(order.client_id)
                journal.save(order, order.with_fills(min(filled, order.amount), avg), detail={"late_fill": str(t.id)})
                order = journal.get(order.client_id)

    report.orphans = sorted(eid for eid in open_by_id if eid not in journal.known_exchange_ids())
    if report.orphans:
        log.warning(
            "reconcile: %d open order(s) at the exchange are not in the journal (left alone): %s",
            len(report.orphans),
            ", ".join(report.orphans),
        )
    return report
