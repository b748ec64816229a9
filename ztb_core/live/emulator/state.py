"""The emulated exchange's books: replay clock, balances, orders, fills, matching.

Matching is lazy and deterministic: every request first advances the replay clock and matches the
open orders against the tape trades printed since the previous request. A resting buy at rate R
fills (at R, as maker) against each printed trade below R, up to that trade's size; a trade AT R
first consumes the queue ahead of the order (the size the book showed at R when it was placed),
then fills it. A sell mirrors it. An order that crosses the synthetic book when placed walks the
book (taker), level by level at each level's price and size, up to its limit; what is left rests.
Fees are charged per fill as configured. In maintenance (`set_maintenance`, or
`maintenance: true`) `exchange_status` says so and new orders are refused.
All money is Decimal; balances are derived: free = total - reserved by open orders.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from .config import EmulatorConfig
from .tape import TradeTape

SATOSHI = Decimal("0.00000001")
PAIR = "btc_jpy"
BASE, QUOTE = "btc", "jpy"


class ApiError(Exception):
    """A business error answered as {"success": false, "error": message}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _dec(value: Any, name: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except Exception:
        raise ApiError(f"{name} is invalid") from None
    if not out.is_finite():
        raise ApiError(f"{name} is invalid")
    return out


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f") if value != 0 else "0.0"


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}Z"


@dataclass
class VenueOrder:
    id: int
    side: str  # buy | sell
    rate: Decimal
    amount: Decimal
    created_ms: int  # tape time
    remaining: Decimal
    fill_cap: Decimal | None = None  # partial_fill fault: largest immediate / single resting fill
    queue_ahead: Decimal = Decimal(0)  # book size ahead of it at its price, consumed by trades at that price
    status: str = "NEW"  # NEW | PARTIALLY_FILLED | FILLED | CANCELED | PARTIALLY_FILLED_CANCELED

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class VenueFill:
    id: int
    order_id: int
    tape_ms: int
    side: str
    rate: Decimal
    amount: Decimal
    fee: Decimal
    liquidity: str  # M | T
    pair: str = PAIR  # the account's history mixes pairs; only PAIR is traded here


class ReplayClock:
    """Tape time advances `speed` tape-seconds per wall-second (plus manual `advance`); times shown
    to clients are rebased onto the wall clock (clock=wall) or left as on the tape (clock=tape).

    On the wall clock the replay from the start on is compressed `speed` times (a bar a second at
    60x), but the history visible at start keeps its own spacing, shifted to end now: compressed
    too, four days of history at 60x would read as 96 minutes, and a client building M1 bars from
    it would find 96 bars where the tape has 5,760."""

    def __init__(self, tape: TradeTape, speed: float, history_s: float, mode: str) -> None:
        self.speed, self.mode = speed, mode
        self.anchor_ms = int(min(tape.ts_ms[0] + history_s * 1000.0, tape.ts_ms[-1]))
        self.wall0_ms = time.time() * 1000.0
        self.manual_ms = 0.0
        self._scale = speed if speed > 0 else 1.0

    def tape_now_ms(self) -> float:
        return self.anchor_ms + (time.time() * 1000.0 - self.wall0_ms) * self.speed + self.manual_ms

    def advance(self, seconds: float) -> None:
        self.manual_ms += seconds * 1000.0

    def report_ms(self, tape_ms: float) -> int:
        if self.mode == "tape":
            return int(tape_ms)
        if tape_ms < self.anchor_ms:  # the history: shifted, not compressed
            return int(self.wall0_ms + (tape_ms - self.anchor_ms))
        return int(self.wall0_ms + (tape_ms - self.anchor_ms) / self._scale)

    def tape_from_report_ms(self, report_ms: float) -> float:
        if self.mode == "tape":
            return report_ms
        if report_ms < self.wall0_ms:
            return self.anchor_ms + (report_ms - self.wall0_ms)
        return self.anchor_ms + (report_ms - self.wall0_ms) * self._scale


def paginate(n: int, params: dict[str, str], default_limit: int = 20, max_limit: int = 100) -> list[int]:
    """Coincheck/Stripe-style cursor pagination over ids 1..n (ids rise with time).
    order=desc (default): starting_after=X -> older than X; ending_before=X -> newer than X.
    order=asc mirrors it. Returns ids in output order."""
    try:
        limit = int(params.get("limit") or default_limit)
        after = int(params["starting_after"]) if params.get("starting_after") else None
        before = int(params["ending_before"]) if params.get("ending_before") else None
    except ValueError:
        raise ApiError("pagination parameters must be integers") from None
    limit = max(1, min(limit, max_limit))
    order = params.get("order", "desc")
    if order not in ("desc", "asc"):
        raise ApiError("order must be desc or asc")
    if order == "desc":
        if after is not None:
            hi = min(after - 1, n)
            return list(range(hi, max(hi - limit, 0), -1))
        if before is not None:
            lo = max(before + 1, 1)
            return list(range(min(lo + limit - 1, n), lo - 1, -1))
        return list(range(n, max(n - limit, 0), -1))
    if after is not None:
        lo = max(after + 1, 1)
        return list(range(lo, min(lo + limit - 1, n) + 1))
    if before is not None:
        hi = min(before - 1, n)
        return list(range(max(hi - limit + 1, 1), hi + 1))
    return list(range(1, min(limit, n) + 1))


class ExchangeState:
    def __init__(self, config: EmulatorConfig, tape: TradeTape) -> None:
        self.cfg, self.tape = config, tape
        self.clock = ReplayClock(tape, config.speed, config.history_s, config.clock)
        self.lock = threading.RLock()
        self.totals: dict[str, Decimal] = {BASE: Decimal(0), QUOTE: Decimal(0)}
        for cur, amount in config.balances.items():
            self.totals[cur.lower()] = _dec(amount, f"balance {cur}")
        self.orders: dict[int, VenueOrder] = {}
        self.fills: list[VenueFill] = []
        self.visible = 0  # tape trades printed so far (ids 1..visible)
        self._next_order = 1
        self.price_step = _dec(config.price_step, "price_step")
        self.maintenance = config.maintenance
        self._own_fills = 0
        self.advance(0.0)

    # ---- clock and matching -------------------------------------------------------------
    def advance(self, seconds: float = 0.0) -> None:
        """Move the manual clock by `seconds`, then print and match every trade now due."""
        with self.lock:
            if seconds:
                self.clock.advance(seconds)
            new = int(np.searchsorted(self.tape.ts_ms, self.clock.tape_now_ms(), side="right"))
            if new > self.visible:
                self._match(self.visible, new)
                self.visible = new

    def _match(self, lo: int, hi: int) -> None:
        prices, sizes, times = self.tape.price[lo:hi], self.tape.size[lo:hi], self.tape.ts_ms[lo:hi]
        for order in [o for o in self.orders.values() if o.open]:
            rate = float(order.rate)
            cross = prices <= rate if order.side == "buy" else prices >= rate
            for j in np.flatnonzero(cross):
                if times[j] < order.created_ms:
                    continue
                size = Decimal(str(sizes[j])).quantize(SATOSHI, ROUND_DOWN)
                if prices[j] == rate and order.queue_ahead > 0:  # at our price the queue ahead goes first
                    used = min(size, order.queue_ahead)
                    order.queue_ahead -= used
                    size -= used
                qty = min(order.remaining, size)
                if order.fill_cap is not None:
                    qty = min(qty, order.fill_cap)
                if qty > 0:
                    self._fill(order, order.rate, qty, int(times[j]), "M")
                if not order.open:
                    break

    def _fill(self, order: VenueOrder, rate: Decimal, qty: Decimal, tape_ms: int, liquidity: str) -> None:
        fee_bps = self.cfg.maker_fee_bps if liquidity == "M" else self.cfg.taker_fee_bps
        notional = rate * qty
        fee = (notional * Decimal(str(fee_bps)) / Decimal(10_000)).quantize(Decimal("0.001"))
        if order.side == "buy":
            self.totals[BASE] += qty
            self.totals[QUOTE] -= notional + fee
        else:
            self.totals[BASE] -= qty
            self.totals[QUOTE] += notional - fee
        order.remaining -= qty
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        self.fills.append(VenueFill(len(self.fills) + 1, order.id, tape_ms, order.side, rate, qty, fee, liquidity))
        self._own_fills += 1
        every = self.cfg.other_pair_fill_every
        if every and self._own_fills % every == 0:  # a real account's history mixes pairs
            self.add_other_pair_fill("eth_jpy", order.side, Decimal("300000"), Decimal("0.1"))

    # ---- market data --------------------------------------------------------------------
    def last_price(self) -> Decimal:
        idx = max(self.visible - 1, 0)
        return Decimal(str(self.tape.price[idx]))

    def touch(self) -> tuple[Decimal, Decimal]:
        """(bid, ask) of the synthetic book: last trade +- half the configured spread, on ticks."""
        last = self.last_price()
        half = last * Decimal(str(self.cfg.spread_bps)) / Decimal(20_000)
        step = self.price_step
        bid = ((last - half) / step).to_integral_value(rounding="ROUND_FLOOR") * step
        ask = ((last + half) / step).to_integral_value(rounding="ROUND_CEILING") * step
        if ask <= bid:
            ask = bid + step
        return bid, ask

    def ticker(self) -> dict:
        with self.lock:
            self.advance()
            bid, ask = self.touch()
            now = self.clock.tape_now_ms()
            lo = int(np.searchsorted(self.tape.ts_ms, now - 86_400_000, side="left"))
            hi = max(self.visible, lo + 1)
            window = self.tape.price[lo:hi]
            return {
                "last": float(self.last_price()),
                "bid": float(bid),
                "ask": float(ask),
                "high": float(window.max()),
                "low": float(window.min()),
                "volume": f"{float(self.tape.size[lo:hi].sum()):.8f}",
                "timestamp": self.clock.report_ms(now) // 1000,
            }

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The synthetic book (bids best first, asks best first) as (price, size); the same for every
        request until the next tape trade prints."""
        bid, ask = self.touch()
        ticks = max(1, int(self.last_price() * Decimal("0.00005") / self.price_step))
        gap = self.price_step * ticks
        rng = np.random.default_rng(self.cfg.seed + self.visible)
        sizes = np.round(rng.exponential(0.3, (2, self.cfg.book_depth)) + 0.005, 3)
        asks = [(ask + gap * i, Decimal(f"{sizes[0, i]:.3f}")) for i in range(self.cfg.book_depth)]
        bids = [(bid - gap * i, Decimal(f"{sizes[1, i]:.3f}")) for i in range(self.cfg.book_depth)]
        return bids, asks

    def order_book(self) -> dict:
        with self.lock:
            self.advance()
            bids, asks = self.levels()
            return {
                "asks": [[_num(p), f"{q:.3f}"] for p, q in asks],
                "bids": [[_num(p), f"{q:.3f}"] for p, q in bids],
            }

    def trades(self, params: dict[str, str]) -> dict:
        if params.get("pair", PAIR) != PAIR:
            raise ApiError(f"pair {params.get('pair')} is not supported")
        with self.lock:
            self.advance()
            ids = paginate(self.visible, params)
            data = [
                {
                    "id": i,
                    "amount": f"{self.tape.size[i - 1]:.8f}",
                    "rate": f"{self.tape.price[i - 1]:.1f}",
                    "pair": PAIR,
                    "order_type": "buy" if self.tape.side[i - 1] > 0 else "sell",
                    "created_at": iso(self.clock.report_ms(self.tape.ts_ms[i - 1])),
                }
                for i in ids
            ]
            return {"success": True, "pagination": _page_info(params), "data": data}

    def set_maintenance(self, on: bool) -> None:
        """Start or end a maintenance window: orders are refused, cancels still work."""
        with self.lock:
            self.maintenance = bool(on)

    def exchange_status(self) -> dict:
        now = self.clock.report_ms(self.clock.tape_now_ms()) // 1000
        return {
            "exchange_status": [
                {
                    "pair": PAIR,
                    "status": "maintenance" if self.maintenance else "available",
                    "timestamp": now,
                    "availability": {"order": not self.maintenance, "market_order": False, "cancel": True},
                }
            ]
        }

    # ---- account ------------------------------------------------------------------------
    def reserved(self) -> dict[str, Decimal]:
        out = {BASE: Decimal(0), QUOTE: Decimal(0)}
        for o in self.orders.values():
            if o.open:
                if o.side == "buy":
                    out[QUOTE] += o.remaining * o.rate
                else:
                    out[BASE] += o.remaining
        return out

    def balance(self) -> dict:
        with self.lock:
            self.advance()
            reserved = self.reserved()
            body: dict[str, Any] = {"success": True}
            for cur, total in self.totals.items():
                res = reserved.get(cur, Decimal(0))
                body[cur] = _num(total - res)
                body[f"{cur}_reserved"] = _num(res)
                body[f"{cur}_lend_in_use"] = "0.0"
                body[f"{cur}_lent"] = "0.0"
                body[f"{cur}_debt"] = "0.0"
            return body

    def accounts(self) -> dict:
        return {
            "success": True,
            "id": 1,
            "email": "emulator@localhost",
            "identity_status": "identity_verified",
            "exchange_fees": {
                PAIR: {"maker_fee": str(self.cfg.maker_fee_bps / 100), "taker_fee": str(self.cfg.taker_fee_bps / 100)}
            },
        }

    # ---- orders -------------------------------------------------------------------------
    def create_order(self, params: dict[str, str], fill_ratio: float | None = None) -> dict:
        if params.get("pair") != PAIR:
            raise ApiError(f"pair {params.get('pair')!r} is not supported")
        side = params.get("order_type")
        if side not in ("buy", "sell"):
            raise ApiError(f"order_type {side!r} is invalid: the emulator takes limit orders (buy, sell)")
        rate = _dec(params.get("rate"), "rate")
        amount = _dec(params.get("amount"), "amount")
        if rate <= 0 or rate % self.price_step != 0:
            raise ApiError(f"rate {params.get('rate')} is invalid: it must be a positive multiple of {self.price_step}")
        if amount <= 0 or amount != amount.quantize(SATOSHI):
            raise ApiError(f"amount {params.get('amount')} is invalid: at most 8 decimals")
        if amount < _dec(self.cfg.min_amount, "min_amount"):
            raise ApiError(f"Amount {amount} is too small: minimum order amount is {self.cfg.min_amount} BTC")
        if rate * amount < _dec(self.cfg.min_cost, "min_cost"):
            raise ApiError(f"Amount {amount} is too small: minimum order value is {self.cfg.min_cost} JPY")
        with self.lock:
            if self.maintenance:
                raise ApiError("the exchange is under maintenance: orders are not accepted")
            self.advance()
            reserved = self.reserved()
            if side == "buy" and self.totals[QUOTE] - reserved[QUOTE] < rate * amount:
                raise ApiError("Insufficient balance: not enough JPY available")
            if side == "sell" and self.totals[BASE] - reserved[BASE] < amount:
                raise ApiError("Insufficient balance: not enough BTC available")
            now = int(self.clock.tape_now_ms())
            cap = (amount * Decimal(str(fill_ratio))).quantize(SATOSHI, ROUND_DOWN) if fill_ratio else None
            order = VenueOrder(self._next_order, side, rate, amount, now, amount, fill_cap=cap or None)
            self._next_order += 1
            self.orders[order.id] = order
            bids, asks = self.levels()
            # marketable: walk the opposite side up to the limit (the partial_fill cap bounds the total)
            budget = min(order.remaining, cap or order.remaining)
            for price, size in asks if side == "buy" else bids:
                if budget <= 0 or (price > rate if side == "buy" else price < rate):
                    break
                qty = min(budget, size)
                self._fill(order, price, qty, now, "T")
                budget -= qty
            if order.open:  # resting: behind what the book already shows at its price
                own = bids if side == "buy" else asks
                order.queue_ahead = next((q for p, q in own if p == rate), Decimal(0))
            return {
                "success": True,
                "id": order.id,
                "rate": _num(rate),
                "amount": _num(amount),
                "order_type": side,
                "time_in_force": "good_til_cancelled",
                "stop_loss_rate": None,
                "pair": PAIR,
                "created_at": iso(self.clock.report_ms(now)),
            }

    def _order(self, raw_id: Any) -> VenueOrder:
        try:
            order = self.orders.get(int(raw_id))
        except (TypeError, ValueError):
            order = None
        if order is None:
            raise ApiError(f"Order {raw_id} not found", status=404)
        return order

    def cancel_order(self, raw_id: Any) -> dict:
        with self.lock:
            self.advance()
            order = self._order(raw_id)
            if not order.open:
                raise ApiError(f"Order {raw_id} not found: it is no longer open ({order.status})", status=404)
            order.status = "PARTIALLY_FILLED_CANCELED" if order.remaining < order.amount else "CANCELED"
            return {"success": True, "id": order.id}

    def cancel_status(self, raw_id: Any) -> dict:
        with self.lock:
            order = self._order(raw_id)
            return {
                "success": True,
                "id": order.id,
                "cancel": order.status.endswith("CANCELED"),
                "created_at": iso(self.clock.report_ms(order.created_ms)),
            }

    def order_detail(self, raw_id: Any) -> dict:
        with self.lock:
            self.advance()
            o = self._order(raw_id)
            return {
                "success": True,
                "id": o.id,
                "pair": PAIR,
                "order_type": o.side,
                "rate": _num(o.rate),
                "stop_loss_rate": None,
                "maker_fee_rate": str(self.cfg.maker_fee_bps / 10_000),
                "taker_fee_rate": str(self.cfg.taker_fee_bps / 10_000),
                "amount": _num(o.amount),
                "market_buy_amount": None,
                "executed_amount": _num(o.amount - o.remaining),
                "executed_market_buy_amount": None,
                "expired_type": None,
                "prevented_match_id": None,
                "expired_amount": "0.0",
                "expired_market_buy_amount": None,
                "time_in_force": "good_til_cancelled",
                "status": o.status,
                "created_at": iso(self.clock.report_ms(o.created_ms)),
            }

    def open_orders(self) -> dict:
        with self.lock:
            self.advance()
            return {
                "success": True,
                "orders": [
                    {
                        "id": o.id,
                        "order_type": o.side,
                        "rate": float(o.rate),
                        "pair": PAIR,
                        "pending_amount": _num(o.remaining),
                        "pending_market_buy_amount": None,
                        "stop_loss_rate": None,
                        "created_at": iso(self.clock.report_ms(o.created_ms)),
                    }
                    for o in self.orders.values()
                    if o.open
                ],
            }

    # ---- test and fuzzer controls ------------------------------------------------------
    def execute(self, order_id: int, qty: Decimal, rate: Decimal | None = None) -> VenueFill:
        """The exchange executes `qty` of an open order now (at its rate unless given), as maker."""
        with self.lock:
            order = self._order(order_id)
            if not order.open:
                raise ApiError(f"order {order_id} is not open ({order.status})")
            qty = min(Decimal(qty), order.remaining)
            self._fill(order, order.rate if rate is None else Decimal(rate), qty, int(self.clock.tape_now_ms()), "M")
            return self.fills[-1]

    def add_other_pair_fill(self, pair: str, side: str, rate: Decimal, amount: Decimal) -> VenueFill:
        """A fill of the same account on another pair (e.g. eth_jpy): it shows in the transaction
        history like any other, and moves no balance this emulator tracks."""
        if pair == PAIR:
            raise ValueError("use execute() for the emulated pair")
        with self.lock:
            fill = VenueFill(
                len(self.fills) + 1,
                10**9 + len(self.fills),
                int(self.clock.tape_now_ms()),
                side,
                Decimal(rate),
                Decimal(amount),
                Decimal(0),
                "T",
                pair,
            )
            self.fills.append(fill)
            return fill

    def _fill_json(self, f: VenueFill) -> dict:
        sign = Decimal(1) if f.side == "buy" else Decimal(-1)
        base, quote = f.pair.split("_")
        return {
            "id": f.id,
            "order_id": f.order_id,
            "created_at": iso(self.clock.report_ms(f.tape_ms)),
            "funds": {base: _num(sign * f.amount), quote: _num(-sign * f.rate * f.amount)},
            "pair": f.pair,
            "rate": _num(f.rate),
            "fee_currency": "JPY",
            "fee": _num(f.fee),
            "liquidity": f.liquidity,
            "side": f.side,
        }

    def transactions(self, params: dict[str, str], paginated: bool) -> dict:
        with self.lock:
            self.advance()
            if paginated:
                ids = paginate(len(self.fills), params)
                return {
                    "success": True,
                    "pagination": _page_info(params),
                    "data": [self._fill_json(self.fills[i - 1]) for i in ids],
                }
            return {"success": True, "transactions": [self._fill_json(f) for f in reversed(self.fills)]}


def _page_info(params: dict[str, str]) -> dict:
    return {
        "limit": int(params.get("limit") or 20),
        "order": params.get("order", "desc"),
        "starting_after": params.get("starting_after"),
        "ending_before": params.get("ending_before"),
    }
