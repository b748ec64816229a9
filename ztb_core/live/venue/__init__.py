"""Talking to exchanges: the ccxt adapter (rate limits, retries, error mapping, value types), per-venue
subclasses (`coincheck`), their config, credentials and health checks. Knows nothing of orders' fates."""
