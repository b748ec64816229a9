"""`ztb exchange health`: is the exchange reachable, how fast, is our clock right, how much
rate-limit room is left, and which market limits apply."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from .errors import ExchangeCallError
from .exchange import ExchangeAdapter
from .types import MarketLimits


@dataclass
class HealthReport:
    exchange: str
    symbol: str
    url: str
    reachable: bool = False
    error: str | None = None
    status: str | None = None  # exchange's own status endpoint, where it has one
    last_price: str | None = None
    latency: dict[str, float] = field(default_factory=dict)  # n, p50_ms, p95_ms of public calls
    clock_skew_ms: float | None = None  # exchange clock minus ours (HTTP Date header, 1 s resolution)
    skew_source: str | None = None
    rate_limit: dict[str, Any] = field(default_factory=dict)
    limits: MarketLimits | None = None
    limits_error: str | None = None
    private: str = "skipped (no keys)"  # ok | failed: reason | skipped

    def rows(self) -> list[tuple[str, str]]:
        lat = (
            (
                f"p50 {self.latency['p50_ms']:.1f} ms, p95 {self.latency['p95_ms']:.1f} ms "
                f"({int(self.latency['n'])} calls)"
            )
            if self.latency
            else "-"
        )
        skew = (
            f"{self.clock_skew_ms:+.0f} ms +- 500 ms ({self.skew_source})"
            if self.clock_skew_ms is not None
            else "unknown (no Date header)"
        )
        rl = self.rate_limit
        headroom = (
            f"{rl['remaining']}/{rl['limit']} requests left (exchange headers)"
            if "remaining" in rl
            else "not reported by the exchange"
        )
        ours = f"ours: {rl.get('bucket_rate', 0):g}/s burst {rl.get('bucket_burst', 0)}, ccxt spacing {rl.get('ccxt_ms', 0)} ms"
        lim = (
            (
                f"min {self.limits.min_amount} / notional {self.limits.min_cost}, steps {self.limits.amount_step} "
                f"x {self.limits.price_step}"
            )
            if self.limits
            else (self.limits_error or "-")
        )
        return [
            ("exchange", f"{self.exchange} {self.symbol}"),
            ("url", self.url),
            ("reachable", "yes" if self.reachable else f"NO: {self.error}"),
            ("status", self.status or "-"),
            ("last price", self.last_price or "-"),
            ("latency", lat),
            ("clock skew", skew),
            ("rate limit", f"{headroom}; {ours}"),
            ("market limits", lim),
            ("private API", self.private),
        ]


def check_health(adapter: ExchangeAdapter, samples: int = 5) -> HealthReport:
    cfg = adapter.cfg
    url = cfg.api_url or str(adapter.exchange.urls.get("api", {}).get("rest", "?"))
    report = HealthReport(cfg.exchange, cfg.symbol, url)
    report.rate_limit = {
        "bucket_rate": cfg.rate_limit.requests_per_s,
        "bucket_burst": cfg.rate_limit.burst,
        "ccxt_ms": adapter.exchange.rateLimit if cfg.rate_limit.ccxt_rate_limit else 0,
    }
    skews: list[float] = []
    try:
        for _ in range(max(1, samples)):
            t0 = time.time()
            ticker = adapter.fetch_ticker()
            t1 = time.time()
            report.last_price = str(ticker.last)
            date = adapter.last_headers.get("Date") or adapter.last_headers.get("date")
            if date:
                # the header has 1 s resolution and is stamped while answering: compare to the midpoint
                skews.append((parsedate_to_datetime(date).timestamp() + 0.5 - (t0 + t1) / 2) * 1000.0)
        report.reachable = True
    except ExchangeCallError as exc:
        report.error = str(exc)
        return report
    lat = adapter.latency_summary().get("fetch_ticker")
    report.latency = lat or {}
    if skews:
        report.clock_skew_ms, report.skew_source = sorted(skews)[len(skews) // 2], "HTTP Date header"
    headers = {k.lower(): v for k, v in adapter.last_headers.items()}
    if "x-ratelimit-remaining" in headers:
        report.rate_limit.update(
            remaining=headers["x-ratelimit-remaining"], limit=headers.get("x-ratelimit-limit", "?")
        )
    if adapter.exchange.has.get("fetchStatus"):
        try:
            report.status = adapter._call(
                "fetch_status", lambda: adapter.exchange.fetch_status(), check=lambda r: isinstance(r, dict)
            ).get("status")
        except ExchangeCallError as exc:
            report.status = f"unknown ({exc.kind})"
    try:
        report.limits = adapter.market_limits()
    except Exception as exc:  # noqa: BLE001 - a report line, not a crash
        report.limits_error = str(exc)
    if adapter.credentials is not None:
        try:
            adapter.fetch_balance()
            report.private = "ok (balance readable)"
        except ExchangeCallError as exc:
            report.private = f"failed: {exc}"
    return report
