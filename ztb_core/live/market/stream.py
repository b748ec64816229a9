"""Public market data as it happens: trades (and the best bid/ask) over websockets through ccxt.pro,
with REST polling of public trades as the fallback, built into M1 bars the moment they close.

    feed = MarketFeed.websocket(adapter, ws_url)   # coincheck watchTrades / watchOrderBook
    feed = MarketFeed.rest(adapter)                # polling fetch_trades (the fallback)
    bars = feed.next_bars(timeout_s)               # closed bars since the last call

A bar closes on the first trade of a later minute or, when the market is quiet, once the exchange
clock (estimated from the trades' timestamps) passes its end. Every closed bar carries the exchange
time of its last trade, so the runner can report the decision latency from the bar's last trade to
the order sent (`trade_to_order_ms`).

A websocket that keeps failing (`max_ws_failures` in a row) or that stays open but sends nothing
for `silence_s` seconds (a silent stall: no trade and no book update) is treated as dead: the feed
hands over to REST polling and says so (`feed.fallback_reason`, `feed.fallbacks`), drops the socket
and, every `reconnect_s`, tries a fresh one; the first message on it hands the bars back to the
websocket (`feed.recoveries`), after one REST poll that catches up what the stall withheld. The
trade ids de-duplicate whatever both channels deliver. A message after a shorter gap (`gap_refill_s`)
may follow trades a briefly stalled socket dropped: the bars not yet handed out are completed over
REST first. `last_trade_at` is when the newest trade arrived from either channel (the runner's
stale-data check).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

from ...data.schema import utc_index
from ..venue.errors import ExchangeCallError
from ..venue.types import Ticker

log = logging.getLogger("ztb.live.stream")

#: a fresh connection gets at least this long for its first message (the handshake and the
#: subscriptions take a moment on a loaded machine) before its silence counts as a stall
CONNECT_GRACE_S = 10.0


@dataclass(frozen=True)
class StreamTrade:
    id: str
    ts_ms: int  # exchange clock
    price: float
    amount: float


@dataclass
class ClosedBar:
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    last_trade_ms: int  # exchange time of the bar's last trade
    # (time, id) of the trades that set open and close: trades may arrive out of order (a REST fill)
    first_key: tuple[int, int] = (0, 0)
    last_key: tuple[int, int] = (0, 0)


def _order_key(trade: StreamTrade) -> tuple[int, int]:
    return trade.ts_ms, int(trade.id) if trade.id.isdigit() else 0


class BarBuilder:
    """M1 (or `span_ms`) bars from trades in arrival order. Thread-safe; `wait` blocks until a bar
    closes. A trade for a closed bar not yet handed out still counts in it (a REST fill); older ones
    are dropped and counted as late; repeated ids are ignored. While `hold` is set nothing is handed
    out (the first bar is being completed)."""

    def __init__(self, span_ms: int = 60_000, seen: int = 5000) -> None:
        self.span_ms = span_ms
        self.cur: ClosedBar | None = None
        self.closed: deque[ClosedBar] = deque()
        self.cond = threading.Condition()
        self._seen: deque[str] = deque(maxlen=seen)
        self._seen_set: set[str] = set()
        self.late = 0
        self.trades = 0
        self.hold = False
        self.clock_offset_ms: float | None = None  # exchange clock - local clock, from the newest trade
        self.newest_ms: int | None = None  # exchange time of the newest trade added
        self.last_price: float | None = None  # price of that trade
        self.last_new_at: float | None = None  # time.monotonic() when a trade not seen before arrived

    def add(self, trade: StreamTrade, local_ms: float | None = None) -> None:
        with self.cond:
            if trade.id in self._seen_set:
                return
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(trade.id)
            self._seen_set.add(trade.id)
            self.last_new_at = time.monotonic()
            if self.newest_ms is None or trade.ts_ms >= self.newest_ms:
                self.newest_ms, self.last_price = trade.ts_ms, trade.price
            local = time.time() * 1000.0 if local_ms is None else local_ms
            offset = trade.ts_ms - local
            self.clock_offset_ms = offset if self.clock_offset_ms is None else max(self.clock_offset_ms, offset)
            open_ms = trade.ts_ms // self.span_ms * self.span_ms
            cur = self.cur
            if cur is not None and open_ms < cur.open_ms:
                held = next((b for b in self.closed if b.open_ms == open_ms), None)
                if held is None and self.hold:
                    # nothing is handed out while held: an earlier minute with no streamed trade (the
                    # one between the history's end and the subscription's first trade) gets its bar
                    self.trades += 1
                    self._insert_closed(_new_bar(open_ms, trade))
                    return
                if held is None:
                    self.late += 1
                    return
                self.trades += 1
                _update(held, trade)
                return
            if cur is not None and open_ms > cur.open_ms:
                self._close()
                cur = None
            self.trades += 1
            if cur is None:
                self.cur = _new_bar(open_ms, trade)
            else:
                _update(cur, trade)

    def _insert_closed(self, bar: ClosedBar) -> None:
        """A closed bar among those not handed out yet, in time order."""
        later = [b for b in self.closed if b.open_ms > bar.open_ms]
        for _ in later:
            self.closed.pop()
        self.closed.append(bar)
        self.closed.extend(later)

    def tick(self, exchange_now_ms: float) -> None:
        """Close the bar being built once the exchange clock is past its end (a quiet market)."""
        with self.cond:
            if self.cur is not None and exchange_now_ms >= self.cur.open_ms + self.span_ms:
                self._close()

    def exchange_now_ms(self) -> float | None:
        off = self.clock_offset_ms
        return None if off is None else time.time() * 1000.0 + off

    def _close(self) -> None:
        self.closed.append(self.cur)  # type: ignore[arg-type]
        self.cur = None
        self.cond.notify_all()

    def first_open_ms(self) -> int | None:
        """Open time of the oldest bar not yet handed out (None before any trade)."""
        with self.cond:
            if self.closed:
                return self.closed[0].open_ms
            return self.cur.open_ms if self.cur is not None else None

    def pop(self) -> list[ClosedBar]:
        with self.cond:
            if self.hold:
                return []
            out = list(self.closed)
            self.closed.clear()
            return out

    def wait(self, timeout_s: float) -> list[ClosedBar]:
        with self.cond:
            if not self.closed or self.hold:
                self.cond.wait(timeout_s)
            if self.hold:
                return []
            out = list(self.closed)
            self.closed.clear()
            return out


def _new_bar(open_ms: int, trade: StreamTrade) -> ClosedBar:
    p, key = trade.price, _order_key(trade)
    return ClosedBar(open_ms, p, p, p, p, trade.amount, 1, trade.ts_ms, key, key)


def _update(bar: ClosedBar, trade: StreamTrade) -> None:
    """Add a trade to a bar; open and close follow (time, id) order, not arrival order."""
    key = _order_key(trade)
    bar.high, bar.low = max(bar.high, trade.price), min(bar.low, trade.price)
    bar.volume, bar.trades = bar.volume + trade.amount, bar.trades + 1
    if key < bar.first_key:
        bar.open, bar.first_key = trade.price, key
    if key >= bar.last_key:
        bar.close, bar.last_key = trade.price, key
    bar.last_trade_ms = max(bar.last_trade_ms, trade.ts_ms)


def bars_frame(bars: list[ClosedBar]) -> pd.DataFrame:
    """Closed bars in the bar schema (`data.schema`), plus `last_trade_ms`."""
    idx = utc_index(pd.to_datetime([b.open_ms for b in bars], unit="ms", utc=True))
    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
            "trades": [float(b.trades) for b in bars],
            "last_trade_ms": [b.last_trade_ms for b in bars],
        },
        index=idx,
    )


class _WsWorker:
    """ccxt.pro's coincheck on its own event loop thread: watch_trades feeds the builder,
    watch_order_book keeps the touch."""

    def __init__(self, feed: MarketFeed, exchange_id: str, ws_url: str | None, rest_url: str | None) -> None:
        self.feed, self.exchange_id, self.ws_url, self.rest_url = feed, exchange_id, ws_url, rest_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="ztb-ws", daemon=True)
        self.stopping = False
        self.connected = threading.Event()
        # a reconnect attempt after a fallback: listening, but the bars stay on REST until a message
        self.probing = False

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(lambda: None)
        self.thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except Exception as exc:  # noqa: BLE001 - no ccxt.pro client for this venue, or it died: poll REST
            self.feed._fall_back(f"websocket client unavailable ({type(exc).__name__}: {exc}); polling REST")
        finally:
            self.loop.close()

    async def _main(self) -> None:
        # imported here so a venue without a working ccxt.pro client falls back to REST polling (see _run)
        import ccxt.pro as ccxtpro

        urls: dict[str, Any] = {}
        if self.ws_url:
            urls["ws"] = self.ws_url
        if self.rest_url:
            urls["rest"] = self.rest_url
        while not self.stopping:
            ex = getattr(ccxtpro, self.exchange_id)({"urls": {"api": urls}, "enableRateLimit": False})
            self.feed.last_message = time.monotonic()  # the silence clock starts with each connection
            self.feed.heard = False
            try:
                await asyncio.gather(self._trades(ex), self._book(ex))
            finally:
                await ex.close()  # a silent socket is dropped, not kept
            if self.stopping or self.feed.reconnect_s is None:
                return
            # on REST now: wait, then listen on a fresh connection
            end = time.monotonic() + self.feed.reconnect_s
            while not self.stopping and time.monotonic() < end:
                await asyncio.sleep(0.05)
            self.probing = True

    def _active(self) -> bool:
        return not self.stopping and (self.feed.mode == "websocket" or self.probing)

    def _probe_expired(self) -> bool:
        """A reconnect attempt that heard nothing for `silence_s` is given up (until the next one)."""
        feed = self.feed
        if self.probing and (limit := feed.silence_limit_s()) is not None and feed.silent_for_s() > limit:
            self.probing = False
            log.info("websocket reconnect heard nothing for %.0fs; staying on REST", feed.silence_s)
        return not self._active()

    def _heard(self) -> None:
        """A message arrived: the socket is alive (a reconnect attempt hands the bars back). After a
        gap of `gap_refill_s` on a socket already heard, the trades printed meanwhile may have been
        dropped: the bars not handed out yet are held until REST has completed them (`next_bars`),
        before the message's own trades can close one."""
        feed, now = self.feed, time.monotonic()
        gap = now - feed.last_message
        if feed.heard and feed.gap_refill_s is not None and gap >= feed.gap_refill_s and feed.mode == "websocket":
            feed.hold_for_rest(feed.builder.newest_ms)
            feed.refills += 1
        feed.last_message = now
        feed.heard = True
        if self.probing:
            self.probing = False
            self.feed._recover()

    async def _trades(self, ex: Any) -> None:
        feed = self.feed
        while self._active():
            try:
                trades = await asyncio.wait_for(ex.watch_trades(feed.symbol), timeout=0.5)
            except TimeoutError:
                if self._probe_expired():
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - ccxt raises many kinds; each counts toward the fallback
                if self.probing:  # the reconnect failed: back on REST until the next attempt
                    self.probing = False
                    log.info("websocket reconnect failed: %s", exc)
                    return
                feed._ws_failed(exc)
                if feed.mode != "websocket":
                    return
                await asyncio.sleep(min(2.0, 0.1 * feed.ws_failures))
                continue
            self.connected.set()
            self._heard()
            feed.ws_failures = 0
            now = time.time() * 1000.0
            for t in trades:
                if t.get("timestamp") is None or t.get("price") is None:
                    continue
                feed.builder.add(
                    StreamTrade(str(t["id"]), int(t["timestamp"]), float(t["price"]), abs(float(t["amount"]))), now
                )

    async def _book(self, ex: Any) -> None:
        feed = self.feed
        while self._active():
            try:
                book = await asyncio.wait_for(ex.watch_order_book(feed.symbol), timeout=0.5)
            except TimeoutError:
                if self._probe_expired():
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - the book is optional: the REST ticker stands in
                log.debug("order book stream: %s", exc)
                await asyncio.sleep(0.5)
                continue
            self._heard()
            bids, asks = book.get("bids") or [], book.get("asks") or []
            feed.touch = (
                Decimal(repr(float(bids[0][0]))) if bids else None,
                Decimal(repr(float(asks[0][0]))) if asks else None,
                time.time(),
            )


class MarketFeed:
    """Closed bars from a trade stream (websocket) or from polling public trades (REST)."""

    def __init__(
        self,
        adapter: Any,
        mode: str,
        ws_url: str | None = None,
        max_ws_failures: int = 5,
        silence_s: float | None = None,
        reconnect_s: float | None = None,
        gap_refill_s: float | None = None,
    ) -> None:
        self.adapter, self.mode, self.ws_url = adapter, mode, ws_url
        self.symbol = adapter.symbol
        self.max_ws_failures = max_ws_failures
        # no message for this long = a dead socket (None: only failures count); after a fallback a
        # fresh connection is tried every `reconnect_s` (None: REST for good)
        self.silence_s, self.reconnect_s = silence_s, reconnect_s
        # a message after a gap this long (None: never) holds the bars until REST has completed them
        self.gap_refill_s = gap_refill_s
        self.refills = 0  # such gaps so far
        self.builder = BarBuilder()
        self.ws_failures = 0
        self.fallback_reason: str | None = None
        self.fallbacks = 0  # websocket -> REST hand-overs so far
        self.recoveries = 0  # REST -> websocket hand-backs so far
        self.last_message = time.monotonic()  # the newest websocket message (trades or book)
        self.heard = False  # a message arrived on the current connection
        self.touch: tuple[Decimal | None, Decimal | None, float] | None = None
        self._cursor_ms: int | None = None
        self._start_ms: int | None = None  # where the next REST completion of held bars starts
        self._worker: _WsWorker | None = None
        # the subscription starts mid-bar: nothing is handed out until that bar's earlier trades
        # were fetched over REST (once)
        self.builder.hold = mode == "websocket"

    @classmethod
    def websocket(
        cls,
        adapter: Any,
        ws_url: str | None = None,
        max_ws_failures: int = 5,
        silence_s: float | None = None,
        reconnect_s: float | None = None,
        gap_refill_s: float | None = None,
    ) -> MarketFeed:
        return cls(adapter, "websocket", ws_url, max_ws_failures, silence_s, reconnect_s, gap_refill_s)

    @classmethod
    def rest(cls, adapter: Any) -> MarketFeed:
        return cls(adapter, "rest")

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self, since_ms: int | None = None) -> MarketFeed:
        """Begin collecting trades (REST polling starts at `since_ms`, default two minutes ago; the
        runner drops bars its buffer already holds)."""
        self._cursor_ms = since_ms
        self._start_ms = since_ms if self.mode == "websocket" else None  # see hold_for_rest
        if self.mode == "websocket":
            cfg = self.adapter.cfg
            self._worker = _WsWorker(self, cfg.exchange, self.ws_url, cfg.api_url)
            self._worker.start()
        return self

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __enter__(self) -> MarketFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._worker is not None and self._worker.connected.wait(timeout_s)

    def _ws_failed(self, exc: BaseException) -> None:
        self.ws_failures += 1
        log.warning("websocket trades failed (%d in a row): %s", self.ws_failures, exc)
        if self.ws_failures >= self.max_ws_failures:
            self._fall_back(f"websocket failed {self.ws_failures} times in a row ({exc}); polling REST")

    def _fall_back(self, reason: str) -> None:
        if self.mode != "websocket":
            return
        if self.reconnect_s is not None and self._worker is not None:
            reason += f" (a fresh websocket is tried every {self.reconnect_s:g}s)"
        self.fallback_reason = reason
        if self.builder.newest_ms is not None:  # REST picks up from the newest trade seen
            self._cursor_ms = self.builder.newest_ms
        self.fallbacks += 1
        self.mode = "rest"
        self.builder.hold = False
        log.warning(reason)
        with self.builder.cond:  # wake a waiting next_bars so the caller polls REST at once
            self.builder.cond.notify_all()

    def _recover(self) -> None:
        """A reconnect attempt heard the venue: bars come from the websocket again."""
        if self.mode != "rest":
            return
        self.hold_for_rest(self._cursor_ms)  # what the stall withheld, from the newest trade seen
        self.recoveries += 1
        self.mode = "websocket"
        log.warning("websocket is back (after: %s); bars from the stream again", self.fallback_reason)

    def hold_for_rest(self, since_ms: int | None) -> None:
        """Hand out no bar until one REST request has completed the bars from `since_ms` (None: from
        the oldest bar not handed out) with the trades the socket may not have delivered: before
        the first streamed bar (`since_ms` = the history's end), after a hand-back from REST, after
        a gap on the socket. Called before the trades that end the wait are added."""
        with self.builder.cond:
            self.builder.hold = True
            if since_ms is not None:
                self._start_ms = since_ms if self._start_ms is None else min(self._start_ms, since_ms)

    def silent_for_s(self) -> float:
        """Seconds since the newest websocket message."""
        return time.monotonic() - self.last_message

    def silence_limit_s(self) -> float | None:
        """How long the current connection may stay silent: `silence_s`, or CONNECT_GRACE_S (if
        longer) before its first message."""
        if self.silence_s is None:
            return None
        return self.silence_s if self.heard else max(self.silence_s, CONNECT_GRACE_S)

    def _check_silence(self) -> None:
        limit = self.silence_limit_s()
        if self.mode == "websocket" and limit is not None and self._worker is not None:
            quiet = self.silent_for_s()
            if quiet > limit:
                self._fall_back(
                    f"websocket silent for {quiet:.0f}s with the socket open (ws_silence_s {self.silence_s:g}); "
                    "polling REST"
                )

    def last_trade_age_s(self) -> float | None:
        """Seconds since a trade not seen before arrived from either channel (None: none yet)."""
        at = self.builder.last_new_at
        return None if at is None else time.monotonic() - at

    def status(self) -> dict[str, Any]:
        """What the market-data channel is doing, for metrics and the run's status line."""
        age = self.last_trade_age_s()
        return {
            "market_data": self.mode,
            "ws_silent_s": round(self.silent_for_s(), 1) if self._worker is not None else None,
            "trade_age_s": round(age, 1) if age is not None else None,
            "ws_fallbacks": self.fallbacks,
            "ws_recoveries": self.recoveries,
            "ws_gap_refills": self.refills,
        }

    # ---- bars -----------------------------------------------------------------------------------
    def poll_rest(self) -> None:
        """One REST poll of the public trades since the newest one seen."""
        since = self._cursor_ms if self._cursor_ms is not None else int(time.time() * 1000) - 120_000
        now = time.time() * 1000.0
        for page in self.adapter.iter_trade_pages(since):
            for t in page:
                self.builder.add(StreamTrade(t.id, t.timestamp_ms, float(t.price), float(t.amount)), now)
            if page:
                self._cursor_ms = page[-1].timestamp_ms

    def next_bars(self, timeout_s: float, exchange_now_ms: float | None = None) -> pd.DataFrame:
        """Bars closed since the last call: websocket mode waits up to `timeout_s` for one; REST mode
        polls once. `exchange_now_ms` (e.g. a ticker's time) closes a bar in a quiet market. A
        websocket silent for `silence_s` falls back to REST here (see the module docstring)."""
        self._check_silence()
        if self.mode == "rest":
            try:
                self.poll_rest()
            except ExchangeCallError as exc:
                log.warning("REST trade poll failed: %s", exc)
        elif self.builder.hold and (first := self.builder.first_open_ms()) is not None:
            # from `hold_for_rest`'s point, so minutes with no streamed trade get their bars too
            with self.builder.cond:
                start, self._start_ms = self._start_ms, None
            self._cursor_ms = min(first, start) if start is not None else first
            try:
                self.poll_rest()  # repeats of what the socket delivered are ignored by trade id
            except ExchangeCallError as exc:
                log.warning("REST completion of the bars being streamed failed (they may be partial): %s", exc)
            with self.builder.cond:
                self.builder.hold = False
        now = exchange_now_ms if exchange_now_ms is not None else self.builder.exchange_now_ms()
        if now is not None:
            self.builder.tick(now)
        bars = self.builder.wait(timeout_s) if self.mode == "websocket" else self.builder.pop()
        return bars_frame(bars)

    def ticker(self) -> Ticker | None:
        """The stream's touch (best bid/ask from the order book stream, last from the trades) when
        the book is fresh (under 5 s), else None (ask the REST ticker)."""
        touch, cur = self.touch, self.builder.cur
        if touch is None or time.time() - touch[2] > 5.0:
            return None
        last = Decimal(repr(cur.close)) if cur is not None else None
        now = self.builder.exchange_now_ms()
        return Ticker(self.symbol, touch[0], touch[1], last, int(now) if now is not None else None)
