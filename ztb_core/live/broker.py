"""`OrderManager`: the only code that sends orders, and it journals before and after every call.

Placement, step by step (each step committed to the journal before the next):
1. no order may be placed while an earlier one's outcome is unknown: reconcile first, and refuse
   (`OrderBlocked`) if that does not settle it;
2. the intent is journaled (`new`), then `submitted` — the exchange call comes only after this;
3. the answer moves the order to `open` (with the exchange id), `rejected` (the exchange said no),
   or `unknown` (timeout, reset, lost response: maybe placed), never to a blind retry.

The same manager drives the ccxt adapter (live) and the paper venue (dry run): the venue is the
only difference between them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from ..errors import ZtbError
from .exchange import ExchangeCallError, OrderNotFoundError, OrderOutcomeUnknown, OrderRejected
from .journal import Journal
from .orders import CANCEL_REQUESTED, OPEN, PARTIALLY_FILLED, REJECTED, UNKNOWN, Order
from .reconcile import ReconcileReport, reconcile

log = logging.getLogger("ztb.live.broker")


class OrderBlocked(ZtbError):
    """A new order was refused because an earlier order's outcome is still unknown."""


class TradingVenue(Protocol):
    """The calls the order manager makes (ExchangeAdapter and PaperVenue both provide them)."""

    def create_limit_order(
        self, side: str, amount: Decimal, price: Decimal, client_id: str, symbol: str | None = None
    ) -> Any: ...

    def cancel_order(self, exchange_id: str, symbol: str | None = None) -> None: ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[Any]: ...

    def fetch_my_trades(
        self, symbol: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[Any]: ...


class OrderManager:
    def __init__(
        self,
        venue: TradingVenue,
        journal: Journal,
        symbol: str,
        grace_ms: int = 5_000,
        on_event: Callable[..., None] | None = None,
    ) -> None:
        self.venue, self.journal, self.symbol = venue, journal, symbol
        self.grace_ms = grace_ms
        self.on_event = on_event or (lambda kind, **data: None)
        #: perf_counter() just before the last placement call went out (decision latency)
        self.last_send_perf: float | None = None

    # ---- reconciliation -----------------------------------------------------------------------
    def reconcile(self, grace_ms: int | None = None) -> ReconcileReport:
        report = reconcile(
            self.journal, self.venue, self.symbol, grace_ms=self.grace_ms if grace_ms is None else grace_ms
        )
        if report.changed or report.orphans or report.still_unresolved:
            self.on_event("reconciled", **report.as_dict())
        return report

    def _ensure_resolved(self) -> None:
        if not self.journal.unresolved():
            return
        report = self.reconcile()
        if report.still_unresolved:
            raise OrderBlocked(
                f"order(s) {', '.join(report.still_unresolved)} have an unknown outcome; no new "
                f"order until reconciliation finds them at the exchange or rules them out"
            )

    # ---- placement ----------------------------------------------------------------------------
    def place(
        self, side: str, amount: Decimal, price: Decimal, reduce_only: bool = False, detail: dict | None = None
    ) -> Order:
        self._ensure_resolved()
        order = self.journal.record_submission(Order.create(self.symbol, side, amount, price, reduce_only), detail)
        self.last_send_perf = time.perf_counter()
        try:
            ack = self.venue.create_limit_order(side, amount, price, order.client_id, self.symbol)
        except OrderOutcomeUnknown as exc:
            order = self.journal.transition(order, UNKNOWN, detail={"error": str(exc)}, reason=str(exc)[:300])
            self.on_event("order_unknown", client_id=order.client_id, error=str(exc)[:300])
            return order
        except OrderRejected as exc:
            order = self.journal.transition(order, REJECTED, detail={"error": str(exc)}, reason=str(exc)[:300])
            self.on_event("order_rejected", client_id=order.client_id, error=str(exc)[:300])
            return order
        except ExchangeCallError as exc:
            # auth failures and exhausted rate-limit retries: the exchange answered, nothing was placed
            order = self.journal.transition(
                order, REJECTED, detail={"error": str(exc), "kind": exc.kind}, reason=str(exc)[:300]
            )
            self.on_event("order_rejected", client_id=order.client_id, error=str(exc)[:300])
            raise
        except BaseException as exc:
            # anything else (a bug, KeyboardInterrupt) happened with the request possibly sent
            self.journal.transition(order, UNKNOWN, detail={"error": f"{type(exc).__name__}"})
            raise
        order = self.journal.transition(
            order,
            OPEN,
            exchange_id=str(ack.exchange_id),
            detail={"latency_ms": round(getattr(ack, "latency_ms", 0.0), 3)},
        )
        self.on_event(
            "order_placed",
            client_id=order.client_id,
            exchange_id=order.exchange_id,
            side=side,
            amount=str(amount),
            price=str(price),
            reduce_only=reduce_only,
        )
        return order

    # ---- cancellation -------------------------------------------------------------------------
    def cancel(self, order: Order) -> Order:
        """Ask the exchange to cancel; the order becomes `cancelled` once reconciliation sees it gone
        (fills that raced the cancel are recorded first)."""
        if order.state not in (OPEN, PARTIALLY_FILLED, CANCEL_REQUESTED) or order.exchange_id is None:
            return order
        if order.state != CANCEL_REQUESTED:
            order = self.journal.transition(order, CANCEL_REQUESTED)
        try:
            self.venue.cancel_order(order.exchange_id, self.symbol)
        except OrderNotFoundError:
            pass  # already gone (filled or cancelled): reconciliation tells which
        return order

    def cancel_all(self) -> list[str]:
        """Cancel every resting order and reconcile; returns the client ids asked to cancel."""
        self._ensure_resolved_soft()
        asked = []
        for order in self.journal.live_orders():
            if order.state in (OPEN, PARTIALLY_FILLED, CANCEL_REQUESTED):
                self.cancel(order)
                asked.append(order.client_id)
        if asked:
            self.reconcile()
        return asked

    def _ensure_resolved_soft(self) -> None:
        if self.journal.unresolved():
            self.reconcile()

    # ---- views --------------------------------------------------------------------------------
    def pending(self) -> Decimal:
        """Signed remaining amount of orders that may still fill (unknown ones counted in full)."""
        return sum((o.signed_remaining for o in self.journal.live_orders()), Decimal(0))

    def open_count(self) -> int:
        return len(self.journal.live_orders())
