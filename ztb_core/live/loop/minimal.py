"""`ztb live --minimal`: prove the whole private API path with one order that cannot fill.

Steps (each timed, each pass/fail): balances before; reconcile; cancel any test order an earlier
run left resting (killed mid-flow); ticker (and the exchange clock against ours); market limits; place one
minimum-size buy limit order `far_pct` below the bid (so it cannot fill; an unknown outcome is
looked for over `unknown_outcome_window_s`, as for any order: a test order the venue executed late
is found and cancelled, never left resting); confirm it is open;
cancel it; confirm it is gone; balances after equal balances before. The order goes through the
order manager, so it is journaled like any live order and a crash mid-flow is reconciled (and
the order cancelled) by the next start. `TEST_FLOW_QTY` overrides the size. Without keys the flow
refuses to start and says which variables or file it looked for.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ...errors import ZtbError
from ..execution.broker import OrderManager
from ..execution.journal import Journal
from ..execution.orders import CANCELLED, OPEN, UNKNOWN, Order, now_ms
from ..venue.errors import ExchangeCallError

FAR_PCT = Decimal("0.30")
FLOW = "minimal"  # the submission detail that marks the flow's test orders in the journal


@dataclass
class StepResult:
    name: str
    ok: bool
    latency_ms: float
    detail: str


@dataclass
class MinimalReport:
    steps: list[StepResult] = field(default_factory=list)
    order_client_id: str | None = None
    order_exchange_id: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "order_client_id": self.order_client_id,
            "order_exchange_id": self.order_exchange_id,
            "steps": [asdict(s) for s in self.steps],
        }


class _StepFailed(Exception):
    pass


def flow_qty_from_env(env: dict | None = None) -> Decimal | None:
    raw = (env if env is not None else os.environ).get("TEST_FLOW_QTY", "").strip()
    if not raw:
        return None
    try:
        qty = Decimal(raw)
    except Exception:
        raise ZtbError(f"TEST_FLOW_QTY={raw!r}: expected a positive number (base currency amount)") from None
    if not qty.is_finite() or qty <= 0:
        raise ZtbError(f"TEST_FLOW_QTY={raw!r}: expected a positive number (base currency amount)")
    return qty


def _totals(balance: Any, currencies: tuple[str, str]) -> dict[str, Decimal]:
    return {c: balance.total.get(c, Decimal(0)) or Decimal(0) for c in currencies}


def run_minimal(
    adapter: Any,
    journal: Journal,
    qty: Decimal | None = None,
    far_pct: Decimal = FAR_PCT,
    confirm_tries: int = 5,
    confirm_wait_s: float = 0.5,
    on_step: Callable[[StepResult], None] | None = None,
    window_s: float = 600.0,
) -> MinimalReport:
    """Run the flow; never raises for exchange failures (they become failed steps). `window_s` is
    `unknown_outcome_window_s`: a test order whose placement outcome is unknown is looked for that
    long before it is called never placed (the venue may execute it late), as for any order."""
    report = MinimalReport()
    manager = OrderManager(adapter, journal, adapter.symbol, grace_ms=int(window_s * 1000))
    flow = _Flow(adapter, journal, manager, report, qty, far_pct, confirm_tries, confirm_wait_s, window_s)
    try:
        for name, fn in flow.plan():
            _run_step(report, name, fn, on_step)
    except _StepFailed:
        _cleanup(manager, journal, report)
    return report


def _run_step(
    report: MinimalReport, name: str, fn: Callable[[], str], on_step: Callable[[StepResult], None] | None
) -> None:
    """Time one step and record it; a failed step stops the flow (`_StepFailed`)."""
    t0 = time.perf_counter()
    try:
        detail, ok = fn(), True
    except (_StepFailed, ExchangeCallError, ZtbError) as exc:
        detail, ok = str(exc), False
    result = StepResult(name, ok, round((time.perf_counter() - t0) * 1000.0, 2), detail)
    report.steps.append(result)
    if on_step:
        on_step(result)
    if not ok:
        raise _StepFailed(name)


class _Flow:
    """The flow's steps, in order (`plan`); each returns its detail line or raises `_StepFailed`.
    Later steps use what earlier ones found: balances, ticker, order size and price, the order."""

    def __init__(
        self,
        adapter: Any,
        journal: Journal,
        manager: OrderManager,
        report: MinimalReport,
        qty: Decimal | None,
        far_pct: Decimal,
        confirm_tries: int,
        confirm_wait_s: float,
        window_s: float,
    ) -> None:
        self.adapter, self.journal, self.manager, self.report = adapter, journal, manager, report
        self.qty, self.far_pct = qty, far_pct
        self.confirm_tries, self.confirm_wait_s, self.window_s = confirm_tries, confirm_wait_s, window_s
        self.symbol = adapter.symbol
        self.currencies: tuple[str, str] = tuple(self.symbol.split("/"))
        self.before: dict[str, Decimal] = {}
        self.ticker_seen: Any = None
        self.amount = self.price = Decimal(0)
        self.order: Order | None = None

    def plan(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("balances_before", self.balances_before),
            ("reconcile", self.reconcile_first),
            ("leftover_test_orders", self.leftovers),
            ("ticker", self.ticker),
            ("market_limits", self.limits),
            ("place_order", self.place),
            ("confirm_open", lambda: self.confirm(True)),
            ("cancel_order", self.cancel),
            ("confirm_cancelled", self.confirm_cancelled),
            ("balances_unchanged", self.balances_after),
        ]

    def journaled(self, client_id: str) -> Order:
        """The journal's record of an order this flow knows (the journal never drops one)."""
        order = self.journal.get(client_id)
        if order is None:
            raise _StepFailed(f"order {client_id} is missing from the journal")
        return order

    def placed(self) -> Order:
        assert self.order is not None  # the steps after place_order run only once it succeeded
        return self.order

    def balances_before(self) -> str:
        self.before = _totals(self.adapter.fetch_balance(), self.currencies)
        return ", ".join(f"{c} {v}" for c, v in self.before.items())

    def reconcile_first(self) -> str:
        rep = self.manager.reconcile()
        if rep.still_unresolved:
            raise _StepFailed(f"earlier order(s) {rep.still_unresolved} still have an unknown outcome")
        return f"journal agrees with the exchange ({len(rep.orphans)} foreign open order(s) left alone)"

    def leftovers(self) -> str:
        stale = [o for o in self.journal.live_orders() if _is_test_order(self.journal, o.client_id)]
        for o in stale:
            self.manager.cancel(o)
        if stale:
            self.manager.reconcile()
        still = [o.client_id for o in stale if not self.journaled(o.client_id).terminal]
        if still:
            raise _StepFailed(f"earlier test order(s) {still} are still resting; cancel them by hand")
        if not stale:
            return "no test order left by an earlier run"
        return f"cancelled {len(stale)} test order(s) left by an earlier run: {', '.join(o.client_id for o in stale)}"

    def ticker(self) -> str:
        t0 = now_ms()
        t = self.adapter.fetch_ticker()
        # the exchange clock against ours: the placement's unknown outcome is judged on its stamps
        skew = self.manager.observe_clock(t.timestamp_ms, t0, now_ms())
        if not t.bid and not t.last:
            raise _StepFailed("ticker has neither bid nor last price")
        self.ticker_seen = t
        clock = f"exchange clock {skew:+.0f} ms from ours" if skew is not None else "no exchange time"
        return f"bid {t.bid} ask {t.ask} last {t.last}; {clock}"

    def limits(self) -> str:
        lim = self.adapter.market_limits(self.symbol)
        ref = self.ticker_seen.bid or self.ticker_seen.last
        price = lim.round_price(ref * (1 - self.far_pct), "buy")
        if self.qty is not None:
            amount = lim.round_amount(self.qty)
        else:
            # the minimum amount, raised until the notional clears the minimum cost at the far price
            need = max(lim.min_amount, (lim.min_cost / price) if price > 0 else lim.min_amount)
            amount = (need / lim.amount_step).to_integral_value(rounding=ROUND_CEILING) * lim.amount_step
        problem = lim.check(amount, price)
        if problem:
            raise _StepFailed(f"test order {amount} @ {price} is not acceptable: {problem}")
        self.amount, self.price = amount, price
        return (
            f"order {amount} {self.currencies[0]} @ {price} ({self.far_pct:.0%} below the bid; min amount "
            f"{lim.min_amount}, min cost {lim.min_cost})"
        )

    def place(self) -> str:
        order = self.manager.place("buy", self.amount, self.price, detail={"flow": FLOW})
        self.report.order_client_id = order.client_id
        order = self.await_outcome(order)
        if order.state != OPEN or not order.exchange_id:
            raise _StepFailed(f"order {order.client_id} is {order.state}: {order.reason or 'not placed'}")
        self.report.order_exchange_id = order.exchange_id
        self.order = order
        return f"placed {order.client_id} as exchange order {order.exchange_id}"

    def await_outcome(self, order: Order) -> Order:
        """An order whose placement outcome is unknown, looked for over the window: found, ruled out
        after it, or several/late candidates the operator must judge."""
        deadline = time.monotonic() + self.window_s
        while order.state == UNKNOWN:
            rep = self.manager.reconcile()
            order = self.journaled(order.client_id)
            if order.state != UNKNOWN:
                break
            if order.client_id in rep.ambiguous:
                raise _StepFailed(
                    f"order {order.client_id}: outcome unknown; exchange order(s) {', '.join(rep.ambiguous[order.client_id])} "
                    f"could be it without proof; decide with ztb live reconcile --resolve EXCHANGE_ID --as ours|not-ours"
                )
            if time.monotonic() > deadline + self.confirm_wait_s:
                raise _StepFailed(f"order {order.client_id}: outcome still unknown after {self.window_s:.0f} s")
            time.sleep(self.confirm_wait_s)
        return order

    def confirm(self, present: bool) -> str:
        eid = self.placed().exchange_id
        for i in range(self.confirm_tries):
            ids = {o.exchange_id for o in self.adapter.fetch_open_orders(self.symbol)}
            if (eid in ids) == present:
                return f"order {eid} {'is' if present else 'is no longer'} among the open orders (try {i + 1})"
            time.sleep(self.confirm_wait_s)
        raise _StepFailed(f"order {eid} {'never appeared among' if present else 'is still among'} the open orders")

    def cancel(self) -> str:
        self.manager.cancel(self.journaled(self.placed().client_id))
        return f"cancel of {self.placed().exchange_id} accepted"

    def confirm_cancelled(self) -> str:
        detail = self.confirm(False)
        self.manager.reconcile()
        order = self.journaled(self.placed().client_id)
        if order.state != CANCELLED:
            raise _StepFailed(f"journal has order {order.client_id} as {order.state}, expected cancelled")
        return detail + "; journal: cancelled"

    def balances_after(self) -> str:
        after = _totals(self.adapter.fetch_balance(), self.currencies)
        changed = {c: (self.before[c], after[c]) for c in self.currencies if after[c] != self.before[c]}
        if changed:
            raise _StepFailed("balances changed: " + ", ".join(f"{c} {a} -> {b}" for c, (a, b) in changed.items()))
        return "unchanged: " + ", ".join(f"{c} {v}" for c, v in after.items())


def _is_test_order(journal: Journal, client_id: str) -> bool:
    for row in journal.transitions(client_id):
        if row["from_state"] is None and row["detail"]:
            return json.loads(row["detail"]).get("flow") == FLOW
    return False


def _cleanup(manager: OrderManager, journal: Journal, report: MinimalReport) -> None:
    """After a failure, make sure the test order does not stay on the book."""
    if report.order_client_id is None:
        return
    order = journal.get(report.order_client_id)
    if order is None or order.terminal:
        return
    t0 = time.perf_counter()
    try:
        manager.cancel_all()
        order = journal.get(report.order_client_id)
        ok = order is not None and order.terminal
        detail = f"test order is {order.state if order else 'missing'}"
    except (ExchangeCallError, ZtbError) as exc:
        ok, detail = False, f"could not cancel the test order {report.order_exchange_id}: {exc}; cancel it by hand"
    report.steps.append(StepResult("cleanup", ok, round((time.perf_counter() - t0) * 1000.0, 2), detail))
