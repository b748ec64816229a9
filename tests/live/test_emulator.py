"""The emulator answers every endpoint ccxt's coincheck class calls, checks signatures, keeps
balances and matches orders against the replayed tape."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

import ccxt
import pytest
import requests

from ztb_core.config import load_config
from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, FaultRule, TradeTape
from ztb_core.live.emulator.state import paginate
from ztb_core.live.venue.client import _MonotonicNonce
from ztb_core.paths import shared_data_dir

from .conftest import TEST_KEY, TEST_SECRET


def client(emulator: EmulatorServer, key: str = TEST_KEY, secret: str = TEST_SECRET) -> ccxt.coincheck:
    ex = ccxt.coincheck(
        {
            "urls": {"api": {"rest": emulator.base_url}},
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": False,
            "timeout": 2000,
        }
    )
    # ccxt's millisecond nonce repeats within a millisecond; Coincheck (and the emulator) reject that
    ex.nonce = _MonotonicNonce()
    return ex


def test_public_endpoints_match_the_tape(emulator):
    ex = client(emulator)
    tape = emulator.tape
    visible = emulator.state.visible
    ticker = ex.fetch_ticker("BTC/JPY")
    assert ticker["last"] == tape.price[visible - 1]
    assert ticker["bid"] < ticker["ask"] and ticker["bid"] <= ticker["last"] <= ticker["ask"]
    assert abs(ticker["timestamp"] - time.time() * 1000) < 5_000  # clock=wall: "now" is now
    book = ex.fetch_order_book("BTC/JPY")
    bids, asks = [p for p, _ in book["bids"]], [p for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    trades = ex.fetch_trades("BTC/JPY", limit=5)
    assert [int(t["id"]) for t in trades] == list(range(visible - 4, visible + 1))
    assert [t["price"] for t in trades] == list(tape.price[visible - 5 : visible])
    status = ex.fetch_status()
    assert status["status"] == "ok"


def test_trade_pagination_walks_back_and_forward(emulator):
    ex = client(emulator)
    newest = ex.fetch_trades("BTC/JPY", limit=3, params={"order": "desc"})
    older = ex.fetch_trades("BTC/JPY", limit=3, params={"order": "desc", "starting_after": newest[0]["id"]})
    assert int(older[-1]["id"]) == int(newest[0]["id"]) - 1
    newer = ex.fetch_trades("BTC/JPY", limit=3, params={"order": "desc", "ending_before": older[-1]["id"]})
    assert [t["id"] for t in newer] == [t["id"] for t in newest]
    assert paginate(10, {"order": "asc", "starting_after": "8", "limit": "5"}) == [9, 10]
    assert paginate(10, {"order": "asc", "ending_before": "3"}) == [1, 2]


def test_private_endpoints_orders_balances_and_fills(emulator):
    ex = client(emulator)
    bal = ex.fetch_balance()
    assert bal["JPY"]["free"] == 1_000_000 and bal["BTC"]["free"] == 0.1
    last = ex.fetch_ticker("BTC/JPY")["last"]
    # resting bid far below: reserves JPY, shows in open orders, cancels cleanly
    far = ex.create_order("BTC/JPY", "limit", "buy", 0.01, last - 50_000)
    opens = ex.fetch_open_orders("BTC/JPY")
    assert [(o["id"], o["side"], o["amount"], o["price"]) for o in opens] == [(far["id"], "buy", 0.01, last - 50_000)]
    bal = ex.fetch_balance()
    assert bal["JPY"]["used"] == pytest.approx(0.01 * (last - 50_000))
    detail = ex.privateGetExchangeOrdersId({"id": far["id"]})
    assert detail["status"] == "NEW" and detail["executed_amount"] == "0.0"
    ex.cancel_order(far["id"])
    assert ex.fetch_open_orders("BTC/JPY") == []
    assert ex.privateGetExchangeOrdersCancelStatus({"id": far["id"]})["cancel"] is True
    with pytest.raises(ccxt.ExchangeError, match="not found"):
        ex.cancel_order(far["id"])
    # marketable buy fills at once (taker), walking the book from the ask, paying the taker fee
    book = ex.fetch_order_book("BTC/JPY")
    ask = book["asks"][0][0]
    ex.create_order("BTC/JPY", "limit", "buy", 0.02, ask + 1000)
    mine = ex.fetch_my_trades("BTC/JPY")
    assert mine[0]["price"] == ask and sum(t["amount"] for t in mine) == pytest.approx(0.02)
    levels = {p: q for p, q in book["asks"]}
    assert all(t["price"] in levels and t["amount"] <= levels[t["price"]] + 1e-12 for t in mine)
    assert all(t["takerOrMaker"] == "taker" and t["side"] == "buy" for t in mine)
    notional = sum(t["price"] * t["amount"] for t in mine)
    assert sum(t["fee"]["cost"] for t in mine) == pytest.approx(notional * 0.001, abs=0.01)  # 10 bps taker
    bal = ex.fetch_balance()
    assert bal["BTC"]["total"] == pytest.approx(0.12)
    assert bal["JPY"]["total"] == pytest.approx(1_000_000 - notional * 1.001, abs=0.01)
    unpaged = ex.privateGetExchangeOrdersTransactions()
    assert len(unpaged["transactions"]) == len(mine)
    fees = ex.fetch_trading_fees()
    assert fees["BTC/JPY"]["maker"] == 0


def test_resting_order_fills_when_the_tape_trades_through_it(emulator):
    ex = client(emulator)
    tape, start = emulator.tape, emulator.state.visible
    # the lowest price the next 30 minutes print: a bid there must fill once time passes
    horizon = int((tape.ts_ms < tape.ts_ms[start - 1] + 1_800_000).sum())
    low = float(tape.price[start:horizon].min())
    order = ex.create_order("BTC/JPY", "limit", "buy", 0.005, low)
    assert ex.fetch_open_orders("BTC/JPY")[0]["id"] == order["id"]
    emulator.advance(1800)
    fills = ex.fetch_my_trades("BTC/JPY")
    assert fills, "the tape traded at the bid's price, so the bid must have filled"
    assert all(f["price"] == low and f["takerOrMaker"] == "maker" for f in fills)
    filled = sum(f["amount"] for f in fills)
    opens = ex.fetch_open_orders("BTC/JPY")
    remaining = opens[0]["remaining"] if opens else 0.0
    assert filled + remaining == pytest.approx(0.005)


def test_partial_fill_fault_caps_each_fill(emulator):
    ex = client(emulator)
    emulator.add_fault(FaultRule(kind="partial_fill", endpoint="create_order", fill_ratio=0.25))
    ask = ex.fetch_ticker("BTC/JPY")["ask"]
    order = ex.create_order("BTC/JPY", "limit", "buy", 0.04, ask)
    fills = ex.fetch_my_trades("BTC/JPY")
    assert [f["amount"] for f in fills] == [0.01]
    opens = ex.fetch_open_orders("BTC/JPY")
    assert opens[0]["id"] == order["id"] and opens[0]["remaining"] == pytest.approx(0.03)
    assert ex.privateGetExchangeOrdersId({"id": order["id"]})["status"] == "PARTIALLY_FILLED"


def test_order_validation_errors(emulator):
    ex = client(emulator)
    last = ex.fetch_ticker("BTC/JPY")["last"]
    with pytest.raises(ccxt.ExchangeError, match="too small"):
        ex.create_order("BTC/JPY", "limit", "buy", 0.001, last)
    with pytest.raises(ccxt.ExchangeError, match="Insufficient"):
        ex.create_order("BTC/JPY", "limit", "sell", 5.0, last)
    with pytest.raises(ccxt.ExchangeError, match="multiple"):
        ex.create_order("BTC/JPY", "limit", "buy", 0.01, last - 0.5)
    assert ex.fetch_open_orders("BTC/JPY") == []


def test_signature_and_nonce_checks(emulator):
    with pytest.raises(ccxt.AuthenticationError):
        client(emulator, secret="wrong-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        client(emulator, key="other-key").fetch_balance()
    # a valid signature over a different body than the one sent is rejected
    url = f"{emulator.base_url}/exchange/orders"
    nonce = str(int(time.time() * 1000) + 10_000)
    signed = "amount=0.01&order_type=buy&pair=btc_jpy&rate=1"
    sig = hmac.new(TEST_SECRET.encode(), (nonce + url + signed).encode(), hashlib.sha256).hexdigest()
    headers = {
        "ACCESS-KEY": TEST_KEY,
        "ACCESS-NONCE": nonce,
        "ACCESS-SIGNATURE": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    tampered = requests.post(url, data="amount=9&order_type=buy&pair=btc_jpy&rate=1", headers=headers, timeout=2)
    assert tampered.status_code == 401 and tampered.json()["error"] == "invalid authentication"
    ok = requests.post(url, data=signed, headers=headers, timeout=2)
    assert ok.status_code == 400  # authenticated; rejected only for its tiny size
    replay = requests.post(url, data=signed, headers=headers, timeout=2)
    assert replay.status_code == 401 and "Nonce" in replay.json()["error"]
    assert emulator.state.orders == {}


def test_rate_limit_answers_429_with_headers(emulator_config):
    cfg = emulator_config.model_copy(update={"rate_limit_per_s": 1.0, "rate_limit_burst": 2})
    with EmulatorServer(cfg, tape=TradeTape.random_walk(n=2000)) as emu:
        url = f"{emu.base_url}/ticker?pair=btc_jpy"
        codes = [requests.get(url, timeout=2).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert requests.get(url, timeout=2).headers["X-RateLimit-Limit"] == "2"


def test_replay_speed_moves_the_tape_with_the_wall_clock(emulator_config):
    cfg = emulator_config.model_copy(update={"speed": 600.0})
    with EmulatorServer(cfg, tape=TradeTape.random_walk(n=20_000, seed=3)) as emu:
        t0 = time.monotonic()
        requests.get(f"{emu.base_url}/ticker", timeout=2)  # the clock is read at each request
        before = emu.state.visible
        time.sleep(0.3)
        requests.get(f"{emu.base_url}/ticker", timeout=2)
        elapsed = time.monotonic() - t0
        # between the two requests at least 0.3 s and at most `elapsed` passed (a busy machine is
        # slow, never fast): x 600 speed / 0.5 s mean gap = 1200 trades per wall second
        assert 0.5 * 1200 * 0.3 < emu.state.visible - before < 2.0 * 1200 * elapsed


def test_stop_does_not_wait_for_a_hanging_request(emulator):
    emulator.add_fault(FaultRule(kind="timeout", endpoint="ticker", hang_ms=30_000))
    thread = threading.Thread(target=lambda: _swallow(lambda: requests.get(f"{emulator.base_url}/ticker", timeout=20)))
    thread.start()
    deadline = time.monotonic() + 10  # until the request is really hanging in the server
    while emulator.faults.fired.get("timeout", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.faults.fired.get("timeout") == 1
    t0 = time.perf_counter()
    emulator.stop()
    thread.join(5)
    assert time.perf_counter() - t0 < 3 and not thread.is_alive()


def _swallow(fn):
    try:
        fn()
    except requests.RequestException:
        pass


def test_fault_table_from_yaml(tmp_path):
    path = tmp_path / "emulator.yaml"
    path.write_text(
        "speed: 0\nfaults:\n  - {kind: http_5xx, endpoint: ticker, status: 502, times: 2}\n"
        "  - {kind: latency, latency_ms: 5, times: null}\n"
    )
    cfg = load_config(EmulatorConfig, path)
    assert [r.kind for r in cfg.faults] == ["http_5xx", "latency"] and cfg.faults[0].status == 502
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {kind: http_5xx, endpoint: tickr}\n")
    with pytest.raises(Exception, match="tickr"):
        load_config(EmulatorConfig, bad)


def test_synthetic_source_replays_the_data_packages_market(emulator_config):
    cfg = emulator_config.model_copy(update={"source": "synthetic", "synthetic_days": 0.5, "history_s": 600})
    with EmulatorServer(cfg) as emu:
        ticker = client(emu).fetch_ticker("BTC/JPY")
        assert 500_000 < ticker["last"] < 3_000_000


@pytest.mark.realdata
def test_bitflyer_source_replays_real_executions(emulator_config):
    if not (shared_data_dir() / "btcjpy_trades_2018").is_dir():
        pytest.skip(f"real bitFlyer executions not found under {shared_data_dir()}")
    cfg = emulator_config.model_copy(update={"source": "bitflyer", "bitflyer_days": 1, "history_s": 3600})
    with EmulatorServer(cfg) as emu:
        ex = client(emu)
        ticker = ex.fetch_ticker("BTC/JPY")
        tape = emu.tape
        assert tape.name.startswith("bitflyer") and len(tape) > 100_000
        assert ticker["last"] == tape.price[emu.state.visible - 1]
        assert 1_000_000 < ticker["last"] < 1_500_000  # BTC/JPY in late January 2018
