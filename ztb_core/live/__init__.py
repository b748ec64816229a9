"""Live trading through ccxt: exchange adapter, loopback emulator, secrets, orders, risk, runner."""
