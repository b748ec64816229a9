"""Shared live fixtures: a running loopback emulator and an adapter talking to it with the real
ccxt client. Fixture names (`emulator`, `exchange_config`, `exchange_adapter`, `test_credentials`)
are used by every live test module; keep them stable."""

from __future__ import annotations

import pytest

from ztb_core.cli.smoke import sandbox_emulator
from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, TradeTape
from ztb_core.live.venue.exchange import ExchangeAdapter
from ztb_core.live.venue.exchange_config import ExchangeConfig, RateLimitConfig, RetryConfig
from ztb_core.live.venue.factory import make_adapter
from ztb_core.live.venue.secrets import Credentials

TEST_KEY = "tk-7f3e9c0b1d2a"
TEST_SECRET = "ts-5b8d1e6f4a9c2e7d"


@pytest.fixture
def test_credentials() -> Credentials:
    return Credentials(TEST_KEY, TEST_SECRET, source="test")


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Manual clock (speed 0: time moves only with `emulator.advance`), one hour of history."""
    return EmulatorConfig(
        speed=0, history_s=3600, api_key=TEST_KEY, secret=TEST_SECRET, balances={"jpy": 1_000_000.0, "btc": 0.1}
    )


@pytest.fixture
def emulator(emulator_config: EmulatorConfig):
    """A running emulator replaying a seeded random-walk tape (~2.8 h of trades around 1.2M JPY)."""
    with EmulatorServer(emulator_config, tape=TradeTape.random_walk(seed=1)) as emu:
        yield emu


@pytest.fixture
def exchange_config(emulator: EmulatorServer) -> ExchangeConfig:
    """Coincheck via the emulator; tiny timeouts/backoff and no rate-limit sleeps so tests stay fast."""
    return ExchangeConfig(
        exchange="coincheck",
        symbol="BTC/JPY",
        api_url=emulator.base_url,
        timeout_ms=400,
        retry=RetryConfig(max_attempts=3, base_delay_ms=1, max_delay_ms=5),
        rate_limit=RateLimitConfig(requests_per_s=10_000, burst=10_000, ccxt_rate_limit=False),
    )


@pytest.fixture
def exchange_adapter(exchange_config: ExchangeConfig, test_credentials: Credentials) -> ExchangeAdapter:
    return make_adapter(exchange_config, test_credentials)


@pytest.fixture
def fast_emulator():
    """A replay running 120x (one 1m bar every 0.5 s) in tape time, 4 trades per bar: the one
    `ztb smoke` and the canary trade against."""
    with sandbox_emulator(TEST_KEY, TEST_SECRET) as emu:
        yield emu
