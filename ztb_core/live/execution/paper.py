"""The paper venue for dry runs: the exchange's PUBLIC quotes, simulated fills, no private call.

It offers the same calls as the ccxt adapter (`create_limit_order`, `cancel_order`,
`fetch_open_orders`, `fetch_my_trades`, `fetch_balance`, market data), so the decision loop, the
order manager, the journal and reconciliation run unchanged in a dry run.

Fills follow `ztb_core.pnl`'s cost convention: an order that crosses the live touch fills at once
at the touch moved `slippage_bps` against us (never beyond its limit) and pays `fee_bps` of the
notional; without a bid/ask the touch is the last price +- half of `spread_bps`. A resting order
fills at its limit price (as maker, paying the fee) once a later quote crosses it. Simulated fills
are recorded in the paper journal like real ones, and the venue rebuilds its book and balances
from that journal on restart.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import Field

from ...config import ZtbModel
from ...trading_costs import CostConfig
from ..venue.errors import ExchangeCallError, OrderNotFoundError, OrderRejected
from ..venue.types import Balance, ExchangeFill, FillSync, OpenOrder, OrderAck, Ticker
from .journal import Journal
from .orders import CANCEL_REQUESTED, OPEN, PARTIALLY_FILLED

log = logging.getLogger("ztb.live.paper")

_BPS = Decimal(10_000)


class PaperConfig(ZtbModel):
    """The dry run's starting account."""

    start_quote: Decimal = Field(Decimal("1000000"), ge=0, description="Starting quote balance (JPY)")
    start_base: Decimal = Field(Decimal("0"), ge=0, description="Starting base balance (BTC)")


@dataclass
class _Resting:
    exchange_id: str
    client_id: str
    side: str
    price: Decimal
    remaining: Decimal
    timestamp_ms: int


def _d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class PaperVenue:
    """Simulated private side over a public market-data source (the adapter without keys)."""

    name = "paper"

    def __init__(
        self,
        market: Any,
        journal: Journal,
        costs: CostConfig,
        paper: PaperConfig | None = None,
        symbol: str | None = None,
    ) -> None:
        self.market, self.journal, self.costs = market, journal, costs
        self.paper = paper or PaperConfig()
        self.symbol = symbol or market.symbol
        self._fill_seq = itertools.count(1)
        self._order_seq = itertools.count(1)
        self.book: dict[str, _Resting] = {}
        self.fills: list[ExchangeFill] = []
        self.last_ticker: Ticker | None = None
        self._restore()

    # ---- restart ------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Rebuild resting orders and fills from the paper journal (ids continue where they stopped)."""
        max_order = 0
        for o in self.journal.orders([OPEN, PARTIALLY_FILLED, CANCEL_REQUESTED]):
            if o.exchange_id and o.exchange_id.startswith("P"):
                self.book[o.exchange_id] = _Resting(
                    o.exchange_id, o.client_id, o.side, o.price, o.remaining, o.submitted_ms or o.created_ms
                )
        for o in self.journal.orders():
            if o.exchange_id and o.exchange_id.startswith("P") and o.exchange_id[1:].isdigit():
                max_order = max(max_order, int(o.exchange_id[1:]))
        max_fill = 0
        for f in self.journal.fills():
            self.fills.append(
                ExchangeFill(
                    f.trade_id, f.exchange_order_id, f.time_ms, f.side, f.price, f.amount, f.fee, f.fee_currency, None
                )
            )
            if f.trade_id.startswith("PF") and f.trade_id[2:].isdigit():
                max_fill = max(max_fill, int(f.trade_id[2:]))
        self._order_seq = itertools.count(max_order + 1)
        self._fill_seq = itertools.count(max_fill + 1)

    # ---- market data (public, delegated) -------------------------------------------------------
    def fetch_ticker(self, symbol: str | None = None) -> Ticker:
        self.last_ticker = self.market.fetch_ticker(symbol or self.symbol)
        return self.last_ticker

    def trading_halt(self, symbol: str | None = None) -> str | None:
        """The real exchange's status: a dry run respects its maintenance windows too."""
        return self.market.trading_halt(symbol or self.symbol)

    def market_limits(self, symbol: str | None = None) -> Any:
        return self.market.market_limits(symbol or self.symbol)

    def _touch(self, ticker: Ticker) -> tuple[Decimal, Decimal]:
        if ticker.bid is not None and ticker.ask is not None and ticker.bid > 0 and ticker.ask > 0:
            return ticker.bid, ticker.ask
        if ticker.last is None:
            raise ExchangeCallError(
                f"exchange reply fetch_ticker {ticker.symbol}: fields 'bid'/'ask' and 'last' missing; "
                "the paper venue has no price to match against",
                kind="bad_response",
                method="fetch_ticker",
            )
        half = ticker.last * _d(self.costs.spread_bps) / (2 * _BPS)
        return ticker.last - half, ticker.last + half

    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    def _fill(self, r: _Resting, price: Decimal, amount: Decimal, liquidity: str) -> None:
        fee = (amount * price * _d(self.costs.fee_bps) / _BPS).quantize(Decimal("0.001"))
        self.fills.append(
            ExchangeFill(
                f"PF{next(self._fill_seq)}", r.exchange_id, self._now_ms(), r.side, price, amount, fee, "JPY", liquidity
            )
        )
        r.remaining -= amount
        if r.remaining <= 0:
            self.book.pop(r.exchange_id, None)

    def _match(self, ticker: Ticker | None = None) -> None:
        """Fill resting orders that the current quote crosses, at their limit price."""
        if not self.book:
            return
        ticker = ticker or self.fetch_ticker()
        bid, ask = self._touch(ticker)
        for r in list(self.book.values()):
            if (r.side == "buy" and ask <= r.price) or (r.side == "sell" and bid >= r.price):
                self._fill(r, r.price, r.remaining, "maker")

    # ---- the private calls, simulated ---------------------------------------------------------
    def fetch_balance(self) -> Balance:
        self._match()
        base, quote = self.symbol.split("/")
        pos = sum((f.amount if f.side == "buy" else -f.amount for f in self.fills), Decimal(0))
        cash = sum(
            ((-f.amount * f.price if f.side == "buy" else f.amount * f.price) - f.fee for f in self.fills), Decimal(0)
        )
        total = {base: self.paper.start_base + pos, quote: self.paper.start_quote + cash}
        used = {
            base: sum((r.remaining for r in self.book.values() if r.side == "sell"), Decimal(0)),
            quote: sum((r.remaining * r.price for r in self.book.values() if r.side == "buy"), Decimal(0)),
        }
        return Balance({c: total[c] - used[c] for c in total}, used, total)

    def create_limit_order(
        self, side: str, amount: Decimal, price: Decimal, client_id: str, symbol: str | None = None
    ) -> OrderAck:
        limits = self.market_limits()
        problem = limits.check(amount, price)
        if problem:
            raise OrderRejected(
                f"paper create_order {client_id}: not sent: {problem}", kind="invalid_order", method="create_order"
            )
        bal = self.fetch_balance()
        base, quote = self.symbol.split("/")
        if side == "buy" and bal.free.get(quote, Decimal(0)) < amount * price:
            raise OrderRejected(
                f"paper create_order {client_id}: insufficient {quote} "
                f"({bal.free.get(quote)} free, {amount * price} needed)",
                kind="insufficient_funds",
                method="create_order",
            )
        if side == "sell" and bal.free.get(base, Decimal(0)) < amount:
            raise OrderRejected(
                f"paper create_order {client_id}: insufficient {base} ({bal.free.get(base)} free, {amount} needed)",
                kind="insufficient_funds",
                method="create_order",
            )
        t0 = time.perf_counter()
        ticker = self.last_ticker if self.last_ticker is not None else self.fetch_ticker()
        bid, ask = self._touch(ticker)
        r = _Resting(f"P{next(self._order_seq)}", client_id, side, price, amount, self._now_ms())
        self.book[r.exchange_id] = r
        slip = _d(self.costs.slippage_bps) / _BPS
        if side == "buy" and price >= ask:
            self._fill(r, min(price, ask * (1 + slip)), amount, "taker")
        elif side == "sell" and price <= bid:
            self._fill(r, max(price, bid * (1 - slip)), amount, "taker")
        return OrderAck(
            client_id,
            r.exchange_id,
            self.symbol,
            side,
            amount,
            price,
            r.timestamp_ms,
            (time.perf_counter() - t0) * 1000.0,
        )

    def cancel_order(self, exchange_id: str, symbol: str | None = None) -> None:
        if self.book.pop(str(exchange_id), None) is None:
            raise OrderNotFoundError(
                f"paper cancel_order: order {exchange_id} is not open", kind="not_found", method="cancel_order"
            )

    def fetch_open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        self._match(self.last_ticker)
        return [
            OpenOrder(r.exchange_id, self.symbol, r.side, r.price, r.remaining, r.timestamp_ms)
            for r in self.book.values()
        ]

    def fetch_my_trades(
        self, symbol: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[ExchangeFill]:
        out = [f for f in self.fills if since_ms is None or f.timestamp_ms >= since_ms]
        return out[-limit:] if limit else out

    def fetch_fills(self, symbol: str | None = None, since_ms: int | None = None, after: str | None = None) -> FillSync:
        """Every simulated fill from `since_ms` on (the paper venue keeps them all in memory)."""
        return FillSync(self.fetch_my_trades(symbol, since_ms), None)

    def exchange_filled(self, exchange_id: str, symbol: str | None = None) -> Decimal | None:
        """Executed amount of a paper order: the sum of its simulated fills."""
        return sum((f.amount for f in self.fills if f.order_id == str(exchange_id)), Decimal(0))
