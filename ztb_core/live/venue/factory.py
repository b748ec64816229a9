"""Per-venue exchange adapters (freqtrade-style subclasses of the generic `ExchangeAdapter`).

The generic adapter speaks ccxt's unified API only; a venue whose API differs in ways that matter
for money (fill paging, number formats, error texts, order lookup) gets a subclass here.
`make_adapter` picks the class for `cfg.exchange`.
"""

from __future__ import annotations

from typing import Any

from .coincheck import CoincheckAdapter
from .exchange import ExchangeAdapter
from .exchange_config import ExchangeConfig
from .secrets import Credentials

__all__ = ["LIVE_UNSUPPORTED", "VENUES", "CoincheckAdapter", "adapter_class", "live_refusal", "make_adapter"]

#: ccxt exchange id -> adapter class; every other id gets the generic ExchangeAdapter
VENUES: dict[str, type[ExchangeAdapter]] = {"coincheck": CoincheckAdapter}

#: venues ztb refuses for real-money modes, and why (shown to the user)
LIVE_UNSUPPORTED: dict[str, str] = {
    "zaif": (
        "zaif cannot trade live in ztb: ccxt's zaif has no fetchMyTrades, and reading fills through its "
        "private trade_history call (privatePostTradeHistory, from_id paging) is not implemented, so "
        "fills could not be reconciled; use --dry-run (public data only) or another venue"
    ),
}


def adapter_class(exchange: str) -> type[ExchangeAdapter]:
    return VENUES.get(exchange, ExchangeAdapter)


def make_adapter(cfg: ExchangeConfig, credentials: Credentials | None = None, **kwargs: Any) -> ExchangeAdapter:
    """The adapter for `cfg.exchange` (keyword arguments go to the adapter: exchange, sleep, rng)."""
    return adapter_class(cfg.exchange)(cfg, credentials, **kwargs)


def live_refusal(exchange: str) -> str | None:
    """Why `exchange` may not be used with real money, or None."""
    return LIVE_UNSUPPORTED.get(exchange)
