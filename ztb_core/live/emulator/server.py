"""HTTP front of the emulator: Coincheck's REST paths, HMAC signature checks, faults, rate limit.

Paths follow `ccxt/coincheck.py`: public GET ticker, order_books, trades, exchange_status; private
(signed) GET accounts, accounts/balance, exchange/orders/opens, exchange/orders/{id},
exchange/orders/cancel_status, exchange/orders/transactions(_pagination); POST exchange/orders;
DELETE exchange/orders/{id}. Signed requests carry ACCESS-KEY, ACCESS-NONCE (strictly increasing)
and ACCESS-SIGNATURE = hex HMAC-SHA256(secret, nonce + full URL + body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ...errors import ConfigError
from .config import EmulatorConfig, FaultRule
from .faults import FaultTable
from .state import ApiError, ExchangeState
from .tape import TradeTape, load_bitflyer, load_synthetic

log = logging.getLogger(__name__)

PREFIX = "/api/"


class _Drop(Exception):
    """Leave the request without an answer (the connection is closed or reset)."""


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> tuple[bool, int]:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True, int(self.tokens)
            return False, 0


def route(method: str, path: str) -> tuple[str, bool, str | None]:
    """(endpoint name, private?, path id) for an /api/... path; raises ApiError(404) if unknown."""
    rest = path[len(PREFIX) :].strip("/") if path.startswith(PREFIX) else None
    if rest is None:
        raise ApiError(f"no such path {path}", status=404)
    public = {
        "ticker": "ticker",
        "order_books": "order_books",
        "trades": "trades",
        "exchange_status": "exchange_status",
    }
    if method == "GET" and rest in public:
        return public[rest], False, None
    fixed = {
        ("GET", "accounts/balance"): "balance",
        ("GET", "accounts"): "accounts",
        ("GET", "exchange/orders/opens"): "open_orders",
        ("GET", "exchange/orders/cancel_status"): "cancel_status",
        ("GET", "exchange/orders/transactions"): "transactions",
        ("GET", "exchange/orders/transactions_pagination"): "transactions_pagination",
        ("POST", "exchange/orders"): "create_order",
    }
    if (method, rest) in fixed:
        return fixed[(method, rest)], True, None
    if rest.startswith("exchange/orders/"):
        oid = rest[len("exchange/orders/") :]
        if oid and "/" not in oid:
            if method == "DELETE":
                return "cancel_order", True, oid
            if method == "GET":
                return "order", True, oid
    raise ApiError(f"no such endpoint {method} {path}", status=404)


class EmulatorServer:
    """A Coincheck-compatible exchange on loopback. `start()` returns the base URL to put in
    ccxt's `urls['api']['rest']`; use it as a context manager in tests (port 0 = any free port)."""

    def __init__(self, config: EmulatorConfig | None = None, tape: TradeTape | None = None) -> None:
        self.config = config or EmulatorConfig()
        if tape is None:
            tape = (
                load_bitflyer(self.config.bitflyer_days, self.config.data_dir)
                if self.config.source == "bitflyer"
                else load_synthetic(self.config.synthetic_days, self.config.seed)
            )
        self.tape = tape
        self.state = ExchangeState(self.config, tape)
        self.faults = FaultTable(seed=self.config.seed)
        self.faults.extend(self.config.faults)
        self.requests: Counter[str] = Counter()
        self.auth_failures = 0
        self._last_nonce = 0
        self._nonce_lock = threading.Lock()
        self._stop = threading.Event()
        self._bucket = (
            _TokenBucket(self.config.rate_limit_per_s, self.config.rate_limit_burst)
            if self.config.rate_limit_per_s
            else None
        )
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        handler = type("BoundHandler", (_Handler,), {"emulator": self})
        try:
            self._httpd = ThreadingHTTPServer((self.config.host, self.config.port), handler)
        except OSError as exc:
            raise ConfigError(
                f"emulator: cannot listen on {self.config.host}:{self.config.port} ({exc.strerror or exc}); "
                "choose another port (--port, or 0 for any free one)"
            ) from None
        self._httpd.daemon_threads = True
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="ztb-emulator", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._stop.set()  # wakes requests hanging in a timeout/response_lost fault
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/api"

    # ---- test helpers -------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the replay clock forward (the only way time passes when speed is 0)."""
        self.state.advance(seconds)

    def add_fault(self, rule: FaultRule | dict) -> FaultRule:
        return self.faults.add(rule)

    def sleep(self, seconds: float) -> bool:
        """Interruptible sleep; True if the server is stopping."""
        return self._stop.wait(seconds)

    # ---- request handling ---------------------------------------------------------------
    def check_signature(self, headers: Any, url: str, body: str) -> None:
        key = headers.get("ACCESS-KEY") or ""
        nonce = headers.get("ACCESS-NONCE") or ""
        signature = headers.get("ACCESS-SIGNATURE") or ""
        expected = hmac.new(self.config.secret.encode(), (nonce + url + body).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(key.encode(), self.config.api_key.encode()) or not hmac.compare_digest(
            signature.encode(), expected.encode()
        ):
            self.auth_failures += 1
            raise ApiError("invalid authentication", status=401)
        if not nonce.isdigit():
            raise ApiError("invalid authentication", status=401)
        with self._nonce_lock:
            if int(nonce) <= self._last_nonce:
                raise ApiError(f"Nonce must be incremented (got {nonce}, last {self._last_nonce})", status=401)
            self._last_nonce = int(nonce)

    def dispatch(self, endpoint: str, oid: str | None, params: dict[str, str], fill_ratio: float | None) -> dict:
        s = self.state
        handlers: dict[str, Callable[[], dict]] = {
            "ticker": s.ticker,
            "order_books": s.order_book,
            "trades": lambda: s.trades(params),
            "exchange_status": s.exchange_status,
            "balance": s.balance,
            "accounts": s.accounts,
            "open_orders": s.open_orders,
            "cancel_status": lambda: s.cancel_status(params.get("id")),
            "transactions": lambda: s.transactions(params, paginated=False),
            "transactions_pagination": lambda: s.transactions(params, paginated=True),
            "create_order": lambda: s.create_order(params, fill_ratio),
            "cancel_order": lambda: s.cancel_order(oid),
            "order": lambda: s.order_detail(oid),
        }
        return handlers[endpoint]()


class _Handler(BaseHTTPRequestHandler):
    emulator: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "ztb-emulator/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler API
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    # ---- plumbing -----------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self, reset: bool) -> None:
        self.close_connection = True
        try:
            if reset:  # SO_LINGER 0: close() sends RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        except OSError:
            pass
        raise _Drop()

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (_Drop, ConnectionError, OSError):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        emu = self.emulator
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            endpoint, private, oid = route(method, split.path)
        except ApiError as err:
            self._send(err.status, json.dumps({"success": False, "error": err.message}).encode())
            return
        emu.requests[endpoint] += 1
        extra: dict[str, str] = {}
        if emu._bucket is not None:
            ok, remaining = emu._bucket.take()
            extra = {"X-RateLimit-Limit": str(emu.config.rate_limit_burst), "X-RateLimit-Remaining": str(remaining)}
            if not ok:
                self._send(429, b"<html><body>429 Too Many Requests</body></html>", "text/html", extra)
                return
        delays, fault = emu.faults.pick(endpoint)
        for rule in delays:
            if emu.sleep(rule.latency_ms / 1000.0):
                self._drop(reset=False)
        kind = fault.kind if fault else None
        if kind == "connection_reset":
            self._drop(reset=True)
        if fault is not None and fault.kind == "timeout":
            emu.sleep(fault.hang_ms / 1000.0)
            self._drop(reset=False)
        if kind == "http_429":
            self._send(429, b"<html><body>429 Too Many Requests</body></html>", "text/html", extra)
            return
        if fault is not None and fault.kind == "http_5xx":
            self._send(
                fault.status, f"<html><body>{fault.status} Server Error</body></html>".encode(), "text/html", extra
            )
            return
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body, keep_blank_values=True))
        try:
            if private:
                host = self.headers.get("Host") or f"{emu.config.host}:{emu.port}"
                emu.check_signature(self.headers, f"http://{host}{self.path}", body)
            if fault is not None and fault.kind == "late_execution" and emu.sleep(fault.hang_ms / 1000.0):
                self._drop(reset=False)  # the server is stopping: the late work never happens
            payload = emu.dispatch(
                endpoint, oid, params, fault.fill_ratio if fault is not None and fault.kind == "partial_fill" else None
            )
            status = 200
        except ApiError as err:
            payload, status = {"success": False, "error": err.message}, err.status
        if kind == "late_execution":
            self._drop(reset=False)  # the client gave up long ago: nobody hears the answer
        if fault is not None and fault.kind == "response_lost":
            if fault.hang_ms:
                emu.sleep(fault.hang_ms / 1000.0)
            self._drop(reset=False)
        data = json.dumps(payload).encode()
        if kind == "malformed_json":
            data = data[: max(1, len(data) // 2)]
        self._send(status, data, extra=extra)
