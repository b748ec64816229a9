"""The bar buffer a live session starts with: the exchange's own recent history, older bars from the
local data store (an imported or `ztb data fetch`-ed symbol), and a plain account of what is still
missing and where it would come from.

A trained agent needs thousands of M1 bars before its first valid feature row (4,380 for
`technical-66`: two whole days and the current one; more with a Stage-1 encoder); waiting for them
live would take days. `backfill` assembles them at start so the first closed bar is already a
decision. The store is read first and the exchange is paged only for the bars after the store's
newest one: a venue without OHLCV (Coincheck) gives history only as public trades, 100 a request at
its rate limit, so paging days of them takes minutes, while `ztb data fetch` keeps them for every
later start.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ...data.bars_from_trades import store_timeframe, trades_to_bars
from ...data.schema import empty_bars
from ...data.store import check_symbol, has_dataset, read_bars
from ...errors import DataError
from ..venue.errors import ExchangeCallError
from ..venue.exchange import ExchangeAdapter

log = logging.getLogger("ztb.live.backfill")

#: a hole between the stored history and the exchange's longer than this is worth a warning
GAP_WARN_MINUTES = 60
#: log the paging's progress every this many pages (a venue's rate limit makes each one about a second)
PROGRESS_EVERY = 25


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
    #: the REST URL the history came from when it is not the venue's own (the emulator's)
    api_url: str | None = None

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
                f"exchange's; fill them with `{self.fetch_command(exchange, symbol, (self.store_last or '')[:10])}`"
            )
        if self.missing:
            out.append(
                f"history: {self.missing:,} bars missing before {self.first_bar or 'now'}; they would come "
                f"from `{self.fetch_command(exchange, symbol, f'{since:%Y-%m-%d}')}` or `ztb data import` into "
                f"{self.store_dataset}; until then the policy waits for live bars"
            )
        return out

    def fetch_command(self, exchange: str, symbol: str, since: str) -> str:
        """The one command that puts the missing bars into the store this session reads (the same
        REST URL: the emulator's history is not the venue's)."""
        url = f" --api-url {self.api_url}" if self.api_url else ""
        return f"ztb data fetch --exchange {exchange} --symbol {symbol} --since {since}{url}"


def backfill(
    market: Any,
    timeframe: str,
    span_ms: int,
    need: int,
    now_ms: int,
    store_symbol: str,
    keep: int | None = None,
) -> tuple[pd.DataFrame, BackfillReport]:
    """The newest `keep` (default `need`) completed bars before `now_ms`: the store's `store_symbol`
    dataset first, then the exchange's history for what comes after the newest stored bar (or for the
    whole `need` when the store holds nothing that recent); where both have a bar the exchange's wins."""
    keep = max(keep or need, need)
    since_ms = now_ms - need * span_ms
    tf = store_timeframe(timeframe)
    dataset = f"{check_symbol(store_symbol)}/{tf}"
    recent = _stored_before(store_symbol, tf, now_ms, keep)
    if len(recent) and int(recent.index[-1].value // 1_000_000) >= since_ms:
        since_ms = int(recent.index[-1].value // 1_000_000) + span_ms  # page the exchange only after it
    exchange_error = None
    try:
        bars = _exchange_bars(market, timeframe, span_ms, since_ms, now_ms)
    except ExchangeCallError as exc:  # the store may still cover the warm-up; the loop retries the exchange
        exchange_error = str(exc)[:200]
        bars = None
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
        api_url=getattr(getattr(market, "cfg", None), "api_url", None),
    )
    return merged, report


def _exchange_bars(market: Any, timeframe: str, span_ms: int, since_ms: int, now_ms: int) -> pd.DataFrame:
    """Completed bars from `since_ms`: the venue's OHLCV where it has one, else its public trades paged
    back to `since_ms`, with the progress logged (each page is one rate-limited request)."""
    # any other bar source (a replay) builds its own bars
    if not isinstance(market, ExchangeAdapter) or market.exchange.has.get("fetchOHLCV"):
        return market.fetch_ohlcv_or_build(timeframe, since_ms=since_ms, now_ms=now_ms)
    since_ms = since_ms // span_ms * span_ms  # from a bar boundary, or the first bar would be partial
    name = market.cfg.exchange
    log.info(
        "history: paging %s's public trades back to %s (one request per page of trades, at the configured rate)",
        name,
        pd.Timestamp(since_ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M"),
    )
    trades: list[Any] = []
    pages = 0
    for page in market.iter_trade_pages(since_ms):
        trades.extend(page)
        pages += 1
        if pages % PROGRESS_EVERY == 0:
            # cursor venues page back from the newest trade, the others forward from `since_ms`
            at = page[0].timestamp_ms - since_ms if market.trade_cursor_paging else now_ms - page[-1].timestamp_ms
            left = at / 3_600_000
            log.info("history: %d pages, %s trades, %.1f hours still to page", pages, f"{len(trades):,}", left)
    bars = trades_to_bars(trades, timeframe)
    return bars[bars.index.asi8 // 1_000_000 + span_ms <= now_ms]


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
