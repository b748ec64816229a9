"""The ccxt client under the adapter: its construction (URL override, timeout, keys, strict nonces),
the token-bucket rate limiter, and the classification of ccxt's errors into our kinds."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from .exchange_config import ExchangeConfig
from .secrets import Credentials


class TokenBucket:
    """`rate` tokens per second, at most `burst` stored; `acquire` waits for one."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self._clock, self._sleep = float(burst), clock, sleep
        self.stamp = clock()
        self.lock = threading.Lock()
        self.waited_s = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def acquire(self) -> float:
        """Take a token, sleeping as needed; returns seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                self._refill()
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    self.waited_s += waited
                    return waited
                need = (1.0 - self.tokens) / self.rate
            self._sleep(need)
            waited += need

    def headroom(self) -> float:
        with self.lock:
            self._refill()
            return self.tokens


class _MonotonicNonce:
    """Millisecond nonces that strictly increase even for two requests in the same millisecond
    (Coincheck rejects a nonce not larger than the previous one)."""

    def __init__(self) -> None:
        self.last = 0
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.last = max(self.last + 1, int(time.time() * 1000))
            return self.last


def make_exchange(
    cfg: ExchangeConfig, credentials: Credentials | None = None, broad_errors: dict[str, Any] | None = None
) -> Any:
    """A configured ccxt client: REST URL override, timeout, keys, strict nonces, and the venue's
    message patterns -> ccxt error classes (`broad_errors`, from its adapter class)."""
    # ccxt loads on first use: the console imports this module
    import ccxt

    if cfg.exchange not in ccxt.exchanges:
        close = [e for e in ccxt.exchanges if e.startswith(cfg.exchange[:3])][:5]
        raise ConfigError(
            f"exchange.exchange: {cfg.exchange!r} is not a ccxt exchange id"
            + (f" (close: {', '.join(close)})" if close else "")
        )
    options: dict[str, Any] = {"enableRateLimit": cfg.rate_limit.ccxt_rate_limit, "timeout": cfg.timeout_ms}
    if cfg.api_url:
        options["urls"] = {"api": {"rest": cfg.api_url.rstrip("/")}}
    if credentials is not None:
        options["apiKey"], options["secret"] = credentials.api_key, credentials.secret
    exchange = getattr(ccxt, cfg.exchange)(options)
    exchange.enableLastJsonResponse = True
    exchange.exceptions.setdefault("broad", {}).update(broad_errors or {})
    exchange.nonce = _MonotonicNonce()
    return exchange


def _classify(exc: BaseException, status: int | None) -> str:
    # ccxt loads on first use: the console imports this module
    import ccxt

    if status == 429 or isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return "rate_limited"
    if isinstance(exc, ccxt.InvalidNonce):
        return "nonce"
    if isinstance(exc, ccxt.AuthenticationError):
        return "auth"
    if isinstance(exc, ccxt.InsufficientFunds):
        return "insufficient_funds"
    if isinstance(exc, ccxt.OrderNotFound):
        return "not_found"
    if isinstance(exc, ccxt.InvalidOrder):
        return "invalid_order"
    if isinstance(exc, ccxt.RequestTimeout):
        return "timeout"
    if isinstance(exc, ccxt.ExchangeNotAvailable) or (status is not None and status >= 500):
        return "unavailable"
    if isinstance(exc, ccxt.NetworkError):
        return "network"
    if isinstance(exc, (ccxt.BadResponse, _Malformed)):
        return "bad_response"
    if isinstance(exc, ccxt.ExchangeError):
        return "rejected"
    return "bad_response"  # a parser tripped over an unexpected payload


_KIND_TEXT = {
    "rate_limited": "rate limited (HTTP 429)",
    "timeout": "request timed out",
    "network": "network error",
    "unavailable": "exchange unavailable (HTTP 5xx)",
    "bad_response": "unreadable response",
    "auth": "authentication failed (check the API key, secret and clock)",
    "nonce": "nonce rejected",
    "insufficient_funds": "insufficient funds",
    "not_found": "order not found",
    "invalid_order": "invalid order",
    "rejected": "rejected by the exchange",
}


class _Malformed(Exception):
    """The HTTP body was not the JSON the call expected."""


@dataclass
class CallStats:
    latencies_ms: dict[str, deque] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=1000)))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retries: int = 0


#: venues with their own adapter class in `live/venue/` (`make_adapter` picks it): the generic
#: adapter would read their fills wrong, so it refuses them
