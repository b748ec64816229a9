"""The live decision loop, run on every bar close, the same for dry runs and real trading.

    poll  -> ticker + completed bars (adapter.fetch_ohlcv_or_build, in the exchange's clock)
    bar   -> market breakers -> sync fills (reconcile) -> P&L, stop-loss -> policy -> sizing
          -> risk check -> cancel what still rests -> place (journaled) -> metrics

Private syncs and risk checks also run on their own timer (`_keep_watch`, every `risk_interval_s`
without a bar), whatever the market-data channel does: a websocket that went silent (stream.py
hands bars over to REST) or a REST that fails cannot freeze the stop-loss, the breakers or the
reconciliation. The stale-data breaker trips when no fresh price (a new trade from either channel,
or a REST ticker) arrived for `risk.stale_data_s`, with a critical alert; metrics (split `market`)
and the status line show the channel and the data's age.

It writes the run directory the console reads: live metrics (split "live": equity, pnl, position,
open_orders, latency_ms, risk_state), events (orders, reconciliation, breakers, errors), a report
for each UTC day (exchange clock) when the next one begins, and a final report. The kill-file (per-run or global) or SIGTERM stops it safely: open orders are
cancelled, the position is closed if `flatten_on_stop`, the status becomes `stopped`, exit 0.
"""
# Over 600 lines, to be split: the decision loop and its watch timer share the runner's state; the reporting (metrics, status, daily report) is the next part to move out.

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...atomic import atomic_write_json
from ...data.bars_from_trades import ccxt_timeframe, timeframe_ms
from ...evaluation.metrics import performance_metrics
from ...runs import RunWriter
from ...runtime.killfile import KillSwitch
from ..execution.broker import OrderBlocked, OrderManager
from ..execution.exposure import Exposure, reducible
from ..execution.journal import Journal
from ..market.backfill import backfill
from ..venue.errors import ExchangeCallError
from .live_config import LiveConfig
from .policy import NotReady, Policy, prime_policy
from .requests import take_breaker_reset
from .risk import RiskDecision, RiskManager, entry_price
from .sizing import SizedOrder, VolForecastWarmup, annualised_vol, forecast_sizing, leverage, limit_price, size_order

if TYPE_CHECKING:
    from ..execution.orders import Side
    from ..market.stream import MarketFeed

log = logging.getLogger("ztb.live.runner")


@dataclass
class LoopStats:
    bars: int = 0
    decisions: int = 0
    orders: int = 0
    skipped: int = 0
    denied: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    #: from the exchange time of the bar's last trade to the order sent (trade stream only)
    trade_to_order_ms: list[float] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


def _periods_per_year(timeframe: str, market: str) -> float:
    minutes = timeframe_ms(timeframe) / 60_000
    days = 365.0 if market == "crypto" else 260.0
    return days * 1440.0 / minutes


class LiveRunner:
    """One live or paper session. `venue` is the ExchangeAdapter (live) or a PaperVenue (dry run);
    `market` provides public data (bars, limits) and is the adapter in both cases."""

    def __init__(
        self,
        cfg: LiveConfig,
        market: Any,
        venue: Any,
        journal: Journal,
        policy: Policy,
        writer: RunWriter,
        kill: KillSwitch | None = None,
        mode: str = "dry_run",
        feed: MarketFeed | None = None,
    ) -> None:
        self.cfg, self.market, self.venue, self.journal, self.policy = cfg, market, venue, journal, policy
        # bars from a trade stream (stream.py) instead of polling REST bars; None = REST bars
        self.feed = feed
        self.last_trade_ms: int | None = None  # exchange time of the last trade of the newest bar (stream)
        self._told = (0, 0)  # websocket fallbacks and recoveries already reported
        # the watch timer (private sync + risk checks) and when a fresh price last arrived (monotonic)
        self._watch_at = self._fresh_at = time.monotonic()
        self.writer, self.mode = writer, mode
        self.kill = kill or KillSwitch(writer.dir)
        self.symbol = cfg.exchange.symbol
        self.tf = ccxt_timeframe(cfg.bar_timeframe)
        self.span_ms = timeframe_ms(self.tf)
        self.ppy = _periods_per_year(self.tf, cfg.market)
        self.manager = OrderManager(
            venue,
            journal,
            self.symbol,
            grace_ms=int(cfg.unknown_outcome_window_s * 1000),
            on_event=writer.event,
            alert_after_ms=int(cfg.reconcile_grace_s * 1000),
            reminder_s=cfg.unknown_alert_interval_s,
            in_flight_match=cfg.in_flight_match,
        )
        self.risk = RiskManager(
            cfg.risk,
            journal,
            on_trip=lambda breaker, reason: writer.event("breaker_tripped", breaker=breaker, reason=reason),
        )
        self.limits = market.market_limits(self.symbol)
        # the checkpoint's volatility forecaster (None: realised volatility), and what to say about it
        self.vol_sizing, self.vol_sizing_note = forecast_sizing(cfg.sizing, policy)
        self.stats = LoopStats()
        self.bars: pd.DataFrame | None = None
        self.held_signal = 0.0
        self.capital = Decimal(repr(cfg.capital))
        self.last_ticker: Any = None
        # the UTC day (exchange clock) being reported, and where its points start in the series
        self.day: str | None = None
        self._day_start = {"point": 0, "orders": 0, "denied": 0, "errors": 0}

    # ---- helpers --------------------------------------------------------------------------------
    def equity(self, price: Decimal) -> Decimal:
        return self.capital + self.journal.cash_flow() + self.journal.position() * price

    def _now_ms(self, ticker: Any) -> int:
        ts = getattr(ticker, "timestamp_ms", None)
        return int(ts) if ts else int(time.time() * 1000)

    def _load_history(self, now_ms: int) -> pd.DataFrame:
        """The buffer at start: the exchange's own history, older bars from the data store
        (`history_symbol`), and a word on what is still missing and where it would come from."""
        need = max(self.cfg.warmup_bars, self.policy.warmup_bars, self.vol_sizing.warmup_bars if self.vol_sizing else 0)
        keep = max(need, self.policy.buffer_bars, self.cfg.sizing.vol_lookback_bars + 1, self._vol_bars())
        store_symbol = self.cfg.history_symbol or self.symbol
        bars, report = backfill(self.market, self.tf, self.span_ms, need, now_ms, store_symbol, keep=keep)
        since = pd.Timestamp(now_ms - need * self.span_ms, unit="ms", tz="UTC")
        first, *problems = report.lines(self.cfg.exchange.exchange, self.symbol, since)
        log.info(first)
        for line in problems:
            log.warning(line)
        self.writer.event("history_backfilled", **report.as_dict())
        return bars

    def _append(self, new: pd.DataFrame) -> None:
        if self.bars is None or len(self.bars) == 0:
            merged = new
        else:
            new = new[new.index > self.bars.index[-1]]
            merged = pd.concat([self.bars, new]) if len(new) else self.bars
        keep = max(
            self.policy.buffer_bars, self.cfg.warmup_bars, self.cfg.sizing.vol_lookback_bars + 1, self._vol_bars()
        )
        self.bars = merged.iloc[-keep:]

    def _vol_bars(self) -> int:
        return self.vol_sizing.need_bars if self.vol_sizing is not None else 0

    def _metric(self, price: Decimal, latency_ms: float | None, extra: dict | None = None) -> None:
        eq = self.equity(price)
        pos = self.journal.position()
        summary = self.risk.summary()
        values = {
            "equity": float(eq),
            "pnl": float(eq - self.capital),
            "daily_pnl": summary["daily_pnl"],
            "position": float(pos),
            "position_value": float(pos * price),
            "price": float(price),
            "open_orders": self.manager.open_count(),
            "latency_ms": latency_ms,
            "trade_to_order_ms": self.stats.trade_to_order_ms[-1]
            if latency_ms is not None and self.stats.trade_to_order_ms
            else None,
            "risk_state": "reduce_only" if summary["reduce_only"] else "normal",
            "trades_today": summary["trades_today"],
            "signal": self.held_signal,
            "clock_skew_ms": round(self.manager.skew_ms) if self.manager.skew_ms is not None else None,
        }
        values.update(extra or {})
        self.stats.equity.append(float(eq))
        self.writer.metric(self.stats.bars, "live", values, flush=True)

    # ---- the loop -------------------------------------------------------------------------------
    def start(self) -> None:
        self._measure_skew()
        report = self.manager.reconcile()
        self.writer.event("reconciled_at_start", **report.as_dict())
        self.last_ticker = self.venue.fetch_ticker()
        self.day = _utc_day(self._now_ms(self.last_ticker))
        self.bars = self._load_history(self._now_ms(self.last_ticker))
        prime_policy(self.policy, self.bars)  # incremental features built now, not on the first bar
        if self.feed is not None:  # trades from the end of the history on; each bar decided as it closes
            self.feed.start(int(self.bars.index[-1].value // 1_000_000) + self.span_ms if len(self.bars) else None)
        pos = self.journal.position()
        if pos != 0 and self.last_ticker.last:
            eq = self.equity(self.last_ticker.last)
            lev = leverage(
                self.cfg.sizing,
                annualised_vol(self.bars["close"].to_numpy(), self.ppy, self.cfg.sizing.vol_lookback_bars),
                self.vol_sizing.peek(self.bars) if self.vol_sizing is not None else None,
            )
            self.held_signal = float(pos * self.last_ticker.last / eq) / lev if eq > 0 and lev > 0 else 0.0
        self.writer.event(
            "live_started",
            mode=self.mode,
            policy=self.policy.name,
            history_bars=len(self.bars),
            position=str(pos),
            risk=self.risk.summary(),
            vol_sizing=self.vol_sizing_note,
        )

    def _measure_skew(self) -> None:
        """The venue's clock against ours, before anything is reconciled: its time windows use the
        exchange's stamps, our send times moved by this skew (reported: event + metric)."""
        try:
            skew = self.manager.measure_skew()
        except ExchangeCallError as exc:
            self._error("clock_skew", exc, api="public")
            return
        self.writer.event(
            "clock_skew",
            skew_ms=None if skew is None else round(skew),
            source="exchange ticker time" if skew is not None else "unavailable (no exchange time)",
        )
        if skew is not None and abs(skew) > 5_000:
            log.warning(
                "this machine's clock is %+.1f s off the exchange's; reconciliation uses the exchange's times, "
                "but fix the clock (NTP)",
                -skew / 1000,
            )

    def poll(self) -> bool:
        """One poll; True when a new bar closed and a decision was made."""
        if self.feed is not None:
            return self._poll_feed()
        try:
            ticker = self.venue.fetch_ticker()
            now = self._now_ms(ticker)
            since = (
                (int(self.bars.index[-1].value // 1_000_000) + self.span_ms)
                if self.bars is not None and len(self.bars)
                else now - self.cfg.warmup_bars * self.span_ms
            )
            new = self.market.fetch_ohlcv_or_build(self.tf, since_ms=since, now_ms=now)
            self.risk.record_success("public")
        except ExchangeCallError as exc:
            self._error("poll", exc, api="public")
            return False
        self.last_ticker = ticker
        self._fresh_at = time.monotonic()
        self._retry_cancels()
        if len(new) == 0:
            if self.manager.open_count():
                self._sync()
            return False
        t_bar = time.perf_counter()
        prev_close = (
            Decimal(repr(float(self.bars["close"].iloc[-1]))) if self.bars is not None and len(self.bars) else None
        )
        self._append(new)
        self.stats.bars += 1
        self.decide(ticker, now, prev_close, t_bar)
        return True

    def _poll_feed(self) -> bool:
        """Bars from the trade stream (websocket; REST trade polling after a fallback): a decision the
        moment a bar closes, its latency also measured from the bar's last trade (`trade_to_order_ms`)."""
        feed = self.feed
        assert feed is not None
        new = feed.next_bars(min(self.cfg.poll_interval_s, 0.25) if feed.mode == "websocket" else 0.0)
        self._tell_market_changes()
        self._retry_cancels()
        if self.bars is not None and len(self.bars):
            new = new[new.index > self.bars.index[-1]]
        if len(new) == 0:
            if self.manager.open_count() and feed.mode == "rest":
                self._sync()
            return False
        t_bar = time.perf_counter()
        self.last_trade_ms = int(new["last_trade_ms"].iloc[-1])
        prev_close = (
            Decimal(repr(float(self.bars["close"].iloc[-1]))) if self.bars is not None and len(self.bars) else None
        )
        # the bars join the buffer whatever happens next: a bar left out for want of a quote would be
        # a hole in every later decision's features
        self._append(new.drop(columns="last_trade_ms"))
        try:
            ticker = feed.ticker()  # the order-book stream's touch when fresh
            if ticker is None:
                ticker = self.venue.fetch_ticker()
            elif hasattr(self.venue, "last_ticker"):
                self.venue.last_ticker = ticker  # paper fills at the touch the decision saw
            self.risk.record_success("public")
        except ExchangeCallError as exc:
            self._error("poll", exc, api="public")
            return False
        self.last_ticker = ticker
        self._fresh_at = time.monotonic()
        now = max(self._now_ms(ticker), int(new.index[-1].value // 1_000_000) + self.span_ms)
        self.stats.bars += 1
        self.decide(ticker, now, prev_close, t_bar)
        return True

    def _tell_market_changes(self) -> None:
        """An alert for each websocket fallback (with its reason), an event for each recovery."""
        feed = self.feed
        if feed is None or (feed.fallbacks, feed.recoveries) == self._told:
            return
        if feed.fallbacks > self._told[0]:
            self.writer.event("alert", level="warning", message=f"market data: {feed.fallback_reason}")
        if feed.recoveries > self._told[1]:
            self.writer.event("market_data_recovered", fallbacks=feed.fallbacks, recoveries=feed.recoveries)
        self._told = (feed.fallbacks, feed.recoveries)

    # ---- the watch: private sync and risk checks on their own timer --------------------------------
    def _data_age_s(self) -> float:
        """Seconds since a fresh price arrived: a new trade from either channel, or a REST ticker."""
        fresh = self._fresh_at
        if self.feed is not None and (age := self.feed.last_trade_age_s()) is not None:
            fresh = max(fresh, time.monotonic() - age)
        return time.monotonic() - fresh

    def _watch_price(self) -> Decimal | None:
        """The freshest price: the stream's newest trade when it is recent, else a REST ticker
        (which also counts as a fresh price); None when neither channel gives one."""
        feed = self.feed
        age = feed.last_trade_age_s() if feed is not None else None
        if feed is not None and age is not None and age < self.cfg.risk_interval_s and feed.builder.last_price:
            return Decimal(repr(feed.builder.last_price))
        try:
            ticker = self.venue.fetch_ticker()
            self.risk.record_success("public")
        except ExchangeCallError as exc:
            self._error("watch_ticker", exc, api="public")
            return None
        self.last_ticker = ticker
        if ticker.last is None and (ticker.bid is None or ticker.ask is None):
            return None
        self._fresh_at = time.monotonic()
        return ticker.last if ticker.last is not None else (ticker.bid + ticker.ask) / 2

    def _keep_watch(self) -> None:
        """Every `risk_interval_s` without a decision: sync fills and open orders, check the data's
        age (the stale-data breaker, with a critical alert), mark the day's P&L and the stop-loss
        (which flattens at once), whatever the market-data channel is doing."""
        now = time.monotonic()
        if now - self._watch_at < self.cfg.risk_interval_s:
            return
        self._watch_at = now
        price = self._watch_price()
        synced = self._sync()
        age = self._data_age_s()
        was_stale = "stale_data" in self.risk.state.breakers
        last = price or (Decimal(repr(float(self.bars["close"].iloc[-1]))) if self.bars is not None else None)
        if last is not None:
            self.risk.observe_market(last, None, None, age)
        if "stale_data" in self.risk.state.breakers and not was_stale:
            channel = self.feed.mode if self.feed is not None else "rest"
            self.writer.event(
                "alert",
                level="critical",
                message=f"market data stale: no fresh price for {age:.0f}s from the websocket or REST "
                f"(now on {channel}); reduce-only until the breakers are reset",
            )
        stop = False
        if price is not None:
            position = self.journal.position()
            stop = self.risk.update_pnl(
                self.equity(price), position, entry_price(self.journal.fills()), price, capital=self.capital
            )
            if stop and synced:
                self.writer.event("stop_loss_exit", price=str(price), position=str(position), why="watch timer")
                self._cancel_resting()
                try:
                    self.flatten()
                except ExchangeCallError as exc:
                    self._error("stop_loss_exit", exc)
                self.held_signal = 0.0
        self.writer.metric(
            self.stats.bars,
            "market",
            {
                **self._market_status(),
                "data_age_s": round(age, 1),
                "stale": "stale_data" in self.risk.state.breakers,
                "synced": synced,
                "price": float(price) if price is not None else None,
                "position": float(self.journal.position()),
                "risk_state": "reduce_only" if self.risk.state.reduce_only else "normal",
            },
            flush=True,
        )

    def _market_status(self) -> dict[str, Any]:
        return self.feed.status() if self.feed is not None else {"market_data": "rest_bars"}

    def _status_line(self) -> str:
        line = f"{self.mode} {self.symbol} bars={self.stats.bars}"
        if self.feed is not None:
            line += f" market={self.feed.mode}"
        if "stale_data" in self.risk.state.breakers:
            line += " STALE market data (reduce-only)"
        return line

    def _error(self, what: str, exc: BaseException, api: str = "private") -> None:
        self.stats.errors += 1
        self.risk.record_error(f"{what}: {exc}", api=api)
        self.writer.event(
            "exchange_error",
            where=what,
            api=api,
            error=str(exc)[:400],
            consecutive=getattr(self.risk.state, f"{api}_errors"),
        )
        log.warning("%s failed: %s", what, exc)

    def _sync(self) -> bool:
        """Reconcile fills and open orders; False when the private API could not be read (then no
        order may be placed: the position and what rests are not known)."""
        try:
            report = self.manager.reconcile()
        except ExchangeCallError as exc:
            self._error("sync", exc)
            return False
        self.risk.record_success("private")
        if report.new_fills:
            self.writer.event("fills_summary", **self.journal.fills_summary(report.new_fills))
        return True

    def _trading_halt(self) -> str | None:
        """Why the exchange takes no orders now (maintenance), or None; unknown counts as halted."""
        try:
            return self.venue.trading_halt(self.symbol)
        except ExchangeCallError as exc:
            self._error("exchange_status", exc, api="public")
            return f"exchange status unknown ({exc.kind})"

    def _retry_cancels(self) -> None:
        """Cancels not yet confirmed are sent again (with backoff) on every poll, bar or not."""
        try:
            self.manager.retry_cancels()
        except ExchangeCallError as exc:
            self._error("cancel_retry", exc)

    def decide(self, ticker: Any, now_ms: int, prev_close: Decimal | None, t_bar: float) -> None:
        # both pollers call this only right after `_append` added at least one new bar
        assert self.bars is not None and len(self.bars), "decide() before any bar was appended"
        self._roll_day(now_ms)
        self._watch_at = time.monotonic()  # a decision syncs and checks the risk itself
        close = Decimal(repr(float(self.bars["close"].iloc[-1])))
        last_close_ms = int(self.bars.index[-1].value // 1_000_000) + self.span_ms
        self.risk.observe_market(close, ticker.bid, ticker.ask, max(0.0, (now_ms - last_close_ms) / 1000.0), prev_close)
        synced = self._sync()
        price = ticker.last or close
        position = self.journal.position()
        flatten = self.risk.update_pnl(
            self.equity(price), position, entry_price(self.journal.fills()), price, capital=self.capital
        )
        latency: float | None = None
        try:
            signal = 0.0 if flatten else float(self.policy.decide(self.bars, self.held_signal))
            scale = self.vol_sizing.step(self.bars, signal) if self.vol_sizing is not None and not flatten else None
        except (NotReady, VolForecastWarmup) as exc:
            self.writer.event("not_ready", reason=str(exc))
            self._metric(price, None)
            return
        self.stats.decisions += 1
        self._cancel_resting()
        # what may still fill (resting, cancelling, unknown), per side: sized and checked at its worst
        # case, never netted as if filled
        resting = self.manager.resting()
        vol = annualised_vol(self.bars["close"].to_numpy(np.float64), self.ppy, self.cfg.sizing.vol_lookback_bars)
        sized = size_order(
            self.cfg.sizing,
            signal,
            self.equity(price),
            position,
            resting,
            ticker.bid,
            ticker.ask,
            price,
            vol,
            self.limits,
            scale,
        )
        outcome = "skip"
        if isinstance(sized, SizedOrder):
            resting_buy, resting_sell = resting
            decision = self.risk.check_order(sized.side, sized.amount, sized.price, position, resting_buy, resting_sell)
            if not synced:
                decision = RiskDecision(
                    False, Decimal(0), "private API: fills and open orders could not be synced; no new order"
                )
            elif decision.allowed:
                halt = self._trading_halt()
                if halt:
                    decision = RiskDecision(False, Decimal(0), f"{halt}; no new order")
            amount = self.limits.round_amount(decision.amount)
            problem = self.limits.check(amount, sized.price) if decision.allowed and amount > 0 else None
            if not decision.allowed or amount <= 0 or problem:
                self.stats.denied += 1
                reason = decision.reason or problem or "rounds to zero"
                self.writer.event(
                    "order_denied", side=sized.side, amount=str(sized.amount), reason=reason, risk=self.risk.summary()
                )
                log.info("order denied: %s", reason)
                outcome = "denied"
            else:
                if decision.reason:
                    log.info("risk: %s", decision.reason)
                outcome = self._place(sized.side, amount, sized.price, decision.reducing, t_bar)
                latency = self.stats.latencies_ms[-1] if outcome == "placed" else None
        else:
            self.stats.skipped += 1
            if sized.reason != "at target":
                log.info("no order: %s", sized.reason)
        if outcome in ("placed", "skip"):
            self.held_signal = signal
        self._metric(
            price, latency, {"decision": outcome, "vol": vol if np.isfinite(vol) else None, "vol_scale": scale}
        )

    def _cancel_resting(self) -> None:
        """Each decision replaces what is still resting from the previous one."""
        if not any(o.state in ("open", "partially_filled", "cancel_requested") for o in self.journal.live_orders()):
            return
        try:
            asked = self.manager.cancel_all()
            if asked:
                self.writer.event("orders_cancelled", client_ids=asked, why="replaced by the new decision")
        except ExchangeCallError as exc:
            self._error("cancel", exc)

    def _place(self, side: Side, amount: Decimal, price: Decimal, reducing: bool, t_bar: float | None) -> str:
        try:
            order = self.manager.place(side, amount, price, reduce_only=reducing)
        except OrderBlocked as exc:
            self.writer.event("order_blocked", reason=str(exc))
            return "blocked"
        except ExchangeCallError as exc:
            self._error("place", exc)
            return "error"
        if t_bar is not None and self.manager.last_send_perf is not None:
            self.stats.latencies_ms.append((self.manager.last_send_perf - t_bar) * 1000.0)
            if self.last_trade_ms is not None:  # exchange clock vs ours: includes their skew
                sent_ms = (time.time() - (time.perf_counter() - self.manager.last_send_perf)) * 1000.0
                self.stats.trade_to_order_ms.append(sent_ms - self.last_trade_ms)
        if order.state in ("rejected", "unknown"):
            return order.state  # not placed (or not known to be): not a trade of the day
        self.risk.record_trade()
        self.stats.orders += 1
        return "placed"

    def flatten(self) -> None:
        """Close the position with a marketable order (allowed in reduce-only), less what resting
        orders on the closing side would already close if they filled."""
        pos = self.journal.position()
        side: Side = "sell" if pos > 0 else "buy"
        resting_buy, resting_sell = self.manager.resting()
        amount = self.limits.round_amount(reducible(Exposure(pos, resting_buy, resting_sell), side))
        if amount <= 0 or amount < self.limits.min_amount:
            if pos != 0:
                self.writer.event("flatten_skipped", position=str(pos), reason="below the market minimum amount")
            return
        ticker = self.venue.fetch_ticker()
        price = limit_price(self.cfg.sizing, side, ticker.bid, ticker.ask, ticker.last, self.limits)
        self._place(side, amount, price, True, None)
        self._sync()

    def run(self, max_bars: int | None = None) -> str:
        """Loop until the kill-file, a signal or `max_bars` decisions; returns the final state."""
        max_bars = max_bars or self.cfg.max_bars
        self.start()
        self.writer.set_status("running", step=0, total_steps=max_bars, message=f"{self.mode} {self.symbol}")
        state = "completed"
        while True:
            if self.kill.requested():
                state = "stopped"
                break
            self.step()
            if max_bars and self.stats.bars >= max_bars:
                break
        if self.feed is not None:
            self.feed.stop()
        self.shutdown(state)
        return state

    def step(self) -> bool:
        """One turn of the loop: a breaker-reset request, a poll (a decision if a bar closed), else
        the watch (private sync and risk checks on their own timer), the heartbeat; then, without a
        decision on REST bars, the wait until the next poll (a websocket feed waits inside `poll`).
        True when a decision was made."""
        self.take_requests()
        decided = self.poll()
        if not decided:
            self._keep_watch()
        self.writer.heartbeat(self.stats.bars, message=self._status_line())
        if not decided and (self.feed is None or self.feed.mode == "rest"):
            self._sleep(self.cfg.poll_interval_s)
        return decided

    def take_requests(self) -> None:
        """Act on a reset-breakers request dropped into the run folder (the console's action)."""
        request = take_breaker_reset(self.writer.dir)
        if request is not None:
            cleared = self.risk.reset_breakers()
            self.writer.event("breakers_reset", cleared=cleared, requested_by=str(request.get("by", "?")))

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.kill.requested():
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def shutdown(self, state: str) -> None:
        if state == "stopped":
            self.writer.event("stop_requested", reason=self.kill.reason)
            self.writer.set_status("stopping", message=f"stopping: {self.kill.reason}")
            try:
                asked = self.manager.cancel_all()
                self.writer.event("orders_cancelled", client_ids=asked, why="stop")
                if self.cfg.flatten_on_stop:
                    self.flatten()
            except ExchangeCallError as exc:
                self._error("stop", exc)
        self.write_report()
        self.writer.set_status(
            state, step=self.stats.bars, message=f"{state}: {self.stats.orders} orders, {self.stats.bars} bars"
        )
        self.writer.event(state, bars=self.stats.bars, orders=self.stats.orders)

    def write_report(self) -> dict:
        price = (
            self.last_ticker.last
            if self.last_ticker is not None and self.last_ticker.last
            else Decimal(repr(float(self.bars["close"].iloc[-1])))
            if self.bars is not None and len(self.bars)
            else Decimal(0)
        )
        lat = np.asarray(self.stats.latencies_ms, dtype=float)
        report: dict[str, Any] = {
            "mode": self.mode,
            "symbol": self.symbol,
            "policy": self.policy.name,
            "bars": self.stats.bars,
            "decisions": self.stats.decisions,
            "orders": self.stats.orders,
            "skipped": self.stats.skipped,
            "denied": self.stats.denied,
            "errors": self.stats.errors,
            "equity": float(self.equity(price)) if price else None,
            "capital": float(self.capital),
            "position": str(self.journal.position()),
            "journal": str(self.journal.path),
            "journal_counts": self.journal.counts(),
            "risk": self.risk.summary(),
            "decision_latency_ms": {
                "p50": float(np.percentile(lat, 50)),
                "p95": float(np.percentile(lat, 95)),
                "n": int(len(lat)),
            }
            if len(lat)
            else None,
            "trade_to_order_ms": {
                "p50": float(np.percentile(self.stats.trade_to_order_ms, 50)),
                "p95": float(np.percentile(self.stats.trade_to_order_ms, 95)),
                "n": len(self.stats.trade_to_order_ms),
            }
            if self.stats.trade_to_order_ms
            else None,
        }
        eq = np.asarray(self.stats.equity, dtype=float)
        if len(eq) > 2:
            report["performance"] = self._performance(eq)
        atomic_write_json(self.writer.dir / "reports" / "live_report.json", report)
        self._plot(eq, self.writer.dir / "reports" / "equity.png", "equity")
        return report

    # ---- daily reports --------------------------------------------------------------------------
    def _roll_day(self, now_ms: int) -> None:
        """On the first decision of a new UTC day, report the day that ended."""
        day = _utc_day(now_ms)
        if self.day is None or day == self.day:
            self.day = day
            return
        ended, self.day = self.day, day
        try:
            self.write_daily_report(ended)
        except Exception as exc:  # noqa: BLE001 - a report must never stop trading; the event says why
            log.warning("daily report for %s failed: %s", ended, exc)
            self.writer.event("daily_report_failed", date=ended, error=f"{type(exc).__name__}: {exc}"[:300])
        self._day_start = {
            "point": len(self.stats.equity),
            "orders": self.stats.orders,
            "denied": self.stats.denied,
            "errors": self.stats.errors,
        }

    def write_daily_report(self, day: str) -> dict:
        """reports/live_report_<day>.json + equity_<day>.png over that day's decisions; the day opens
        at the previous day's last equity (or the capital on the first day)."""
        first = self._day_start["point"]
        points = np.asarray(self.stats.equity[first:], dtype=float)
        opening = self.stats.equity[first - 1] if first > 0 else float(self.capital)
        eq = np.concatenate([[opening], points])
        report: dict[str, Any] = {
            "date": day,
            "mode": self.mode,
            "symbol": self.symbol,
            "policy": self.policy.name,
            "bars": int(len(points)),
            "orders": self.stats.orders - self._day_start["orders"],
            "denied": self.stats.denied - self._day_start["denied"],
            "errors": self.stats.errors - self._day_start["errors"],
            "equity_open": float(opening),
            "equity_close": float(eq[-1]),
            "pnl": float(eq[-1] - opening),
            "return": float(eq[-1] / opening - 1.0) if opening > 0 else None,
            "position": str(self.journal.position()),
            "risk": self.risk.summary(),
        }
        if len(eq) > 2:
            report["performance"] = self._performance(eq)
        reports = self.writer.dir / "reports"
        path = reports / f"live_report_{day}.json"
        atomic_write_json(path, report)
        self._plot(eq, reports / f"equity_{day}.png", f"equity {day} UTC")
        self.writer.event(
            "daily_report", date=day, path=str(path), bars=report["bars"], orders=report["orders"], pnl=report["pnl"]
        )
        log.info("daily report %s: %d bars, %d orders, P&L %.0f", day, report["bars"], report["orders"], report["pnl"])
        return report

    def _performance(self, eq: np.ndarray) -> dict:
        """Per-bar return metrics of an equity series, through the evaluation package."""
        if not np.all(eq > 0):
            return {"unavailable": "equity not positive throughout"}
        try:
            return performance_metrics(np.diff(eq) / eq[:-1], self.ppy, allow_constant=True)
        except Exception as exc:  # noqa: BLE001 - the report is still useful without the metrics
            return {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}

    def _plot(self, eq: np.ndarray, path: Path, what: str) -> None:
        if len(eq) < 2:
            return
        # matplotlib's object API on the Agg canvas: no pyplot global state or backend switch
        fig = Figure(figsize=(8, 3))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.plot(eq, lw=1.2)
        ax.axhline(float(self.capital), color="grey", lw=0.8, ls="--")
        ax.set_title(f"{self.mode} {self.symbol} {what} ({self.policy.name})")
        ax.set_xlabel("bar")
        ax.set_ylabel("equity")
        fig.tight_layout()
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=90)
        tmp.replace(path)


def _utc_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d")
