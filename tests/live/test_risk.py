"""Risk limits and circuit breakers: reduce-only denies new exposure but allows reducing; the
state survives a restart (it lives in the journal)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import OPEN, REJECTED, SUBMITTED, UNKNOWN, Fill, Order
from ztb_core.live.loop.risk import RiskConfig, RiskManager, entry_price

P = Decimal("1000000")
DAY_MS = 1_800_000_000_000  # a fixed instant; the clock is injected


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "j.sqlite", "live", "coincheck", "BTC/JPY")
    yield j
    j.close()


def rm(journal, clock=lambda: DAY_MS, **cfg) -> RiskManager:
    return RiskManager(RiskConfig(**cfg), journal, clock_ms=clock)


def test_position_and_notional_limits_cut_orders(journal):
    r = rm(journal, max_position=Decimal("0.02"), max_notional=Decimal("15000"))
    d = r.check_order("buy", Decimal("0.05"), P, Decimal("0"))
    assert d.allowed and d.amount == Decimal("0.015") and "cut" in d.reason  # notional 15000 / 1M
    assert not r.check_order("buy", Decimal("0.01"), P, Decimal("0.015")).allowed
    d = r.check_order("sell", Decimal("0.01"), P, Decimal("0.015"))
    assert d.allowed and d.reducing and d.amount == Decimal("0.01")


def test_breaker_makes_reduce_only_until_reset_and_survives_restart(journal):
    r = rm(journal, max_price_jump_pct=0.02)
    r.observe_market(Decimal("1030000"), None, None, 1.0, prev_close=P)
    assert r.state.reduce_only and "price_jump" in r.state.breakers
    assert not r.check_order("buy", Decimal("0.01"), P, Decimal("0")).allowed
    assert r.check_order("sell", Decimal("0.01"), P, Decimal("0.01")).allowed  # reducing
    flip = r.check_order("sell", Decimal("0.03"), P, Decimal("0.01"))  # a flip is cut to the exit, not refused
    assert flip.allowed and flip.reducing and flip.amount == Decimal("0.01")
    again = rm(journal, max_price_jump_pct=0.02)  # a restart
    assert again.state.breakers.keys() == {"price_jump"}
    assert "price_jump" in again.check_order("buy", Decimal("0.01"), P, Decimal("0")).reason
    assert again.reset_breakers() == ["price_jump"]
    assert rm(journal).check_order("buy", Decimal("0.01"), P, Decimal("0")).allowed


@pytest.mark.parametrize(
    "call,breaker",
    [
        (lambda r: r.observe_market(P, Decimal("990000"), Decimal("1010000"), 1.0), "spread_too_wide"),
        (lambda r: r.observe_market(P, None, None, 999.0), "stale_data"),
        (lambda r: [r.record_error("x") for _ in range(3)], "consecutive_errors"),
    ],
)
def test_each_breaker_trips(journal, call, breaker):
    r = rm(journal, max_spread_bps=50, stale_data_s=300, max_consecutive_errors=3)
    call(r)
    assert breaker in r.state.breakers and r.summary()["reduce_only"]


def test_errors_reset_on_success_of_the_same_api_only(journal):
    r = rm(journal, max_consecutive_errors=3)
    r.record_error("a"), r.record_error("b"), r.record_success("private"), r.record_error("c")
    assert not r.state.breakers and r.state.private_errors == 1
    # defect 4: public polls succeeding between private failures must not hide them
    r.record_error("d"), r.record_success("public"), r.record_error("e")
    assert "consecutive_errors" in r.state.breakers and "private" in r.state.breakers["consecutive_errors"]


def test_risk_state_of_an_older_journal_loads(journal):
    journal.set_state("risk_state", {"day": "2027-01-15", "consecutive_errors": 2, "breakers": {"manual": "x"}})
    r = rm(journal)
    assert r.state.breakers == {"manual": "x"} and r.state.private_errors == 0


@pytest.mark.parametrize(
    ("side", "amount", "position", "resting_buy", "resting_sell", "allowed"),
    [
        ("sell", "0.01", "0.01", "0", "0", "0.01"),  # closes the long exactly
        ("sell", "0.01", "0", "0", "0", "0"),  # flat: a sell opens a short
        ("sell", "0.01", "0.01", "0", "0.01", "0"),  # a resting sell may already close it: would go short
        ("sell", "0.005", "0.01", "0", "0.005", "0.005"),  # fits next to the resting sell
        ("buy", "0.01", "-0.01", "0", "0", "0.01"),
        ("buy", "0.01", "-0.01", "0.005", "0", "0.005"),  # cut to what reduces whatever the resting buy does
        # a resting BUY does not make a sell reducing (old bypass): only the filled 0.005 can be sold
        ("sell", "0.01", "0.005", "0.02", "0", "0.005"),
        ("sell", "0.02", "0.01", "0.01", "0", "0.01"),  # partial fill, cancel of the rest failing: exit 0.01
    ],
)
def test_reducing_is_judged_on_filled_position_with_resting_at_worst_case(
    journal, side, amount, position, resting_buy, resting_sell, allowed
):
    r = rm(journal)
    r.trip("manual", "test")
    d = r.check_order(side, Decimal(amount), P, Decimal(position), Decimal(resting_buy), Decimal(resting_sell))
    assert d.allowed is (Decimal(allowed) > 0) and d.reducing is d.allowed
    assert d.amount == Decimal(allowed)
    if d.allowed:  # whatever subset of the resting orders fills, |position| never grows nor flips
        signed = d.amount if side == "buy" else -d.amount
        pos = Decimal(position)
        for rb in (Decimal(0), Decimal(resting_buy)):
            for rs in (Decimal(0), Decimal(resting_sell)):
                before, after = pos + rb - rs, pos + rb - rs + signed
                assert abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0))


def test_daily_loss_and_trade_count_reset_next_day(journal):
    now = [DAY_MS]
    r = rm(journal, clock=lambda: now[0], daily_loss_limit=Decimal("10000"), max_trades_per_day=2)
    r.update_pnl(Decimal("100000"), Decimal(0), None, P)
    r.update_pnl(Decimal("89999"), Decimal(0), None, P)
    assert r.state.daily_halt and not r.check_order("buy", Decimal("0.001"), P, Decimal(0)).allowed
    now[0] += 86_400_000
    r2 = rm(journal, clock=lambda: now[0], max_trades_per_day=2)  # restart on the next day
    assert r2.state.daily_halt is None and r2.check_order("buy", Decimal("0.001"), P, Decimal(0)).allowed
    placed(journal, "a", now[0]), placed(journal, "b", now[0] + 1)
    assert (
        "trade count"
        in rm(journal, clock=lambda: now[0], max_trades_per_day=2)
        .check_order("buy", Decimal("0.001"), P, Decimal(0))
        .reason
    )
    # at the count limit reducing is still allowed
    assert r2.check_order("sell", Decimal("0.001"), P, Decimal("0.002")).allowed


def placed(journal, cid: str, at_ms: int, state: str = OPEN, exchange_id: str | None = "auto") -> None:
    """An order the journal knows as placed at `at_ms` (the exchange took it unless told otherwise)."""
    order = Order(f"c-{cid}", "BTC/JPY", "buy", Decimal("0.001"), P, created_ms=at_ms, updated_ms=at_ms)
    sub = journal.record_submission(order)
    if state != SUBMITTED:
        journal.save(sub, sub.transition(state, exchange_id=f"x-{cid}" if exchange_id == "auto" else exchange_id))


def test_the_trade_limit_counts_the_journal_not_a_counter_a_kill_can_lose(journal):
    """A process killed after a placement and before any counter update (found by the fault fuzzer:
    7 exposure-adding orders on a day limited to 6): the limit reads the placed orders themselves."""
    r = rm(journal, max_trades_per_day=2)
    placed(journal, "old", DAY_MS - 86_400_000)  # yesterday: not today's
    placed(journal, "rej", DAY_MS, state=REJECTED, exchange_id=None)  # never placed
    placed(journal, "unk", DAY_MS, state=UNKNOWN, exchange_id=None)  # outcome unknown: not (yet) a trade
    placed(journal, "a", DAY_MS)
    assert r.check_order("buy", Decimal("0.001"), P, Decimal(0)).allowed  # positive control: 1 of 2
    placed(journal, "b", DAY_MS + 1)  # no record_trade(): as if killed right after the placement
    fresh = rm(journal, max_trades_per_day=2)  # the restarted process
    decision = fresh.check_order("buy", Decimal("0.001"), P, Decimal(0))
    assert not decision.allowed and "daily trade count 2" in decision.reason
    assert fresh.summary()["trades_today"] == 2


def test_stop_loss_flattens_and_latches(journal):
    r = rm(journal, stop_loss_pct=0.05)
    assert not r.update_pnl(Decimal("100000"), Decimal("0.01"), P, Decimal("960000"))
    assert r.update_pnl(Decimal("99000"), Decimal("0.01"), P, Decimal("949000"))
    assert "stop_loss" in r.state.breakers
    # a short stops out on the way up
    r2 = rm(journal, stop_loss_pct=0.05)
    r2.reset_breakers()
    assert r2.update_pnl(Decimal("99000"), Decimal("-0.01"), P, Decimal("1051000"))


def test_disabled_limits_allow_everything(journal):
    r = rm(journal, enabled=False, max_position=Decimal("0.001"))
    r.observe_market(P, Decimal("1"), Decimal("9999999"), 1e6, prev_close=Decimal("1"))
    assert not r.state.breakers
    assert r.check_order("buy", Decimal("5"), P, Decimal("0")).allowed


def test_entry_price_average_cost():
    def f(side, amount, price):
        return Fill("t", None, None, side, Decimal(amount), Decimal(price), Decimal(0), "JPY", 0)

    assert entry_price([f("buy", "1", "100"), f("buy", "1", "200")]) == Decimal("150")
    assert entry_price([f("buy", "2", "100"), f("sell", "1", "300")]) == Decimal("100")
    assert entry_price([f("buy", "1", "100"), f("sell", "1", "120")]) is None
    assert entry_price([f("buy", "1", "100"), f("sell", "3", "120")]) == Decimal("120")
