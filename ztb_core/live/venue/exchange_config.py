"""Typed config of one exchange connection: `configs/exchange.yaml`, the one file for exchange
settings (`ztb live` reads it as its `exchange:` section).

ccxt knows how to talk to the exchange; this says which one, where (a loopback emulator in tests),
how patiently (timeouts, retries, rate limits), and what ccxt does not know: coincheck's and
zaif's markets carry no precision or limits in ccxt, so they come from here.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from ...config import ZtbModel


class RetryConfig(ZtbModel):
    """Exponential backoff with jitter for retryable failures (network, 429, 5xx, timeouts)."""

    max_attempts: int = Field(4, ge=1, le=20, description="Tries per call, the first one included")
    base_delay_ms: float = Field(250.0, ge=0, description="Delay before the first retry; doubles each retry")
    max_delay_ms: float = Field(8000.0, ge=0, description="Upper bound of one backoff delay")
    jitter: float = Field(0.5, ge=0, le=1, description="Each delay is scaled by a random factor in [1-jitter, 1]")


class RateLimitConfig(ZtbModel):
    """Our own token bucket in front of ccxt's (ccxt spaces requests; the bucket caps bursts)."""

    requests_per_s: float = Field(1.0, gt=0, description="Sustained request rate of the token bucket")
    burst: int = Field(3, ge=1, description="Requests allowed back to back before the rate applies")
    ccxt_rate_limit: bool = Field(True, description="Also enable ccxt's enableRateLimit (its per-exchange spacing)")


class MarketOverride(ZtbModel):
    """Precision and limits of one market, for exchanges whose ccxt markets carry none."""

    amount_step: Decimal = Field(..., gt=0, description="Smallest amount increment (base currency)")
    price_step: Decimal = Field(..., gt=0, description="Smallest price increment (quote currency)")
    min_amount: Decimal = Field(Decimal("0"), ge=0, description="Smallest order amount (base currency)")
    min_cost: Decimal = Field(Decimal("0"), ge=0, description="Smallest order notional (quote currency)")


class CredentialsConfig(ZtbModel):
    """Where API keys come from. Environment variables win over the key file."""

    api_key_env: str | None = Field(None, description="Env var holding the API key; default <EXCHANGE>_API_KEY")
    api_secret_env: str | None = Field(None, description="Env var holding the secret; default <EXCHANGE>_API_SECRET")
    key_file: Path | None = Field(None, description="YAML file with api_key and secret; must be mode 0600")


#: Published limits for the markets ccxt leaves blank (coincheck: 0.005 BTC minimum, 1 JPY tick;
#: zaif: 0.0001 BTC amount step, 5 JPY tick). A config's `markets` entry replaces these.
KNOWN_MARKETS: dict[str, dict[str, dict[str, str]]] = {
    "coincheck": {
        "BTC/JPY": {"amount_step": "0.00000001", "price_step": "1", "min_amount": "0.005", "min_cost": "500"},
    },
    "zaif": {
        "BTC/JPY": {"amount_step": "0.0001", "price_step": "5", "min_amount": "0.0001", "min_cost": "0"},
    },
}


class ExchangeConfig(ZtbModel):
    """One exchange connection: id, market, endpoint, patience and market limits."""

    default_file: ClassVar[str | None] = "exchange.yaml"

    exchange: str = Field("coincheck", min_length=2, description="ccxt exchange id (coincheck, zaif, ...)")
    symbol: str = Field("BTC/JPY", description="Unified market symbol, BASE/QUOTE")
    api_url: str | None = Field(None, description="Replaces ccxt's urls['api']['rest'] (e.g. the loopback emulator)")
    timeout_ms: int = Field(10000, ge=50, description="HTTP timeout of one request")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    markets: dict[str, MarketOverride] = Field(
        default_factory=dict, description="Per-symbol precision/limits where ccxt has none"
    )
    credentials: CredentialsConfig = Field(default_factory=CredentialsConfig)

    @field_validator("exchange")
    @classmethod
    def _lower_id(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("symbol")
    @classmethod
    def _symbol_shape(cls, value: str) -> str:
        base, sep, quote = value.partition("/")
        if not sep or not base or not quote:
            raise ValueError(f"a symbol like BTC/JPY, got {value!r}")
        return value.upper()

    def market_override(self, symbol: str | None = None) -> MarketOverride | None:
        """The configured (or known) limits for `symbol`, None when neither has an entry."""
        symbol = symbol or self.symbol
        if symbol in self.markets:
            return self.markets[symbol]
        known = KNOWN_MARKETS.get(self.exchange, {}).get(symbol)
        return MarketOverride(**known) if known else None

    def key_env_names(self) -> tuple[str, str]:
        prefix = self.exchange.upper().replace("-", "_")
        return (
            self.credentials.api_key_env or f"{prefix}_API_KEY",
            self.credentials.api_secret_env or f"{prefix}_API_SECRET",
        )
