"""Config of the loopback exchange emulator and its fault-injection table."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...config import ZtbModel

#: Names of the endpoints a fault rule can target ("*" targets all of them).
ENDPOINTS = (
    "ticker",
    "order_books",
    "trades",
    "exchange_status",
    "create_order",
    "cancel_order",
    "open_orders",
    "order",
    "cancel_status",
    "balance",
    "transactions",
    "transactions_pagination",
    "accounts",
)

FaultKind = Literal[
    "latency",
    "timeout",
    "http_429",
    "http_5xx",
    "malformed_json",
    "connection_reset",
    "partial_fill",
    "response_lost",
    "late_execution",
]


class FaultRule(ZtbModel):
    """One row of the fault table: what goes wrong, on which endpoint, how often.

    latency          sleep `latency_ms`, then answer normally
    timeout          hang `hang_ms` without doing the work, then drop the connection
    http_429         answer 429 Too Many Requests (work not done)
    http_5xx         answer `status` (500-599; work not done)
    malformed_json   do the work, answer 200 with a truncated JSON body
    connection_reset reset the TCP connection before doing the work
    partial_fill     an order placed while the rule fires fills at most `fill_ratio` of its amount per fill
    response_lost    do the work (the order IS placed), then drop the connection (after `hang_ms`)
    late_execution   check the signature and nonce on arrival, hang `hang_ms` (the client times out),
                     THEN do the work (the order is placed after our request timed out) and drop
    """

    kind: FaultKind = Field(..., description="What goes wrong")
    endpoint: str = Field("*", description="Endpoint name (see ENDPOINTS) or * for every endpoint")
    times: int | None = Field(1, ge=1, description="How many matching requests it hits; null = every one")
    after: int = Field(0, ge=0, description="Let this many matching requests through first")
    probability: float = Field(1.0, ge=0, le=1, description="Chance that a matching request is hit")
    latency_ms: float = Field(100.0, ge=0, description="latency: added delay")
    hang_ms: float = Field(2000.0, ge=0, description="timeout/response_lost: how long the server hangs")
    status: int = Field(503, ge=500, le=599, description="http_5xx: the status code")
    fill_ratio: float = Field(0.5, gt=0, le=1, description="partial_fill: largest fill as a share of the amount")

    @model_validator(mode="after")
    def _known_endpoint(self) -> FaultRule:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; one of: *, {', '.join(ENDPOINTS)}")
        return self


class WsSilence(ZtbModel):
    """A window in which the public websocket goes silent: sockets stay open (pings are answered)
    but no trade, book or subscription snapshot is sent, as a venue's stalled feed looks."""

    after_s: float = Field(..., ge=0, description="Wall seconds after the websocket server started")
    for_s: float = Field(..., gt=0, description="How long it stays silent, seconds")


class EmulatorConfig(ZtbModel):
    """A Coincheck-compatible exchange on loopback, replaying a real or synthetic trade stream."""

    default_file: ClassVar[str | None] = "emulator.yaml"

    host: str = Field("127.0.0.1", description="Bind address (loopback only by design)")
    port: int = Field(0, ge=0, le=65535, description="TCP port; 0 picks a free one")
    source: Literal["bitflyer", "synthetic"] = Field("synthetic", description="Trade stream to replay")
    bitflyer_days: int = Field(1, ge=1, le=7, description="bitflyer: how many daily files to load")
    synthetic_days: float = Field(8.0, gt=0, description="synthetic: length of the generated market in days")
    seed: int = Field(7, description="Seed of the synthetic market and of fault probabilities")
    speed: float = Field(1.0, ge=0, description="Replay speed (tape seconds per wall second); 0 = manual clock")
    history_s: float = Field(
        4 * 86400.0,
        ge=0,
        description="Tape already visible at start (history for bars and fetch): 4 days, more than the 4,380 "
        "bars a default technical-66 agent reads, so it decides on its first closed bar",
    )
    clock: Literal["wall", "tape"] = Field(
        "wall", description="wall: report times rebased so now = live; tape: the original trade times"
    )
    api_key: str = Field("emulator-key", min_length=1, description="The one API key the emulator accepts")
    secret: str = Field("emulator-secret", min_length=1, description="Its secret (HMAC-SHA256 signing key)")
    balances: dict[str, float] = Field(
        default_factory=lambda: {"jpy": 1_000_000.0, "btc": 0.1}, description="Starting free balances by currency id"
    )
    min_amount: float = Field(0.005, ge=0, description="Smallest order amount (BTC), like Coincheck")
    min_cost: float = Field(500.0, ge=0, description="Smallest order notional (JPY)")
    price_step: float = Field(1.0, gt=0, description="Price tick (JPY)")
    spread_bps: float = Field(2.0, ge=0, description="Synthetic book: bid/ask spread around the last trade")
    book_depth: int = Field(20, ge=1, le=200, description="Synthetic book: levels per side")
    maker_fee_bps: float = Field(0.0, description="Fee on resting fills, bps of the notional")
    taker_fee_bps: float = Field(
        10.0, description="Fee on immediate fills, bps (on by default so fee handling is always exercised)"
    )
    maintenance: bool = Field(False, description="Start in maintenance: exchange_status says so, orders refused")
    other_pair_fill_every: int = Field(
        0, ge=0, description="After every Nth fill of ours, a fill on another pair (eth_jpy) joins the history; 0 = off"
    )
    rate_limit_per_s: float | None = Field(None, gt=0, description="Requests/s per client before HTTP 429; null = off")
    rate_limit_burst: int = Field(10, ge=1, description="Burst allowed by the emulator's rate limit")
    faults: list[FaultRule] = Field(default_factory=list, description="The fault-injection table")
    ws_silent: list[WsSilence] = Field(
        default_factory=list,
        description="Windows in which the websocket stays open but sends nothing (a silent stall); REST goes on",
    )
    data_dir: Path | None = Field(None, description="bitflyer: folder of the gz CSVs; default shared data")
