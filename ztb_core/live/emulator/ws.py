"""Coincheck's public websocket, served from the emulator's state (aiohttp on its own thread).

Protocol (as ccxt.pro's coincheck speaks it): the client sends
`{"type": "subscribe", "channel": "btc_jpy-trades"}` (or `btc_jpy-orderbook`); the server then pushes

    trades:    [[ts_seconds, id, "btc_jpy", rate, amount, side, taker_order_id, maker_order_id], ...]
    orderbook: ["btc_jpy", {"bids": [[rate, amount], ...], "asks": [...], "last_update_at": ts_seconds}]

Trades are the tape trades the replay clock has printed since the subscription, in id order (the
same ids and prices the REST `/api/trades` endpoint pages through); the timestamp carries
milliseconds as a decimal fraction, which ccxt parses. A publisher task advances the replay clock
every `interval_s`, so trades reach subscribers as they are printed, not when someone polls REST.

Silent stalls (`EmulatorConfig.ws_silent` windows, or `silence(for_s)` at run time): the sockets stay
open and answer pings, but nothing is sent (no trades, no book, no snapshot to a new subscriber), and
the trades printed meanwhile are never pushed; REST keeps serving them. `silenced` counts the
messages withheld.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

from aiohttp import WSMsgType, web

from ...errors import ConfigError
from .state import PAIR, ExchangeState

log = logging.getLogger("ztb.live.emulator.ws")


class WsServer:
    """`start()` returns the URL for ccxt's `urls['api']['ws']` (port 0 = any free port)."""

    def __init__(self, state: ExchangeState, host: str = "127.0.0.1", port: int = 0, interval_s: float = 0.005) -> None:
        self.state, self.host, self.interval_s = state, host, interval_s
        self._port = port
        self._subs: dict[str, set[web.WebSocketResponse]] = {f"{PAIR}-trades": set(), f"{PAIR}-orderbook": set()}
        self._sent = 0  # tape trades already pushed (ids 1..sent)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.messages = 0
        self.trades_pushed = 0  # trades sent to the trade channel's subscribers (tests: what a client heard)
        self.silenced = 0  # messages withheld by a silent window
        self.error: BaseException | None = None
        # silent windows as (start, end) on the monotonic clock; config windows count from start()
        self._silences: list[tuple[float, float]] = []
        self._silence_lock = threading.Lock()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        if self._thread is not None:
            return self.url
        t0 = time.monotonic()
        with self._silence_lock:
            self._silences += [(t0 + w.after_s, t0 + w.after_s + w.for_s) for w in self.state.cfg.ws_silent]
        self._thread = threading.Thread(target=self._run, name="ztb-emulator-ws", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if isinstance(self.error, OSError):  # the port: something the user chose and can change
            raise ConfigError(
                f"emulator websocket: cannot listen on {self.host}:{self._port} ({self.error.strerror or self.error}); "
                "choose another port (--ws-port, 0 for any free one, -1 for none)"
            ) from None
        if self.error is not None:
            raise self.error
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():  # closed: never served
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def silence(self, for_s: float, after_s: float = 0.0) -> None:
        """Go silent for `for_s` seconds from `after_s` seconds from now, sockets kept open."""
        t0 = time.monotonic() + after_s
        with self._silence_lock:
            self._silences.append((t0, t0 + for_s))

    def end_silence(self) -> None:
        """Speak again now: every silence, current or scheduled, is dropped."""
        with self._silence_lock:
            self._silences.clear()

    def silent(self) -> bool:
        now = time.monotonic()
        with self._silence_lock:
            return any(a <= now < b for a, b in self._silences)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self._port}/"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self.error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        publisher = asyncio.create_task(self._publish())
        self._ready.set()
        await self._stop.wait()
        publisher.cancel()
        for subs in self._subs.values():
            for ws in list(subs):
                await ws.close()
        await self._runner.cleanup()

    # ---- protocol -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                channel = data.get("channel") if isinstance(data, dict) else None
                if data.get("type") == "subscribe" and channel in self._subs:
                    if channel.endswith("-trades") and not self._subs[channel]:
                        with self.state.lock:  # a first subscriber gets trades from now on
                            self.state.advance()
                            self._sent = self.state.visible
                    self._subs[channel].add(ws)
                    if channel.endswith("-orderbook"):
                        if self.silent():
                            self.silenced += 1
                        else:  # the snapshot a subscriber gets at once (counted: it is a message)
                            await self._send(ws, json.dumps(self._book()))
        finally:
            for subs in self._subs.values():
                subs.discard(ws)
        return ws

    def _trades(self, lo: int, hi: int) -> list[list[Any]]:
        tape, clock = self.state.tape, self.state.clock
        return [
            [
                f"{clock.report_ms(tape.ts_ms[i]) / 1000.0:.3f}",
                str(i + 1),
                PAIR,
                f"{tape.price[i]:.1f}",
                f"{tape.size[i]:.8f}",
                "buy" if tape.side[i] > 0 else "sell",
                "0",
                "0",
            ]
            for i in range(lo, hi)
        ]

    def _book(self) -> list[Any]:
        book = self.state.order_book()
        now = self.state.clock.report_ms(self.state.clock.tape_now_ms()) / 1000.0
        return [PAIR, {"bids": book["bids"], "asks": book["asks"], "last_update_at": f"{now:.0f}"}]

    async def _publish(self) -> None:
        trades_ch, book_ch = self._subs[f"{PAIR}-trades"], self._subs[f"{PAIR}-orderbook"]
        while True:
            await asyncio.sleep(self.interval_s)
            if not trades_ch and not book_ch:
                continue
            with self.state.lock:
                self.state.advance()
                lo, hi = self._sent, self.state.visible
                rows = self._trades(lo, hi) if hi > lo and trades_ch else []
                self._sent = hi
            if self.silent():  # open but mute: what was printed meanwhile is never pushed
                self.silenced += (1 if rows else 0) + (1 if hi > lo and book_ch else 0)
                continue
            if rows:
                text = json.dumps(rows)
                for ws in list(trades_ch):
                    await self._send(ws, text)
                self.trades_pushed += len(rows)
            if hi > lo and book_ch:
                text = json.dumps(self._book())
                for ws in list(book_ch):
                    await self._send(ws, text)

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            await ws.send_str(text)
            self.messages += 1
        except (ConnectionError, RuntimeError) as exc:  # a client gone mid-send: drop it
            log.debug("websocket client dropped: %s", exc)
            for subs in self._subs.values():
                subs.discard(ws)
