"""The adapter over the real ccxt client, against the emulator: results, the retry policy for every
row of the fault table, order-outcome uncertainty, error mapping and rate limiting."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from ztb_core.data.bars_from_trades import trades_to_bars
from ztb_core.errors import ConfigError
from ztb_core.live.emulator import FaultRule
from ztb_core.live.venue.client import TokenBucket, make_exchange
from ztb_core.live.venue.errors import (
    AuthError,
    ExchangeCallError,
    ExchangeUnavailable,
    InsufficientFundsError,
    OrderNotFoundError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from ztb_core.live.venue.exchange import ExchangeAdapter
from ztb_core.live.venue.exchange_config import ExchangeConfig, MarketOverride
from ztb_core.live.venue.factory import make_adapter
from ztb_core.live.venue.secrets import Credentials
from ztb_core.live.venue.types import MarketLimits

from .conftest import TEST_KEY, TEST_SECRET

AMOUNT = Decimal("0.01")


def far_bid(adapter: ExchangeAdapter) -> Decimal:
    """A bid 5% under the market: accepted, reserved, never filled during a test."""
    return (adapter.fetch_ticker().last * Decimal("0.95")).quantize(Decimal(1))


def test_market_data_and_account(exchange_adapter, emulator):
    t = exchange_adapter.fetch_ticker()
    assert t.last == Decimal(str(emulator.tape.price[emulator.state.visible - 1]))
    assert t.bid < t.ask
    book = exchange_adapter.fetch_order_book()
    assert book.bids[0][0] == t.bid and book.asks[0][0] == t.ask
    trades = exchange_adapter.fetch_trades(limit=10)
    assert len(trades) == 10 and [int(x.id) for x in trades] == sorted(int(x.id) for x in trades)
    bal = exchange_adapter.fetch_balance()
    assert bal.free["JPY"] == Decimal("1000000") and bal.total["BTC"] == Decimal("0.1")
    summary = exchange_adapter.latency_summary()
    assert {"fetch_ticker", "fetch_order_book", "fetch_trades", "fetch_balance"} <= set(summary)
    assert all(s["p95_ms"] >= s["p50_ms"] > 0 for s in summary.values())


def test_order_lifecycle_with_decimals(exchange_adapter):
    price = far_bid(exchange_adapter)
    ack = exchange_adapter.create_limit_order("buy", AMOUNT, price, client_id="cid-1")
    assert (ack.client_id, ack.side, ack.amount, ack.price) == ("cid-1", "buy", AMOUNT, price)
    assert exchange_adapter.client_ids[ack.exchange_id] == "cid-1"
    opens = exchange_adapter.fetch_open_orders()
    assert [(o.exchange_id, o.price, o.remaining) for o in opens] == [(ack.exchange_id, price, AMOUNT)]
    assert exchange_adapter.fetch_order(ack.exchange_id).status == "open"
    assert exchange_adapter.fetch_balance().used["JPY"] == AMOUNT * price
    exchange_adapter.cancel_order(ack.exchange_id)
    assert exchange_adapter.fetch_open_orders() == []
    assert exchange_adapter.fetch_order(ack.exchange_id).status == "cancelled"
    with pytest.raises(OrderNotFoundError):
        exchange_adapter.cancel_order(ack.exchange_id)


def test_partial_fill_is_visible_through_the_adapter(exchange_adapter, emulator):
    emulator.add_fault(FaultRule(kind="partial_fill", endpoint="create_order", fill_ratio=0.5))
    ask = exchange_adapter.fetch_ticker().ask
    ack = exchange_adapter.create_limit_order("buy", Decimal("0.02"), ask, client_id="pf")
    status = exchange_adapter.fetch_order(ack.exchange_id)
    assert (status.status, status.filled, status.remaining) == ("partially_filled", Decimal("0.01"), Decimal("0.01"))
    fills = exchange_adapter.fetch_my_trades()
    assert [(f.order_id, f.amount, f.price, f.taker_or_maker) for f in fills] == [
        (ack.exchange_id, Decimal("0.01"), ask, "taker")
    ]


# ---- the fault table: (kind, extra rule fields, read outcome, placement outcome) -----------------------
# read: "retried" = the call succeeds after the adapter retries; "ok" = succeeds on the first try.
# placement: "retried" = placed exactly once after a retry; "unknown-absent" / "unknown-placed" =
# OrderOutcomeUnknown, and the order does not exist / does exist on the exchange.
FAULT_TABLE = [
    ("latency", {"latency_ms": 60}, "ok", "placed"),
    ("timeout", {"hang_ms": 700}, "retried", "unknown-absent"),
    ("http_429", {}, "retried", "retried"),
    ("http_5xx", {"status": 503}, "retried", "unknown-absent"),
    ("malformed_json", {}, "retried", "unknown-placed"),
    ("connection_reset", {}, "retried", "unknown-absent"),
    ("response_lost", {"hang_ms": 0}, "retried", "unknown-placed"),
]


@pytest.mark.parametrize("kind,extra,read,_", FAULT_TABLE, ids=[row[0] for row in FAULT_TABLE])
def test_fault_table_reads(exchange_adapter, emulator, kind, extra, read, _):
    expected = exchange_adapter.fetch_ticker().last
    retries = exchange_adapter.stats.retries
    emulator.add_fault(FaultRule(kind=kind, endpoint="ticker", **extra))
    t0 = time.perf_counter()
    assert exchange_adapter.fetch_ticker().last == expected
    assert exchange_adapter.stats.retries - retries == (1 if read == "retried" else 0)
    assert emulator.faults.fired[kind] == 1
    if kind == "latency":
        assert time.perf_counter() - t0 >= 0.06
        assert max(exchange_adapter.stats.latencies_ms["fetch_ticker"]) >= 60


@pytest.mark.parametrize("kind,extra,_,placement", FAULT_TABLE, ids=[row[0] for row in FAULT_TABLE])
def test_fault_table_order_placement(exchange_adapter, emulator, kind, extra, _, placement):
    price = far_bid(exchange_adapter)
    emulator.add_fault(FaultRule(kind=kind, endpoint="create_order", **extra))
    if placement.startswith("unknown"):
        with pytest.raises(OrderOutcomeUnknown) as info:
            exchange_adapter.create_limit_order("buy", AMOUNT, price, client_id=f"cid-{kind}")
        err = info.value
        assert (err.client_id, err.side, err.amount, err.price) == (f"cid-{kind}", "buy", AMOUNT, price)
        assert "client id cid-" in str(err)
        # never a blind retry: exactly one placement request reached the exchange
        assert emulator.requests["create_order"] == 1
        opens = exchange_adapter.fetch_open_orders()  # what reconciliation then looks at
        if placement == "unknown-placed":
            assert [(o.side, o.price) for o in opens] == [("buy", price)] and len(emulator.state.orders) == 1
        else:
            assert opens == [] and emulator.state.orders == {}
    else:
        ack = exchange_adapter.create_limit_order("buy", AMOUNT, price, client_id=f"cid-{kind}")
        assert emulator.requests["create_order"] == (2 if placement == "retried" else 1)
        assert [o.exchange_id for o in exchange_adapter.fetch_open_orders()] == [ack.exchange_id]


def test_cancel_is_retried_on_transient_faults(exchange_adapter, emulator):
    ack = exchange_adapter.create_limit_order("buy", AMOUNT, far_bid(exchange_adapter), client_id="c")
    emulator.add_fault(FaultRule(kind="http_5xx", endpoint="cancel_order", status=502))
    exchange_adapter.cancel_order(ack.exchange_id)
    assert emulator.requests["cancel_order"] == 2 and exchange_adapter.fetch_open_orders() == []


def test_persistent_failure_exhausts_retries(exchange_adapter, emulator):
    emulator.add_fault(FaultRule(kind="http_5xx", endpoint="balance", times=None))
    with pytest.raises(ExchangeUnavailable) as info:
        exchange_adapter.fetch_balance()
    assert info.value.attempts == 3 and emulator.requests["balance"] == 3
    assert "after 3 attempts" in str(info.value) and "unavailable" in str(info.value)


def test_no_retry_on_invalid_order_funds_or_auth(exchange_adapter, emulator, exchange_config):
    last = exchange_adapter.fetch_ticker().last
    with pytest.raises(InsufficientFundsError):
        exchange_adapter.create_limit_order("sell", Decimal("1"), last, client_id="big")
    assert emulator.requests["create_order"] == 1
    # the emulator's minimum is stricter than the configured one: the exchange rejects, no retry
    loose = exchange_config.model_copy(
        update={
            "markets": {
                "BTC/JPY": MarketOverride(
                    amount_step=Decimal("0.001"),
                    price_step=Decimal("1"),
                    min_amount=Decimal("0.001"),
                    min_cost=Decimal(0),
                )
            }
        }
    )
    adapter = make_adapter(loose, Credentials(TEST_KEY, TEST_SECRET))
    with pytest.raises(OrderRejected) as info:
        adapter.create_limit_order("buy", Decimal("0.002"), last, client_id="tiny")
    assert info.value.kind == "invalid_order" and emulator.requests["create_order"] == 2
    bad = make_adapter(exchange_config, Credentials(TEST_KEY, "not-the-secret-123"))
    with pytest.raises(AuthError) as auth:
        bad.fetch_balance()
    assert emulator.requests["balance"] == 1
    assert "not-the-secret-123" not in str(auth.value) and TEST_KEY not in str(auth.value)


def test_order_below_market_minimum_is_not_sent(exchange_adapter, emulator):
    with pytest.raises(OrderRejected, match="below the minimum 0.005"):
        exchange_adapter.create_limit_order("buy", Decimal("0.001"), Decimal("1000000"), client_id="x")
    with pytest.raises(OrderRejected, match="price step"):
        exchange_adapter.create_limit_order("buy", Decimal("0.01"), Decimal("1000000.5"), client_id="y")
    assert emulator.requests["create_order"] == 0


def test_backoff_grows_exponentially_with_jitter(exchange_config, test_credentials):
    cfg = exchange_config.model_copy(
        update={
            "retry": exchange_config.retry.model_copy(
                update={"base_delay_ms": 100, "max_delay_ms": 1000, "jitter": 0.5}
            )
        }
    )
    adapter = make_adapter(cfg, test_credentials, rng=random.Random(0))
    delays = [adapter.backoff_s(a) for a in range(1, 7)]
    caps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(0.5 * c <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lock-step


def test_retry_sleeps_use_the_backoff(exchange_config, test_credentials, emulator):
    slept: list[float] = []
    adapter = make_adapter(exchange_config, test_credentials, sleep=slept.append)
    emulator.add_fault(FaultRule(kind="http_429", endpoint="ticker", times=2))
    adapter.fetch_ticker()
    assert len(slept) == 2 and 0.0005 <= slept[0] <= 0.001 and 0.001 <= slept[1] <= 0.002


def test_token_bucket_spaces_requests():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(4)]
    assert waits[:2] == [0.0, 0.0] and waits[2] == pytest.approx(0.5) and waits[3] == pytest.approx(0.5)
    assert now[0] == pytest.approx(1.0)


def test_market_limits_from_config_and_rounding(exchange_adapter, exchange_config):
    limits = exchange_adapter.market_limits()
    assert limits == MarketLimits("BTC/JPY", Decimal("0.005"), Decimal("500"), Decimal("0.00000001"), Decimal("1"))
    assert limits.round_amount(Decimal("0.0123456789")) == Decimal("0.01234567")
    assert limits.round_price(Decimal("100.7"), "buy") == 100 and limits.round_price(Decimal("100.2"), "sell") == 101
    # coincheck's ccxt markets carry no precision: a market with no config entry is a clear error
    with pytest.raises(ConfigError, match=r"exchange.markets.ETC/JPY.amount_step"):
        exchange_adapter.market_limits("ETC/JPY")


def test_make_exchange_overrides_url_and_rejects_unknown_ids(exchange_config):
    ex = make_exchange(exchange_config)
    assert ex.urls["api"]["rest"] == exchange_config.api_url and ex.timeout == 400 and not ex.enableRateLimit
    zaif = make_exchange(ExchangeConfig(exchange="zaif", api_url="http://127.0.0.1:9/x"))
    assert zaif.urls["api"]["rest"] == "http://127.0.0.1:9/x"
    with pytest.raises(ConfigError, match="not a ccxt exchange id"):
        make_exchange(ExchangeConfig(exchange="coincheckk"))


def test_bars_built_from_trades_when_the_exchange_has_no_ohlcv(exchange_adapter, emulator):
    now_ms = emulator.state.clock.report_ms(emulator.state.clock.tape_now_ms())
    bars = exchange_adapter.fetch_ohlcv_or_build("1m", since_ms=now_ms - 20 * 60_000, now_ms=now_ms)
    assert 15 <= len(bars) <= 21
    assert (bars.index.asi8 // 1_000_000 + 60_000 <= now_ms).all()  # only completed bars
    # the same bars straight from the tape, rebased to the emulator's clock
    tape, clock = emulator.tape, emulator.state.clock
    from ztb_core.live.venue.types import PublicTrade

    trades = [
        PublicTrade(
            str(i + 1), clock.report_ms(tape.ts_ms[i]), Decimal(str(tape.price[i])), Decimal(str(tape.size[i])), None
        )
        for i in range(emulator.state.visible)
    ]
    expected = trades_to_bars(trades, "1m").loc[bars.index]
    assert (
        expected[["open", "high", "low", "close", "trades"]].to_numpy()
        == bars[["open", "high", "low", "close", "trades"]].to_numpy()
    ).all()
    assert abs(expected["volume"] - bars["volume"]).max() < 1e-6


def test_my_trades_walks_every_page_back_to_since(exchange_adapter, emulator):
    ask = exchange_adapter.fetch_ticker().ask
    sent = int(time.time() * 1000) - 1000
    # more fills than one page holds (coincheck pages 20 by default; the adapter asks 100 a page)
    for i in range(130):
        exchange_adapter.create_limit_order("buy", Decimal("0.005"), ask + 5_000, client_id=f"m{i}")
    fills = exchange_adapter.fetch_my_trades(since_ms=sent)
    assert len(fills) == 130 and len({f.id for f in fills}) == 130
    assert [int(f.id) for f in fills] == sorted(int(f.id) for f in fills)
    assert len(exchange_adapter.fetch_my_trades()) == 100
    assert [f.id for f in exchange_adapter.fetch_my_trades(limit=5)] == [f.id for f in fills[-5:]]


class _GappyExchange:
    """A ccxt stand-in whose replies can leave out a field (ccxt fills an absent one with None)."""

    has = {"fetchMyTrades": True}
    last_json_response = last_http_response = None

    def __init__(self, drop: str | None = None) -> None:
        self.drop = drop

    def _gap(self, row: dict, name: str) -> dict:
        return {k: (None if f"{name}.{k}" == self.drop else v) for k, v in row.items()}

    def fetch_open_orders(self, symbol):
        return [
            self._gap(
                {
                    "id": "7",
                    "symbol": symbol,
                    "side": "buy",
                    "price": 100.0,
                    "remaining": None,
                    "amount": 0.5,
                    "timestamp": 1,
                },
                "order",
            )
        ]

    def fetch_my_trades(self, symbol, since, limit):
        return [
            self._gap(
                {"id": "9", "order": "7", "timestamp": 2, "side": "buy", "price": 100.0, "amount": 0.5, "fee": None},
                "trade",
            )
        ]

    def fetch_order_book(self, symbol, limit):
        return {"bids": [[99.0, 1.0], [98.0, None if self.drop == "book.amount" else 2.0]], "asks": [[101.0, 1.0]]}

    def fetch_trades(self, symbol, since, limit, params):
        return [self._gap({"id": "3", "timestamp": 5, "price": 100.0, "amount": -0.25, "side": "sell"}, "public")]


@pytest.mark.parametrize(
    ("drop", "read", "field"),
    [
        ("order.price", "fetch_open_orders", "'price'"),
        ("order.amount", "fetch_open_orders", "'amount'"),
        ("trade.price", "fetch_my_trades", "'price'"),
        ("trade.amount", "fetch_my_trades", "'amount'"),
        ("trade.timestamp", "fetch_my_trades", "'timestamp'"),
        ("book.amount", "fetch_order_book", r"'bids\[1\]'"),
        ("public.amount", "fetch_trades", "'amount'"),
    ],
)
def test_reply_missing_a_money_field_is_a_clear_error(exchange_config, drop, read, field):
    """A None price/amount in a reply names the call and the field (not a TypeError on Decimal
    arithmetic later, not a silent 0); the complete reply parses (positive control)."""
    cfg = exchange_config.model_copy(update={"exchange": "binance"})
    whole = getattr(ExchangeAdapter(cfg, exchange=_GappyExchange()), read)()
    assert whole  # the complete reply parses: only the dropped field makes the error
    gappy = ExchangeAdapter(cfg, exchange=_GappyExchange(drop))
    with pytest.raises(ExchangeCallError, match=rf"exchange reply binance {read}: field {field}") as err:
        getattr(gappy, read)()
    assert err.value.kind == "bad_response"
