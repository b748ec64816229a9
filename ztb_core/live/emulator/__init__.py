"""Loopback exchange emulator: a Coincheck-compatible REST server for tests and demos.

with EmulatorServer(EmulatorConfig(speed=0)) as emu:
    ex = ccxt.coincheck({"urls": {"api": {"rest": emu.base_url}}, "apiKey": ..., "secret": ...})
"""

from .config import ENDPOINTS, EmulatorConfig, FaultRule
from .faults import FaultTable
from .server import EmulatorServer
from .tape import TradeTape, load_bitflyer, load_synthetic, tape_from_bars

__all__ = [
    "ENDPOINTS",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultRule",
    "FaultTable",
    "TradeTape",
    "load_bitflyer",
    "load_synthetic",
    "tape_from_bars",
]
