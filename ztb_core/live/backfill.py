"""The bar buffer a live session starts with: the exchange's own recent history, older bars from the
local data store (an imported or `ztb data fetch`-ed symbol), and a plain account of what is still
missing and where it would come from.

A trained agent needs thousands of M1 bars before its first valid feature row (about 3,000 for
`technical-66`, more with a Stage-1 encoder); waiting for them live would take days. `backfill`
assembles them at start so the first closed bar is already a decision.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ..data.bars_from_trades import store_timeframe
from ..data.schema import empty_bars
from ..data.store import check_symbol, has_dataset, read_bars
from ..errors import DataError
from .exchange import ExchangeCallError

log = logging.getLogger("ztb.live.backfill")

#: a hole between the stored history and the exchange's longer than this is worth a warning
GAP_WARN_MINUTES = 60


@dataclass
class BackfillReport:
    needed: int
    have: int
    from_exchange: int
    from_store: int
    store_dataset: str
    first_bar: str | None
    last_bar: str | None
    #: minutes between the newest stored bar used and the oldest exchange bar (None: no join)
    gap_minutes: float | None
    #: open time of the newest stored bar used
    store_last: str | None = None
    exchange_error: str | None = None

    @property
    def missing(self) -> int:
        return max(0, self.needed - self.have)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing}

    def lines(self, exchange: str, symbol: str, since: pd.Timestamp) -> list[str]:
        """What was loaded, what is missing and where it would come from (printed and logged)."""
        out = [
            f"history: {self.have:,} bars, {self.needed:,} needed ({self.from_exchange:,} from {exchange}, "
            f"{self.from_store:,} from the data store {self.store_dataset})"
        ]
        if self.exchange_error:
            out.append(f"history: the exchange's history could not be read: {self.exchange_error}")
        if self.gap_minutes is not None and self.gap_minutes > GAP_WARN_MINUTES:
            out.append(
                f"history: {self.gap_minutes:,.0f} minutes are missing between the stored bars and the "
                f"exchange's; fill them with `ztb data fetch --exchange {exchange} --symbol {symbol} "
                f"--since {(self.store_last or '')[:10]}`"
            )
        if self.missing:
            out.append(
                f"history: {self.missing:,} bars missing before {self.first_bar or 'now'}; they would come "
                f"from `ztb data fetch --exchange {exchange} --symbol {symbol} --since {since:%Y-%m-%d}` or "
                f"`ztb data import` into {self.store_dataset}; until then the policy waits for live bars"
            )
        return out


def backfill(
    market: Any,
    timeframe: str,
    span_ms: int,
    need: int,
    now_ms: int,
    store_symbol: str,
    keep: int | None = None,
) -> tuple[pd.DataFrame, BackfillReport]:
    """The newest `keep` (default `need`) completed bars before `now_ms`: the exchange's history first
    (`market.fetch_ohlcv_or_build`), older bars from the store's `store_symbol` dataset."""
    keep = max(keep or need, need)
    since_ms = now_ms - need * span_ms
    exchange_error = None
    try:
        bars = market.fetch_ohlcv_or_build(timeframe, since_ms=since_ms, now_ms=now_ms)
    except ExchangeCallError as exc:  # the store may still cover the warm-up; the loop retries the exchange
        exchange_error = str(exc)[:200]
        bars = None
    tf = store_timeframe(timeframe)
    dataset = f"{check_symbol(store_symbol)}/{tf}"
    stored = _stored_before(store_symbol, tf, bars.index[0] if bars is not None and len(bars) else now_ms, keep)
    from_exchange = 0 if bars is None else len(bars)
    gap = None
    if bars is None or len(bars) == 0:
        merged = stored
    elif len(stored):
        cols = list(bars.columns)
        merged = pd.concat([stored.reindex(columns=cols, fill_value=0.0), bars])
        gap = (bars.index[0] - stored.index[-1]).total_seconds() / 60.0 - span_ms / 60_000
    else:
        merged = bars
    merged = merged.iloc[-keep:] if len(merged.columns) else empty_bars()
    used_store = max(0, len(merged) - from_exchange)
    report = BackfillReport(
        needed=need,
        have=len(merged),
        from_exchange=min(from_exchange, len(merged)),
        from_store=used_store,
        store_dataset=dataset,
        first_bar=str(merged.index[0]) if len(merged) else None,
        last_bar=str(merged.index[-1]) if len(merged) else None,
        gap_minutes=gap if used_store else None,
        store_last=str(stored.index[-1]) if used_store else None,
        exchange_error=exchange_error,
    )
    return merged, report


def _stored_before(symbol: str, tf: str, before: pd.Timestamp | int, keep: int) -> pd.DataFrame:
    """The newest `keep` stored bars opening before `before` (empty when the store has no such
    dataset or cannot be read: the store is a convenience, the exchange stays the source of truth)."""
    end = before if isinstance(before, pd.Timestamp) else pd.Timestamp(before, unit="ms", tz="UTC")
    try:
        if not has_dataset(symbol, tf):
            return pd.DataFrame()
        # a generous time window first (FX weekends stretch `keep` bars over more minutes), all if short
        start = end - pd.Timedelta(minutes=3 * keep + 3 * 1440)
        stored = read_bars(symbol, tf, start=start, end=end)
        if len(stored) < keep:
            stored = read_bars(symbol, tf, end=end)
    except (DataError, OSError) as exc:
        log.warning("could not read stored history %s/%s: %s", symbol, tf, exc)
        return pd.DataFrame()
    return stored.iloc[-keep:]
