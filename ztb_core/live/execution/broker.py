"""`OrderManager`: the only code that sends orders, and it journals before and after every call.

Placement, step by step (each step committed to the journal before the next):
1. no order may be placed while an earlier one's outcome is unknown: reconcile first, and refuse
   (`OrderBlocked`) if that does not settle it, unless the order only reduces |position| whatever
   the unknown orders did (`exposure.is_reducing`, unknown orders counted in full): a stop-loss
   exit is never held back by a lost placement response;
2. the intent is journaled (`new`), then `submitted` — the exchange call comes only after this
   is committed (never inside a journal batch: `Journal.require_on_disk`);
3. the answer moves the order to `open` (with the exchange id), `rejected` (the exchange said no),
   or `unknown` (timeout, reset, lost response: maybe placed; also an answer whose order id cannot
   identify an order, like `0`), never to a blind retry. An unknown outcome is ruled "not placed"
   only on positive evidence, over the venue's worst execution delay (reconcile.py).

Cancellation: an order moves to `cancel_requested` in the journal before the cancel call, and
stays there (counted as exposure: it may still fill) until reconciliation sees it gone. A cancel
that failed, or never went out (killed between the journal write and the call), is sent again by
`retry_cancels` with exponential backoff until the exchange confirms.

The same manager drives the ccxt adapter (live) and the paper venue (dry run): the venue is the
only difference between them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from ...errors import ZtbError
from ..venue.errors import ExchangeCallError, OrderNotFoundError, OrderOutcomeUnknown, OrderRejected
from .exposure import exposure_of, is_reducing, reducible
from .journal import Journal
from .orders import CANCEL_REQUESTED, OPEN, PARTIALLY_FILLED, REJECTED, UNKNOWN, Order, Side, now_ms
from .reconcile import (
    CLOCK_TOLERANCE_MS,
    SUSPECT_KEY,
    ReconcileReport,
    order_watermark,
    raise_watermark,
    reconcile,
    valid_exchange_id,
)

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

    def fetch_fills(self, symbol: str | None = None, since_ms: int | None = None, after: str | None = None) -> Any: ...

    def exchange_filled(self, exchange_id: str, symbol: str | None = None) -> Decimal | None: ...


#: the submission detail keys holding the monotonic send time and the boot it was measured on
SENT_CLOCK_KEY, BOOT_KEY = "sent_monotonic_s", "boot_id"


def _boot_id() -> str | None:
    """This boot's id (Linux): monotonic times from the same boot are comparable across processes."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


BOOT_ID = _boot_id()


class OrderManager:
    """`grace_ms`: how long an unknown placement must stay absent from the exchange's open orders and
    fills before it is ruled never placed (the venue's worst execution delay; live:
    `unknown_outcome_window_s`). `alert_after_ms`: how long an unresolved placement waits before the
    operator is alerted (live: `reconcile_grace_s`); then one reminder every `reminder_s`."""

    def __init__(
        self,
        venue: TradingVenue,
        journal: Journal,
        symbol: str,
        grace_ms: int = 5_000,
        on_event: Callable[..., None] | None = None,
        alert_after_ms: int | None = None,
        reminder_s: float = 300.0,
        in_flight_match: str = "adopt",
    ) -> None:
        self.venue, self.journal, self.symbol = venue, journal, symbol
        self.grace_ms = grace_ms
        self.alert_after_ms = grace_ms if alert_after_ms is None else alert_after_ms
        self.reminder_s = reminder_s
        #: `adopt` a lone match stamped while our request was at the exchange, or `ask` the operator
        self.in_flight_match = in_flight_match
        self.on_event = on_event or (lambda kind, **data: None)
        #: the exchange clock minus ours (ms), None until measured; the time windows of
        #: reconciliation compare the exchange's own stamps with our send time moved by it
        self.skew_ms: float | None = None
        #: the exchange's stamps are trusted to the second only once two measurements at least a
        #: second apart agree (its clock advances with ours); until then, or if it jumps, the time
        #: windows stay coarse (`slack_ms` either side) rather than calling every match late
        self.clock_trusted = False
        self._first_clock: tuple[float, float] | None = None  # (our ms, skew) of the first measurement
        self._skew_tried = False
        #: how long a placement request can be at the exchange: the adapter's HTTP timeout
        self.inflight_ms = int(getattr(getattr(venue, "cfg", None), "timeout_ms", 10_000))
        #: alerts already given: client id -> (candidates, monotonic time), for one alert per unknown
        #: order (and per new set of candidates), then a reminder every `reminder_s`
        self._alerted: dict[str, tuple[tuple[str, ...], float]] = {}
        #: perf_counter() just before the last placement call went out (decision latency)
        self.last_send_perf: float | None = None
        #: cancel retries: client id -> (failed attempts, monotonic time of the next try)
        self._cancel_backoff: dict[str, tuple[int, float]] = {}
        self.cancel_base_s, self.cancel_max_s = 1.0, 60.0
        self._clock: Callable[[], float] = time.monotonic
        #: unknown placements: client id -> (monotonic time, wall-clock age in ms) when this process
        #: first looked at them; their age then advances on the monotonic clock (see `_unknown_age_ms`)
        self._unknown_seen: dict[str, tuple[float, float]] = {}

    # ---- reconciliation -----------------------------------------------------------------------
    def measure_skew(self) -> float | None:
        """The exchange clock minus ours (ms), from the venue's ticker time against the midpoint of
        our request, on the clock that stamps our orders; None when the venue gives no time."""
        t0 = now_ms()
        ticker = self.venue.fetch_ticker()  # type: ignore[attr-defined]
        return self.observe_clock(getattr(ticker, "timestamp_ms", None), t0, now_ms())

    def observe_clock(self, exchange_ms: int | None, sent_ms: int, received_ms: int) -> float | None:
        """Take the skew from one exchange time read between `sent_ms` and `received_ms` (our clock).
        Venue tickers are stamped in whole seconds: half a second is added for the truncation."""
        self._skew_tried = True
        if not exchange_ms:
            return self.skew_ms
        ts = int(exchange_ms) + (500 if int(exchange_ms) % 1000 == 0 else 0)
        local = (sent_ms + received_ms) / 2
        skew = ts - local
        if self._first_clock is None:
            self._first_clock = (local, skew)
        elif (apart := local - self._first_clock[0]) >= 1_000:
            # two readings agree: within the tolerance, and by less than half the time between them
            # (a venue clock that stands still, or runs at half speed, would otherwise "agree" with
            # itself when the two readings happen to fall one or two seconds apart)
            self.clock_trusted = abs(skew - self._first_clock[1]) <= min(CLOCK_TOLERANCE_MS, apart / 2)
        self.skew_ms = skew
        return self.skew_ms

    def reconcile(self, grace_ms: int | None = None) -> ReconcileReport:
        if (not self._skew_tried or self.journal.unresolved()) and hasattr(self.venue, "fetch_ticker"):
            try:  # a fresh skew for the time windows (an unknown placement is rare; a ticker is cheap)
                self.measure_skew()
            except ExchangeCallError as exc:
                log.warning("clock skew not re-measured (%s); using %s ms", exc, self.skew_ms)
        # one pass, one commit (not one fsync per fill, order update and cursor): a kill -9 leaves the
        # journal as before the pass or after it. An exchange read that fails half-way keeps what the
        # pass recorded so far, as separate commits did: any prefix of a pass is a consistent state.
        # The pass only records what the exchange said (the next pass reads it again), so it does not
        # wait for the disk: the next submission's or cancel request's fsync makes it durable first
        with self.journal.batch(keep_on=(ExchangeCallError,), fsync=False):
            report = reconcile(
                self.journal,
                self.venue,
                self.symbol,
                grace_ms=self.grace_ms if grace_ms is None else grace_ms,
                skew_ms=self.skew_ms,
                inflight_ms=self.inflight_ms,
                clock_trusted=self.clock_trusted,
                elapsed_ms=self._unknown_age_ms,
                adopt_in_flight=self.in_flight_match == "adopt",
            )
        unresolved = {o.client_id for o in self.journal.unresolved()}
        for client_id in [c for c in self._unknown_seen if c not in unresolved]:
            del self._unknown_seen[client_id]
        # fills_pending too: an order kept live because its fills lag is worth a line in the log
        if report.changed or report.orphans or report.still_unresolved or report.fills_pending:
            self.on_event("reconciled", **report.as_dict())
        self._alert_unresolved(report)
        self._alert_suspects(report)
        return report

    def _unknown_age_ms(self, order: Order, now_wall_ms: int) -> float:
        """How long ago an unknown placement was sent, never more than the monotonic clock allows: a
        wall clock stepped forward (NTP, a resumed VM) would otherwise rule an order never placed
        while the venue may still execute it; one stepped back only makes the age smaller, which
        delays the ruling, never hastens it. The monotonic send time is journaled with the order, so
        a process restarted on the same boot knows the true age; an order sent before the machine
        restarted (another boot, or a journal without the stamp) is aged from when this process
        first looked at it: it waits a whole window from the restart."""
        wall = now_wall_ms - (order.submitted_ms or order.created_ms)
        anchor = self._unknown_seen.get(order.client_id)
        if anchor is None:
            anchor = self._unknown_seen[order.client_id] = self._journaled_send(order.client_id)
        first_mono, first_age = anchor
        return min(wall, first_age + (self._clock() - first_mono) * 1000.0)

    def _journaled_send(self, client_id: str) -> tuple[float, float]:
        """(monotonic time, age in ms then) to age an order from: its journaled send time when it was
        sent on this boot, else now with age 0."""
        for t in self.journal.transitions(client_id):
            try:
                detail = json.loads(t.get("detail") or "{}")
            except ValueError:
                continue
            if isinstance(detail, dict) and SENT_CLOCK_KEY in detail:
                if BOOT_ID is not None and detail.get(BOOT_KEY) == BOOT_ID:
                    return float(detail[SENT_CLOCK_KEY]), 0.0
                break
        return self._clock(), 0.0

    def _alert_suspects(self, report: ReconcileReport) -> None:
        """One critical alert per late suspect (then a reminder every `reminder_s`)."""
        now = self._clock()
        for eid, client_id in report.suspects.items():
            key = f"suspect:{eid}"
            last = self._alerted.get(key)
            if last is not None and now - last[1] < self.reminder_s:
                continue
            self._alerted[key] = ((eid,), now)
            self.on_event(
                "alert",
                level="critical",
                message=(
                    f"exchange order {eid} appeared after order {client_id} was ruled never placed "
                    f"({self.grace_ms / 1000:.0f} s without a trace) and could be it: the exchange may hold a "
                    f"position the journal does not. New orders blocked; decide with: ztb live reconcile "
                    f"--resolve {eid} --as ours|not-ours"
                ),
                client_id=client_id,
                candidates=[eid],
                reminder=last is not None,
            )
        for key in [k for k in self._alerted if k.startswith("suspect:") and k[8:] not in report.suspects]:
            del self._alerted[key]

    def _alert_unresolved(self, report: ReconcileReport) -> None:
        """One critical alert per unknown order (and per new set of candidates), then a reminder
        every `reminder_s`: a bot blocked for minutes must not flood the operator."""
        now = self._clock()
        for client_id in [k for k in self._alerted if not k.startswith("suspect:")]:
            if client_id not in report.still_unresolved:
                del self._alerted[client_id]
        for client_id in report.still_unresolved:
            candidates = tuple(report.ambiguous.get(client_id, ()))
            order = self.journal.get(client_id)
            age_ms = now_ms() - ((order.submitted_ms or order.created_ms) if order is not None else now_ms())
            if not candidates and age_ms < self.alert_after_ms:
                continue
            last = self._alerted.get(client_id)
            if last is not None and last[0] == candidates and now - last[1] < self.reminder_s:
                continue
            self._alerted[client_id] = (candidates, now)
            if candidates:
                message = (
                    f"order {client_id}: its outcome is unknown and exchange order(s) {', '.join(candidates)} could "
                    f"be it, without proof (several, stamped outside the time our request was at the exchange, or in_flight_match "
                    f"is ask); "
                    f"none adopted, new orders blocked (exits that only reduce still go). Decide with: ztb live "
                    f"reconcile --resolve EXCHANGE_ID --as ours|not-ours"
                )
            else:
                message = (
                    f"order {client_id}: outcome unknown for {age_ms / 1000:.0f} s; not found at the exchange yet, "
                    f"counted at its worst case and new orders blocked until it is found or "
                    f"{self.grace_ms / 1000:.0f} s pass without a trace of it"
                )
            self.on_event(
                "alert",
                level="critical",
                message=message,
                client_id=client_id,
                candidates=list(candidates),
                reminder=last is not None and last[0] == candidates,
            )

    def _ensure_resolved(self) -> None:
        """Raise `OrderBlocked` while a placement's outcome is unknown (after one reconciliation
        tried to settle it) or an exchange order that appeared late awaits the operator."""
        unresolved: list[str] = []
        if self.journal.unresolved():
            unresolved = self.reconcile().still_unresolved
        suspects: dict[str, str] = self.journal.get_state(SUSPECT_KEY, {})
        if suspects:
            raise OrderBlocked(
                f"exchange order(s) {', '.join(sorted(suspects))} appeared after orders "
                f"{', '.join(sorted(set(suspects.values())))} were ruled never placed and could be them; no new "
                f"order until the operator decides: ztb live reconcile --resolve EXCHANGE_ID --as ours|not-ours"
            )
        if unresolved:
            raise OrderBlocked(
                f"order(s) {', '.join(unresolved)} have an unknown outcome; no new "
                f"order until reconciliation finds them at the exchange or rules them out (exits that "
                f"reduce the position whatever they did still go)"
            )

    def _reduces_whatever_happened(self, side: Side, amount: Decimal) -> bool:
        """Does the order only reduce |position| whatever the unknown orders did? Counted: every live
        order in full, and the ruled-out orders a late exchange order could be."""
        suspects: dict[str, str] = self.journal.get_state(SUSPECT_KEY, {})
        maybe = [*self.journal.live_orders(), *filter(None, map(self.journal.get, set(suspects.values())))]
        exposure = exposure_of(self.journal.position(), maybe)
        if not is_reducing(exposure, side, amount):
            return False
        self.on_event(
            "exit_despite_unknown",
            side=side,
            amount=str(amount),
            unresolved=[o.client_id for o in self.journal.unresolved()] + sorted(suspects),
            reducible=str(reducible(exposure, side)),
        )
        return True

    # ---- placement ----------------------------------------------------------------------------
    def place(
        self, side: Side, amount: Decimal, price: Decimal, reduce_only: bool = False, detail: dict | None = None
    ) -> Order:
        self.journal.require_on_disk(f"placing a {side} order")
        try:
            self._ensure_resolved()
        except OrderBlocked:
            # an exit that reduces |position| whatever the unknown orders did goes anyway: holding
            # it back for minutes (a stop-loss!) would be the greater risk
            if not self._reduces_whatever_happened(side, amount):
                raise
        # the newest exchange order id seen before this one was sent: reconciliation never adopts an
        # order at or below it for this one (it existed before we sent ours)
        # and the monotonic time it was sent, with the boot it belongs to: should its outcome be
        # unknown, its age runs on that clock, also in a process restarted on the same boot
        sent = self._clock()
        detail = {
            **(detail or {}),
            "watermark": order_watermark(self.journal),
            SENT_CLOCK_KEY: round(sent, 3),
            BOOT_KEY: BOOT_ID,
        }
        order = self.journal.record_submission(Order.create(self.symbol, side, amount, price, reduce_only), detail)
        self._unknown_seen[order.client_id] = (sent, 0.0)
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
        exchange_id = valid_exchange_id(ack.exchange_id)
        if exchange_id is None:
            # the venue took something, but its id cannot identify it (0, empty): counted as an
            # unknown outcome at its worst case, blocking, until found or resolved by the operator
            why = f"the exchange answered with order id {ack.exchange_id!r}, which cannot identify an order"
            order = self.journal.transition(order, UNKNOWN, detail={"error": why}, reason=why)
            self.on_event("order_unknown", client_id=order.client_id, error=why)
            self.on_event(
                "alert",
                level="critical",
                message=f"order {order.client_id}: {why}; new orders blocked until reconciliation or the operator "
                f"(ztb live reconcile) settles it",
                client_id=order.client_id,
            )
            return order
        with self.journal.batch():  # the answer: the watermark and the order's new state, one commit
            raise_watermark(self.journal, [exchange_id])
            order = self.journal.transition(
                order,
                OPEN,
                exchange_id=exchange_id,
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
        (fills that raced the cancel are recorded first). A failed call raises and leaves the order in
        `cancel_requested` for `retry_cancels`."""
        if order.state not in (OPEN, PARTIALLY_FILLED, CANCEL_REQUESTED) or order.exchange_id is None:
            return order
        self.journal.require_on_disk(f"cancelling order {order.client_id}")
        exchange_id = order.exchange_id
        if order.state != CANCEL_REQUESTED:
            order = self.journal.transition(order, CANCEL_REQUESTED)
        try:
            self.venue.cancel_order(exchange_id, self.symbol)
        except OrderNotFoundError:
            pass  # already gone (filled or cancelled): reconciliation tells which
        except ExchangeCallError:
            attempts = self._cancel_backoff.get(order.client_id, (0, 0.0))[0] + 1
            delay = min(self.cancel_max_s, self.cancel_base_s * 2 ** (attempts - 1))
            self._cancel_backoff[order.client_id] = (attempts, self._clock() + delay)
            raise
        self._cancel_backoff.pop(order.client_id, None)
        return order

    def cancel_all(self) -> list[str]:
        """Cancel every resting order (a failure does not stop the others) and reconcile; returns the
        client ids asked to cancel, and raises the first failure after trying them all."""
        self._ensure_resolved_soft()
        asked: list[str] = []
        failed: ExchangeCallError | None = None
        for order in self.journal.live_orders():
            if order.state in (OPEN, PARTIALLY_FILLED, CANCEL_REQUESTED):
                asked.append(order.client_id)
                try:
                    self.cancel(order)
                except ExchangeCallError as exc:
                    failed = failed or exc
        if asked:
            self.reconcile()
        if failed is not None:
            raise failed
        return asked

    def retry_cancels(self) -> list[str]:
        """Send the cancel again for every `cancel_requested` order whose backoff has passed (after a
        failed call, or a restart between the journal write and the call); reconcile if any went out.
        Returns the client ids retried; raises the first failure after trying them all."""
        now = self._clock()
        due = [
            o
            for o in self.journal.orders([CANCEL_REQUESTED])
            if o.exchange_id is not None and self._cancel_backoff.get(o.client_id, (0, 0.0))[1] <= now
        ]
        failed: ExchangeCallError | None = None
        for order in due:
            try:
                self.cancel(order)
            except ExchangeCallError as exc:
                failed = failed or exc
        if due:
            self.on_event("cancel_retried", client_ids=[o.client_id for o in due], failed=failed is not None)
            if failed is None:
                self.reconcile()
        if failed is not None:
            raise failed
        return [o.client_id for o in due]

    def _ensure_resolved_soft(self) -> None:
        if self.journal.unresolved():
            self.reconcile()

    # ---- views --------------------------------------------------------------------------------
    def pending(self) -> Decimal:
        """Signed remaining amount of orders that may still fill (unknown ones counted in full)."""
        return sum((o.signed_remaining for o in self.journal.live_orders()), Decimal(0))

    def resting(self) -> tuple[Decimal, Decimal]:
        """(buy, sell) remaining amounts of every order that may still fill: open, partially filled,
        cancelling (cancel not confirmed) and unknown ones (in full). Risk counts them at worst case."""
        buy = sell = Decimal(0)
        for o in self.journal.live_orders():
            if o.side == "buy":
                buy += o.remaining
            else:
                sell += o.remaining
        return buy, sell

    def open_count(self) -> int:
        return len(self.journal.live_orders())
