"""Errors of exchange calls: what a caller can act on, and which kinds are retryable or leave an
order's outcome unknown."""

from __future__ import annotations

from decimal import Decimal

from ...errors import ZtbError


class ExchangeCallError(ZtbError):
    """An exchange call failed; `kind` says how (rate_limited, timeout, network, unavailable,
    bad_response, auth, insufficient_funds, invalid_order, not_found, rejected)."""

    def __init__(self, message: str, kind: str = "rejected", method: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.kind, self.method, self.attempts = kind, method, attempts


class ExchangeUnavailable(ExchangeCallError):
    """Retryable failures persisted through every attempt."""


class AuthError(ExchangeCallError):
    """The exchange refused the keys (or the signature)."""


class OrderRejected(ExchangeCallError):
    """The exchange answered and did not take the order (invalid order, funds, other rejection)."""


class InsufficientFundsError(OrderRejected):
    """Not enough free balance for the order."""


class OrderNotFoundError(ExchangeCallError):
    """The exchange does not know the order (or it is no longer open)."""


class OrderOutcomeUnknown(ExchangeCallError):
    """An order was sent but we cannot tell whether the exchange took it. Never retry blindly:
    look for it (open orders, fills: `reconcile.reconcile`) first."""

    def __init__(
        self,
        message: str,
        client_id: str,
        side: str,
        amount: Decimal,
        price: Decimal,
        sent_at_ms: int,
        kind: str = "network",
        method: str = "create_order",
    ) -> None:
        super().__init__(message, kind=kind, method=method)
        self.client_id, self.side, self.amount, self.price, self.sent_at_ms = client_id, side, amount, price, sent_at_ms


RETRYABLE = frozenset({"rate_limited", "timeout", "network", "unavailable", "bad_response", "nonce"})
#: kinds where an order placement may have reached the exchange
OUTCOME_UNKNOWN = frozenset({"timeout", "network", "unavailable", "bad_response"})
