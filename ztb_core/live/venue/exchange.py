"""Exchange adapter over the ccxt unified API: one place for rate limits, retries, error mapping,
latency measurement and Decimal results.

Retry policy (the point of this module):
- reads and cancels: retried with exponential backoff + jitter on NetworkError, RateLimitExceeded,
  ExchangeNotAvailable, RequestTimeout and malformed responses, up to `retry.max_attempts`;
- order placement: retried only when the exchange said plainly that it did not take the request
  (HTTP 429). A timeout, reset, 5xx or unreadable answer leaves the outcome unknown: the adapter
  raises `OrderOutcomeUnknown` carrying our client order id, and the journal resolves it from open
  orders / fills before anything else is placed;
- never retried: InvalidOrder, InsufficientFunds, AuthenticationError, other exchange rejections.
Error messages name the exchange, the call and what went wrong, and are scrubbed of the keys.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from ...data.bars_from_trades import ccxt_timeframe, ohlcv_to_bars, timeframe_ms, trades_to_bars
from ...errors import ConfigError
from .exchange_config import ExchangeConfig
from .secrets import Credentials, redact

if TYPE_CHECKING:
    import pandas as pd
from .client import _KIND_TEXT, CallStats, TokenBucket, _classify, _Malformed, make_exchange
from .errors import (
    OUTCOME_UNKNOWN,
    RETRYABLE,
    AuthError,
    ExchangeCallError,
    ExchangeUnavailable,
    InsufficientFundsError,
    OrderNotFoundError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from .types import (
    Balance,
    ExchangeFill,
    FillSync,
    MarketLimits,
    OpenOrder,
    OrderAck,
    OrderBook,
    OrderStatus,
    PublicTrade,
    Ticker,
    dec,
    required,
    required_dec,
)

log = logging.getLogger(__name__)


DEDICATED_VENUES = frozenset({"coincheck"})


class ExchangeAdapter:
    """The exchange as ztb uses it, through ccxt's unified API only. Venue quirks (paging, number
    formats, error texts, order lookup) live in subclasses under `live/venue/`; build one with
    `live.venue.factory.make_adapter`. Thread-safe (calls are serialised: a ccxt client is not)."""

    #: public trades page newest-first by id cursor (True) or forward by time (False)
    trade_cursor_paging = False
    #: fills per page when paging our trade history
    fills_page = 100

    @classmethod
    def broad_errors(cls) -> dict[str, Any]:
        """Message fragments -> ccxt error classes, for venues whose ccxt class maps every
        `success: false` answer to a plain ExchangeError."""
        return {}

    def __init__(
        self,
        cfg: ExchangeConfig,
        credentials: Credentials | None = None,
        exchange: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if type(self) is ExchangeAdapter and cfg.exchange in DEDICATED_VENUES:
            raise ConfigError(
                f"{cfg.exchange} has its own adapter: build it with ztb_core.live.venue.factory.make_adapter(cfg, credentials)"
            )
        self.cfg, self.credentials = cfg, credentials
        self.exchange = exchange if exchange is not None else make_exchange(cfg, credentials, self.broad_errors())
        self.symbol = cfg.symbol
        self.bucket = TokenBucket(cfg.rate_limit.requests_per_s, cfg.rate_limit.burst, sleep=sleep)
        self.stats = CallStats()
        self.client_ids: dict[str, str] = {}  # exchange order id -> our client id (this session)
        self.on_call: list[Callable[[str, float, str | None], None]] = []
        self._sleep, self._rng = sleep, rng or random.Random()
        self._lock = threading.RLock()
        self.last_status: int | None = None
        self.last_headers: dict[str, str] = {}
        self._hook_responses()

    # ---- plumbing ---------------------------------------------------------------------------
    def _hook_responses(self) -> None:
        """Record each HTTP status: coincheck's ccxt class turns a JSON `success: false` 429/5xx
        into a plain ExchangeError, so the status is what tells a throttle from a rejection."""
        original = getattr(self.exchange, "on_rest_response", None)
        if original is None:
            return

        def hook(code: Any, reason: Any, url: Any, method: Any, headers: Any, body: Any, *rest: Any) -> Any:
            self.last_status = int(code) if code is not None else None
            self.last_headers = dict(headers or {})
            return original(code, reason, url, method, headers, body, *rest)

        self.exchange.on_rest_response = hook

    def _message(self, method: str, kind: str, exc: BaseException | None, attempts: int) -> str:
        detail = redact(str(exc) if exc is not None else "", self.credentials).strip()
        if len(detail) > 300:
            detail = detail[:300] + "..."
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts > 1 else ""
        text = f"{self.cfg.exchange} {method}: {_KIND_TEXT.get(kind, kind)}{tries}"
        return f"{text} ({detail})" if detail else text

    def backoff_s(self, attempt: int) -> float:
        r = self.cfg.retry
        base = min(r.max_delay_ms, r.base_delay_ms * (2 ** (attempt - 1))) / 1000.0
        return base * (1.0 - r.jitter * self._rng.random())

    def _once(self, method: str, fn: Callable[[], Any], check: Callable[[Any], bool] | None) -> Any:
        ex = self.exchange
        self.last_status = None
        ex.last_json_response = None
        ex.last_http_response = None
        result = fn()
        body = ex.last_http_response
        if body and ex.last_json_response is None and str(body).lstrip()[:1] in ("{", "["):
            raise _Malformed(f"{self.cfg.exchange} {method}: body is not valid JSON")
        if check is not None and not check(result):
            raise _Malformed(f"{self.cfg.exchange} {method}: response lacks expected fields")
        return result

    def _call(
        self,
        method: str,
        fn: Callable[[], Any],
        check: Callable[[Any], bool] | None = None,
        placement: dict | None = None,
    ) -> Any:
        """Run one ccxt call under the bucket, timing it, retrying per the policy in the docstring."""
        with self._lock:
            attempts = self.cfg.retry.max_attempts
            for attempt in range(1, attempts + 1):
                self.bucket.acquire()
                t0 = time.perf_counter()
                try:
                    result = self._once(method, fn, check)
                except Exception as exc:  # noqa: BLE001 - every failure is classified below
                    elapsed = (time.perf_counter() - t0) * 1000.0
                    kind = _classify(exc, self.last_status)
                    self._record(method, elapsed, kind)
                    if placement is not None and kind in OUTCOME_UNKNOWN:
                        raise OrderOutcomeUnknown(
                            self._message(method, kind, exc, attempt) + "; the order may or may not exist: "
                            f"resolve client id {placement['client_id']} from open orders and fills before "
                            "placing another",
                            kind=kind,
                            **placement,
                        ) from None
                    if kind not in RETRYABLE:
                        raise self._error(method, kind, exc, attempt) from None
                    if attempt == attempts:
                        raise ExchangeUnavailable(
                            self._message(method, kind, exc, attempt), kind=kind, method=method, attempts=attempt
                        ) from None
                    self.stats.retries += 1
                    delay = self.backoff_s(attempt)
                    log.info(
                        "%s %s: %s, retry %d/%d in %.3fs",
                        self.cfg.exchange,
                        method,
                        _KIND_TEXT[kind],
                        attempt,
                        attempts - 1,
                        delay,
                    )
                    self._sleep(delay)
                    continue
                self._record(method, (time.perf_counter() - t0) * 1000.0, None)
                return result
        raise AssertionError("unreachable: the loop returns or raises")

    def _error(self, method: str, kind: str, exc: BaseException, attempts: int) -> ExchangeCallError:
        cls = {
            "auth": AuthError,
            "insufficient_funds": InsufficientFundsError,
            "invalid_order": OrderRejected,
            "not_found": OrderNotFoundError,
        }.get(kind, OrderRejected if method == "create_order" else ExchangeCallError)
        return cls(self._message(method, kind, exc, attempts), kind=kind, method=method, attempts=attempts)

    def _record(self, method: str, ms: float, failure: str | None) -> None:
        self.stats.calls[method] += 1
        self.stats.latencies_ms[method].append(ms)
        if failure:
            self.stats.failures[method] += 1
        for cb in self.on_call:
            cb(method, ms, failure)

    def latency_summary(self) -> dict[str, dict[str, float]]:
        """Per call: count, p50 and p95 latency (ms) of the calls made so far."""
        out = {}
        for method, values in self.stats.latencies_ms.items():
            arr = np.fromiter(values, float)
            if len(arr):
                out[method] = {
                    "n": float(len(arr)),
                    "p50_ms": float(np.percentile(arr, 50)),
                    "p95_ms": float(np.percentile(arr, 95)),
                }
        return out

    # ---- markets ----------------------------------------------------------------------------
    def load_markets(self) -> dict:
        return self._call("load_markets", lambda: self.exchange.load_markets())

    def market_limits(self, symbol: str | None = None) -> MarketLimits:
        """Limits from the config (or the built-in table for coincheck/zaif), else from ccxt's market."""
        symbol = symbol or self.symbol
        override = self.cfg.market_override(symbol)
        if override is not None:
            return MarketLimits(
                symbol, override.min_amount, override.min_cost, override.amount_step, override.price_step
            )
        markets = self.load_markets()
        market = markets.get(symbol)
        if market is None:
            raise ConfigError(f"exchange.symbol: {self.cfg.exchange} has no market {symbol!r}")
        precision, limits = market.get("precision") or {}, market.get("limits") or {}
        amount_step, price_step = self._step(precision.get("amount")), self._step(precision.get("price"))
        if amount_step is None or price_step is None:
            raise ConfigError(
                f"{self.cfg.exchange} {symbol}: ccxt has no precision for this market; set "
                f"exchange.markets.{symbol}.amount_step and .price_step in the config"
            )
        min_amount = dec((limits.get("amount") or {}).get("min")) or Decimal(0)
        min_cost = dec((limits.get("cost") or {}).get("min")) or Decimal(0)
        return MarketLimits(symbol, min_amount, min_cost, amount_step, price_step)

    def _step(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        # ccxt loads on first use: the console imports this module
        import ccxt

        if self.exchange.precisionMode == ccxt.TICK_SIZE:
            return dec(value)
        if self.exchange.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(value))
        return None

    # ---- public data ------------------------------------------------------------------------
    def fetch_ticker(self, symbol: str | None = None) -> Ticker:
        symbol = symbol or self.symbol
        t = self._call(
            "fetch_ticker",
            lambda: self.exchange.fetch_ticker(symbol),
            check=lambda r: isinstance(r, dict) and r.get("last") is not None,
        )
        return Ticker(symbol, dec(t.get("bid")), dec(t.get("ask")), dec(t.get("last")), t.get("timestamp"))

    def fetch_order_book(self, symbol: str | None = None, limit: int | None = None) -> OrderBook:
        symbol = symbol or self.symbol
        ob = self._call(
            "fetch_order_book",
            lambda: self.exchange.fetch_order_book(symbol, limit),
            check=lambda r: isinstance(r, dict) and "bids" in r and "asks" in r,
        )
        return OrderBook(
            symbol, self._book_side(ob["bids"], "bids"), self._book_side(ob["asks"], "asks"), ob.get("timestamp")
        )

    def _book_side(self, rows: Any, name: str) -> list[tuple[Decimal, Decimal]]:
        """[price, amount, ...] rows as Decimal pairs; a level without both is a malformed reply."""
        out = []
        for i, (p, a, *_) in enumerate(rows):
            if p is None or a is None:
                raise ExchangeCallError(
                    f"exchange reply {self.cfg.exchange} fetch_order_book: field '{name}[{i}]' missing price or amount",
                    kind="bad_response",
                    method="fetch_order_book",
                )
            out.append((Decimal(str(p)), Decimal(str(a))))
        return out

    def fetch_trades(
        self,
        symbol: str | None = None,
        limit: int | None = None,
        since_ms: int | None = None,
        params: dict | None = None,
    ) -> list[PublicTrade]:
        """Recent public trades, oldest first."""
        symbol = symbol or self.symbol
        rows = self._call(
            "fetch_trades",
            lambda: self.exchange.fetch_trades(symbol, since_ms, limit, params or {}),
            check=lambda r: isinstance(r, list),
        )
        ex = self.cfg.exchange
        out = [
            PublicTrade(
                str(t["id"]),
                int(t["timestamp"]),
                required_dec(t, "price", ex, "fetch_trades"),
                abs(required_dec(t, "amount", ex, "fetch_trades")),
                t.get("side"),
            )
            for t in rows
            if t.get("timestamp") is not None and t.get("price") is not None
        ]
        out.sort(key=lambda t: (t.timestamp_ms, _id_key(t.id)))
        return out

    def iter_trade_pages(
        self, since_ms: int, until_ms: int | None = None, older_than: str | None = None, page: int = 100
    ) -> Iterator[list[PublicTrade]]:
        """Public trades forward from `since_ms` (since pagination; `older_than` is for cursor venues).
        Each page is oldest-first."""
        cursor_ms = since_ms
        seen: set[str] = set()
        while True:
            trades = [t for t in self.fetch_trades(limit=page, since_ms=cursor_ms) if t.id not in seen]
            if until_ms is not None:
                trades = [t for t in trades if t.timestamp_ms < until_ms]
            if not trades:
                return
            yield trades
            seen = {t.id for t in trades if t.timestamp_ms == trades[-1].timestamp_ms}
            cursor_ms = trades[-1].timestamp_ms

    def fetch_ohlcv_or_build(
        self, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None, now_ms: int | None = None
    ) -> pd.DataFrame:
        """Completed bars: the exchange's OHLCV where ccxt has it, else built from public trades
        (coincheck, zaif, bitflyer). Schema of `ztb_core.data.schema` (UTC `time` index)."""

        tf = ccxt_timeframe(timeframe)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        span = timeframe_ms(tf)
        if since_ms is None:
            since_ms = now_ms - span * (limit or 60)
        since_ms = since_ms // span * span  # from a bar boundary, or the first bar would be partial
        if self.exchange.has.get("fetchOHLCV"):
            rows = self._call(
                "fetch_ohlcv",
                lambda: self.exchange.fetch_ohlcv(self.symbol, tf, since_ms, limit),
                check=lambda r: isinstance(r, list),
            )
            bars = ohlcv_to_bars(rows)
        else:
            trades = [t for page in self.iter_trade_pages(since_ms) for t in page]
            bars = trades_to_bars(trades, tf)
        done = bars.index.asi8 // 1_000_000 + span <= now_ms
        bars = bars[done]
        return bars.iloc[-limit:] if limit else bars

    # ---- private: account and orders ---------------------------------------------------------
    def fetch_balance(self) -> Balance:
        b = self._call(
            "fetch_balance",
            lambda: self.exchange.fetch_balance(),
            check=lambda r: isinstance(r, dict) and isinstance(r.get("free"), dict),
        )
        pick = lambda key: {c: d for c, v in (b.get(key) or {}).items() if (d := dec(v)) is not None}  # noqa: E731
        return Balance(pick("free"), pick("used"), pick("total"))

    def create_limit_order(
        self, side: str, amount: Decimal, price: Decimal, client_id: str, symbol: str | None = None
    ) -> OrderAck:
        """Place a limit order. Raises OrderRejected (not placed), OrderOutcomeUnknown (maybe placed)."""
        symbol = symbol or self.symbol
        if side not in ("buy", "sell"):
            raise OrderRejected(f"side must be buy or sell, got {side!r}", kind="invalid_order", method="create_order")
        amount, price = Decimal(amount), Decimal(price)
        limits = self.market_limits(symbol)
        problem = limits.check(amount, price)
        if problem:
            raise OrderRejected(
                f"{self.cfg.exchange} create_order {client_id}: not sent: {problem}",
                kind="invalid_order",
                method="create_order",
            )
        sent_at = int(time.time() * 1000)
        placement = {"client_id": client_id, "side": side, "amount": amount, "price": price, "sent_at_ms": sent_at}
        t0 = time.perf_counter()
        amt, px = self.order_args(amount, price)
        order = self._call(
            "create_order",
            lambda: self.exchange.create_order(symbol, "limit", side, amt, px),
            check=lambda r: isinstance(r, dict) and r.get("id") not in (None, ""),
            placement=placement,
        )
        exchange_id = str(order["id"])
        self.client_ids[exchange_id] = client_id
        return OrderAck(
            client_id, exchange_id, symbol, side, amount, price, sent_at, (time.perf_counter() - t0) * 1000.0
        )

    def order_args(self, amount: Decimal, price: Decimal) -> tuple[Any, Any]:
        """Amount and price as the venue's ccxt class should send them."""
        return float(amount), float(price)

    def cancel_order(self, exchange_id: str, symbol: str | None = None) -> None:
        """Cancel; retried on transient failures. OrderNotFoundError when it is not open (anymore)."""
        symbol = symbol or self.symbol
        self._call(
            "cancel_order",
            lambda: self.exchange.cancel_order(str(exchange_id), symbol),
            check=lambda r: isinstance(r, dict),
        )

    def fetch_open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        symbol = symbol or self.symbol
        rows = self._call(
            "fetch_open_orders", lambda: self.exchange.fetch_open_orders(symbol), check=lambda r: isinstance(r, list)
        )
        ex, method = self.cfg.exchange, "fetch_open_orders"
        return [
            OpenOrder(
                str(o["id"]),
                o.get("symbol") or symbol,
                o["side"],
                required_dec(o, "price", ex, method),
                required_dec(o, "remaining" if o.get("remaining") is not None else "amount", ex, method),
                o.get("timestamp"),
            )
            for o in rows
            if o.get("symbol") in (None, symbol)
        ]

    def parse_fill(self, t: dict) -> ExchangeFill:
        """A ccxt trade structure of ours as an ExchangeFill."""
        fee = t.get("fee") or {}
        return ExchangeFill(
            str(t["id"]),
            str(t["order"]) if t.get("order") is not None else None,
            int(required(t, "timestamp", self.cfg.exchange, "fetch_my_trades")),
            t["side"],
            required_dec(t, "price", self.cfg.exchange, "fetch_my_trades"),
            abs(required_dec(t, "amount", self.cfg.exchange, "fetch_my_trades")),
            dec(fee.get("cost")) or Decimal(0),
            fee.get("currency"),
            t.get("takerOrMaker"),
        )

    def fetch_my_trades(
        self, symbol: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[ExchangeFill]:
        """One page of our fills (ccxt's fetchMyTrades), oldest first. Reconciliation uses
        `fetch_fills`, which reads every page it needs."""
        symbol = symbol or self.symbol
        if not self.exchange.has.get("fetchMyTrades"):
            raise ConfigError(
                f"{self.cfg.exchange}: ccxt has no fetchMyTrades, so ztb cannot read its fills; "
                "this venue cannot trade live"
            )
        rows = self._call(
            "fetch_my_trades",
            lambda: self.exchange.fetch_my_trades(symbol, since_ms, limit),
            check=lambda r: isinstance(r, list),
        )
        return sorted_fills(self.parse_fill(t) for t in rows)

    def fetch_fills(self, symbol: str | None = None, since_ms: int | None = None, after: str | None = None) -> FillSync:
        """Every fill of ours from `since_ms` on, paging forward by time until a page adds nothing
        (the generic venue has no id cursor: `after` is ignored and the cursor is None)."""
        symbol = symbol or self.symbol
        cursor_ms = since_ms
        seen: dict[str, ExchangeFill] = {}
        while True:
            page = self.fetch_my_trades(symbol, cursor_ms, self.fills_page)
            fresh = [f for f in page if f.id not in seen]
            for f in fresh:
                seen[f.id] = f
            if not fresh or len(page) < self.fills_page:
                break
            cursor_ms = max(f.timestamp_ms for f in page)
        fills = sorted_fills(f for f in seen.values() if since_ms is None or f.timestamp_ms >= since_ms)
        return FillSync(fills, None)

    def trading_halt(self, symbol: str | None = None) -> str | None:
        """Why the exchange is not taking orders now (maintenance, ...), or None when it is (or when
        ccxt has no status call for it). The runner asks before placing."""
        if not self.exchange.has.get("fetchStatus"):
            return None
        st = self._call("fetch_status", lambda: self.exchange.fetch_status(), check=lambda r: isinstance(r, dict))
        status = st.get("status")
        return None if status in (None, "ok") else f"{self.cfg.exchange} status is {status!r}"

    def exchange_filled(self, exchange_id: str, symbol: str | None = None) -> Decimal | None:
        """How much of an order the exchange says has executed; None where the venue cannot tell
        (no fetchOrder). Reconciliation keeps an order open while this exceeds its recorded fills."""
        if not self.exchange.has.get("fetchOrder"):
            return None
        return self.fetch_order(exchange_id, symbol).filled

    def fetch_order(self, exchange_id: str, symbol: str | None = None) -> OrderStatus:
        """One order's state (ccxt's fetchOrder)."""
        symbol = symbol or self.symbol
        if not self.exchange.has.get("fetchOrder"):
            raise ExchangeCallError(
                f"{self.cfg.exchange} has no fetchOrder: use open orders and fills",
                kind="rejected",
                method="fetch_order",
            )
        o = self._call(
            "fetch_order",
            lambda: self.exchange.fetch_order(str(exchange_id), symbol),
            check=lambda r: isinstance(r, dict),
        )
        status = {
            "open": "open",
            "closed": "filled",
            "canceled": "cancelled",
            "expired": "cancelled",
            "rejected": "cancelled",
        }.get(o.get("status"), "unknown")
        if status == "open" and (o.get("filled") or 0) > 0:
            status = "partially_filled"
        return OrderStatus(
            str(o["id"]),
            status,
            dec(o.get("amount")),
            dec(o.get("filled")),
            dec(o.get("remaining")),
            dec(o.get("price")),
            o.get("side"),
        )


def sorted_fills(fills: Iterable[ExchangeFill]) -> list[ExchangeFill]:
    return sorted(fills, key=lambda f: (f.timestamp_ms, _id_key(f.id)))


def _id_key(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)
