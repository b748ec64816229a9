"""Crash injection: a real process is killed with SIGKILL after the exchange took its order but
before the journal heard back. On restart, reconciliation finds the order; the decision to reach
the same target places nothing new (no duplicate) and the fill is recorded exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from decimal import Decimal

import pytest

from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import FILLED, OPEN, SUBMITTED

from .conftest import TEST_KEY, TEST_SECRET

CHILD = r"""
import json, os, signal, sys
from decimal import Decimal
from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.venue.factory import CoincheckAdapter, make_adapter
from ztb_core.live.venue.exchange_config import ExchangeConfig
from ztb_core.live.execution.journal import Journal
from ztb_core.live.venue.secrets import load_credentials

url, journal_path, mode, price = sys.argv[1], sys.argv[2], sys.argv[3], Decimal(sys.argv[4])
cfg = ExchangeConfig(exchange="coincheck", symbol="BTC/JPY", api_url=url, timeout_ms=2000,
                     rate_limit={"requests_per_s": 10000, "burst": 10000, "ccxt_rate_limit": False})
adapter = make_adapter(cfg, load_credentials(cfg))
journal = Journal(journal_path, "live", "coincheck", "BTC/JPY")
manager = OrderManager(adapter, journal, "BTC/JPY", grace_ms=0)
target = Decimal("0.01")
if mode == "crash":
    original = CoincheckAdapter.create_limit_order
    def crash_after_send(self, *args, **kwargs):
        original(self, *args, **kwargs)      # the exchange has the order now ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... and we die before the journal hears of it
    CoincheckAdapter.create_limit_order = crash_after_send
else:
    report = manager.reconcile()
# the decision the runner makes: trade the difference to the target, counting pending orders
delta = target - journal.position() - manager.pending()
placed = None
if delta > 0:
    placed = manager.place("buy", delta, price).client_id
print(json.dumps({"placed": placed, "position": str(journal.position()), "pending": str(manager.pending())}))
"""


def run_child(emulator, journal_path, mode, price, env):
    return subprocess.run(
        [sys.executable, "-c", CHILD, emulator.base_url, str(journal_path), mode, str(price)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def child_env(subprocess_env):
    return {**subprocess_env, "COINCHECK_API_KEY": TEST_KEY, "COINCHECK_API_SECRET": TEST_SECRET}


@pytest.mark.parametrize("marketable", [True, False], ids=["filled-while-dead", "resting"])
def test_kill9_between_submit_and_journal_update(emulator, exchange_adapter, tmp_path, child_env, marketable):
    t = exchange_adapter.fetch_ticker()
    price = (t.ask + 1000) if marketable else (t.last * Decimal("0.95")).quantize(Decimal(1))
    path = tmp_path / "journal.sqlite"
    crashed = run_child(emulator, path, "crash", price, child_env)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(emulator.state.orders) == 1
    with Journal(path, "live", "coincheck", "BTC/JPY") as j:
        (order,) = j.orders()
        assert order.state == SUBMITTED and order.exchange_id is None and not j.fills()

    for _ in range(2):  # restart twice: the second one must change nothing
        restarted = run_child(emulator, path, "restart", price, child_env)
        assert restarted.returncode == 0, restarted.stderr
        out = json.loads(restarted.stdout.strip().splitlines()[-1])
        assert out["placed"] is None, "restart placed a duplicate order"
    assert len(emulator.state.orders) == 1
    (eid,) = emulator.state.orders
    with Journal(path, "live", "coincheck", "BTC/JPY") as j:
        (order,) = j.orders()
        assert order.exchange_id == str(eid)
        if marketable:
            assert order.state == FILLED
            assert len(j.fills()) == len([f for f in emulator.state.fills if f.order_id == eid]) >= 1
            assert j.position() == Decimal("0.01")
        else:
            assert order.state == OPEN and not j.fills() and out["pending"] == "0.01"


CANCEL_CHILD = r"""
import json, os, signal, sys
from decimal import Decimal
from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.venue.factory import CoincheckAdapter, make_adapter
from ztb_core.live.venue.exchange_config import ExchangeConfig
from ztb_core.live.execution.journal import Journal
from ztb_core.live.venue.secrets import load_credentials

url, journal_path, mode, price = sys.argv[1], sys.argv[2], sys.argv[3], Decimal(sys.argv[4])
cfg = ExchangeConfig(exchange="coincheck", symbol="BTC/JPY", api_url=url, timeout_ms=2000,
                     rate_limit={"requests_per_s": 10000, "burst": 10000, "ccxt_rate_limit": False})
journal = Journal(journal_path, "live", "coincheck", "BTC/JPY")
manager = OrderManager(make_adapter(cfg, load_credentials(cfg)), journal, "BTC/JPY", grace_ms=0)
if mode == "crash":
    order = manager.place("buy", Decimal("0.01"), price)
    def die_before_sending(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)  # cancel_requested is journaled; the call never goes out
    CoincheckAdapter.cancel_order = die_before_sending
    manager.cancel(order)
else:
    manager.reconcile()
    retried = manager.retry_cancels()
    print(json.dumps({"retried": retried, "states": [o.state for o in journal.orders()]}))
"""


def test_kill9_between_cancel_requested_and_the_cancel_call(emulator, exchange_adapter, tmp_path, child_env):
    price = (exchange_adapter.fetch_ticker().last * Decimal("0.9")).quantize(Decimal(1))
    path = tmp_path / "journal.sqlite"
    args = [sys.executable, "-c", CANCEL_CHILD, emulator.base_url, str(path)]
    crashed = subprocess.run([*args, "crash", str(price)], capture_output=True, text=True, timeout=60, env=child_env)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    (eid,) = emulator.state.orders
    assert emulator.state.orders[eid].open  # the exchange never heard the cancel
    with Journal(path, "live", "coincheck", "BTC/JPY") as j:
        assert [o.state for o in j.orders()] == ["cancel_requested"]
    restarted = subprocess.run(
        [*args, "restart", str(price)], capture_output=True, text=True, timeout=60, env=child_env
    )
    assert restarted.returncode == 0, restarted.stderr
    out = json.loads(restarted.stdout.strip().splitlines()[-1])
    assert len(out["retried"]) == 1 and out["states"] == ["cancelled"]
    assert emulator.state.orders[eid].status == "CANCELED"
