"""Coincheck: what its API does differently from ccxt's unified view, in one place.

- Fills: `GET exchange/orders/transactions_pagination` pages newest-first with `limit` (<= 100),
  `order`, `starting_after`/`ending_before` (ids rise with time); ccxt's fetchMyTrades ignores
  `since` and filters by symbol inside a page, so a page that is short after filtering looks like the
  end of history. We call the endpoint directly, page on the raw ids until the sync cursor and the
  time bound are both reached, and filter by pair only after paging.
- Orders: no client order id or tag; `GET exchange/orders/{id}` gives one order's executed amount.
- Numbers are sent as plain decimal strings (never a float's 1e-05 form).
- Every `success: false` answer is a plain ExchangeError in ccxt: its message says which kind.
- Public trades page newest-first by id cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt

from .exchange import ExchangeAdapter, sorted_fills
from .types import ExchangeFill, FillSync, OrderStatus, PublicTrade, dec

#: coincheck order status -> ours
_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "PARTIALLY_FILLED_CANCELED": "cancelled",
    "EXPIRED": "cancelled",
    "PARTIALLY_FILLED_EXPIRED": "cancelled",
}


class CoincheckAdapter(ExchangeAdapter):
    trade_cursor_paging = True
    fills_page = 100  # the endpoint's largest page

    @classmethod
    def broad_errors(cls) -> dict[str, Any]:
        return {
            "Insufficient": ccxt.InsufficientFunds,
            "not enough": ccxt.InsufficientFunds,
            "not found": ccxt.OrderNotFound,
            "too small": ccxt.InvalidOrder,
            "is invalid": ccxt.InvalidOrder,
            "Nonce must be incremented": ccxt.InvalidNonce,
        }

    def order_args(self, amount: Decimal, price: Decimal) -> tuple[Any, Any]:
        return format(amount, "f"), format(price, "f")

    def _market(self, symbol: str) -> dict:
        """ccxt's market (its `id` is coincheck's pair name); markets are loaded once."""
        if not self.exchange.markets:
            self.load_markets()
        return self.exchange.market(symbol)

    # ---- fills ----------------------------------------------------------------------------------
    def _transactions_page(self, cursor: str | None) -> list[dict]:
        params = {"limit": self.fills_page, "order": "desc", **({"starting_after": cursor} if cursor else {})}
        body = self._call(
            "fetch_my_trades",
            lambda: self.exchange.privateGetExchangeOrdersTransactionsPagination(params),
            check=lambda r: isinstance(r, dict) and isinstance(r.get("data"), list),
        )
        return body["data"]

    def fetch_fills(self, symbol: str | None = None, since_ms: int | None = None, after: str | None = None) -> FillSync:
        """Our fills of `symbol` newer than the cursor `after` (a fill id) and from `since_ms` on,
        reading pages back until both are reached (one page when neither is given)."""
        market = self._market(symbol or self.symbol)
        stop_id = int(after) if after and after.isdigit() else None
        rows: list[dict] = []
        cursor: str | None = None
        newest: int | None = None
        while True:
            page = self._transactions_page(cursor)
            if not page:
                break
            ids = [int(r["id"]) for r in page]
            newest = max(ids) if newest is None else max(newest, *ids)
            rows.extend(page)
            oldest_id = min(ids)
            oldest_ms = min(self.exchange.parse8601(r.get("created_at")) or 0 for r in page)
            more = (stop_id is not None and oldest_id > stop_id) or (since_ms is not None and oldest_ms >= since_ms)
            # a short page is the oldest history there is (counted before any pair filter)
            if not more or len(page) < self.fills_page:
                break
            cursor = str(oldest_id)
        ours = [self.parse_fill(self.exchange.parse_trade(r, market)) for r in rows if r.get("pair") == market["id"]]
        unique = {f.id: f for f in ours}
        cursor_out = str(newest) if newest is not None and (stop_id is None or newest > stop_id) else after
        return FillSync(sorted_fills(unique.values()), cursor_out)

    def fetch_my_trades(
        self, symbol: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[ExchangeFill]:
        """Our fills from `since_ms` (every page back to it), or the newest page; the newest `limit`."""
        fills = self.fetch_fills(symbol, since_ms=since_ms).fills
        return fills[-limit:] if limit else fills

    # ---- orders ---------------------------------------------------------------------------------
    def fetch_order(self, exchange_id: str, symbol: str | None = None) -> OrderStatus:
        """One order's state from GET exchange/orders/{id} (ccxt's coincheck has no fetchOrder)."""
        raw = self._call(
            "fetch_order",
            lambda: self.exchange.privateGetExchangeOrdersId({"id": str(exchange_id)}),
            check=lambda r: isinstance(r, dict) and "status" in r,
        )
        amount, filled = dec(raw.get("amount")), dec(raw.get("executed_amount"))
        remaining = amount - filled if amount is not None and filled is not None else None
        return OrderStatus(
            str(raw["id"]),
            _STATUS.get(raw["status"], "unknown"),
            amount,
            filled,
            remaining,
            dec(raw.get("rate")),
            raw.get("order_type"),
        )

    def exchange_filled(self, exchange_id: str, symbol: str | None = None) -> Decimal | None:
        return self.fetch_order(exchange_id, symbol).filled

    def trading_halt(self, symbol: str | None = None) -> str | None:
        """GET exchange_status for our pair: None when `availability.order` is true."""
        pair = self._market(symbol or self.symbol)["id"]
        body = self._call(
            "exchange_status",
            lambda: self.exchange.publicGetExchangeStatus({"pair": pair}),
            check=lambda r: isinstance(r, dict) and isinstance(r.get("exchange_status"), list),
        )
        for row in body["exchange_status"]:
            if row.get("pair") == pair:
                if (row.get("availability") or {}).get("order"):
                    return None
                return f"coincheck {pair} is {row.get('status')!r}: orders are not accepted"
        return None  # the pair is not listed: the venue says nothing against it

    # ---- public trades --------------------------------------------------------------------------
    def iter_trade_pages(
        self, since_ms: int, until_ms: int | None = None, older_than: str | None = None, page: int = 100
    ) -> Iterator[list[PublicTrade]]:
        """Public trades from the newest (or from `older_than`, an id) back to `since_ms`; each page
        oldest-first."""
        cursor = older_than
        while True:
            params = {"order": "desc", **({"starting_after": cursor} if cursor else {})}
            raw = self.fetch_trades(limit=page, params=params)
            kept = [t for t in raw if t.timestamp_ms >= since_ms and (until_ms is None or t.timestamp_ms < until_ms)]
            if kept:
                yield kept
            # stop at `since`, or at a short page: the oldest trades the exchange has
            if not raw or raw[0].timestamp_ms < since_ms or len(raw) < page:
                return
            cursor = raw[0].id
