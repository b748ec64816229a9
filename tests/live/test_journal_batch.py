"""Journal batches: a sync pass commits once (and without waiting for the disk), a batch is all or
nothing (an exception or a kill -9 inside it leaves none of its writes), and the write-ahead rule
still holds: when the exchange is asked for an order (or a cancel), the journal file already holds
it as `submitted` (`cancel_requested`), committed with an fsync, as another connection sees it."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest

from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.execution.journal import Journal, JournalError
from ztb_core.live.execution.orders import CANCEL_REQUESTED, FILLED, NEW, OPEN, SUBMITTED, Fill, Order

AMOUNT = Decimal("0.01")


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "live.sqlite", "live", "coincheck", "BTC/JPY")
    yield j
    j.close()


def _fill(trade_id: str) -> Fill:
    return Fill(trade_id, None, None, "buy", AMOUNT, Decimal("1000000"), Decimal(0), "JPY", 1)


def _rows(path) -> dict[str, int]:
    """What another connection (a restart, the console) reads from the journal file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("orders", "fills", "kv")}
    finally:
        db.close()


def _write_then_fail(journal: Journal) -> None:
    """A batch that records an order, a fill and a state value, then fails."""
    with pytest.raises(RuntimeError, match="boom"), journal.batch():
        journal.record_submission(Order.create("BTC/JPY", "buy", AMOUNT, Decimal("100")))
        journal.record_fill(_fill("t1"))
        assert journal.position() == AMOUNT  # visible inside the batch (the position cache too)
        journal.set_state("k", 1)
        raise RuntimeError("boom")


def test_a_failed_batch_leaves_none_of_its_writes(journal):
    before, commits = _rows(journal.path), journal.commits
    _write_then_fail(journal)
    assert _rows(journal.path) == before == {"orders": 0, "fills": 0, "kv": 0}
    # the handle that wrote them forgets them too: no cached fill survives the rollback
    assert journal.orders() == [] and journal.fills() == [] and journal.position() == 0
    assert journal.get_state("k") is None and journal.commits == commits
    # and the journal is usable afterwards: the next batch commits, once
    with journal.batch():
        journal.record_fill(_fill("t2"))
        journal.set_state("k", 2)
    assert _rows(journal.path) == {"orders": 0, "fills": 1, "kv": 1} and journal.commits == commits + 1


def test_positive_control_writes_outside_a_transaction_are_caught(journal, monkeypatch):
    """If `batch()` grouped nothing (each write its own transaction, as before batches), the check
    above would find the writes made before the failure."""
    monkeypatch.setattr(Journal, "batch", lambda self, **kw: contextlib.nullcontext())
    _write_then_fail(journal)
    assert _rows(journal.path) == {"orders": 1, "fills": 1, "kv": 1}


def test_a_nested_batch_is_all_or_nothing_inside_the_outer_one(journal):
    commits = journal.commits
    with journal.batch():
        journal.record_fill(_fill("outer"))
        with pytest.raises(RuntimeError), journal.batch():
            journal.record_fill(_fill("inner"))
            raise RuntimeError("inner fails")
        # a single write that fails inside a batch undoes itself only
        o = journal.record_submission(Order.create("BTC/JPY", "buy", AMOUNT, Decimal("100")))
        with pytest.raises(JournalError, match="already journaled"):
            journal.record_submission(dataclasses.replace(o, state=NEW))
        assert journal.in_transaction and _rows(journal.path)["fills"] == 0  # nothing committed yet
    assert [f.trade_id for f in journal.fills()] == ["outer"] and len(journal.orders()) == 1
    assert _rows(journal.path) == {"orders": 1, "fills": 1, "kv": 0} and journal.commits == commits + 1


def test_keep_on_commits_the_writes_made_before_such_a_failure(journal):
    """A reconciliation pass whose exchange read fails half-way keeps what it recorded (any prefix of
    a pass is a consistent journal); other exceptions still roll the batch back."""
    with pytest.raises(TimeoutError), journal.batch(keep_on=(TimeoutError,), fsync=False):
        journal.record_fill(_fill("kept"))
        raise TimeoutError("exchange read timed out")
    with pytest.raises(ValueError), journal.batch(keep_on=(TimeoutError,), fsync=False):
        journal.record_fill(_fill("dropped"))
        raise ValueError("a bug")
    assert [f.trade_id for f in journal.fills()] == ["kept"] and _rows(journal.path)["fills"] == 1


@pytest.mark.parametrize("fails", [False, True], ids=["committed", "rolled-back"])
def test_the_write_after_an_unsynced_batch_waits_for_the_disk_again(journal, fails):
    """`fsync=False` holds for its own batch only: the submission after it is committed with
    synchronous=FULL (an fsync of the WAL, which carries the batch before it to the disk too)."""
    with contextlib.suppress(RuntimeError), journal.batch(fsync=False):
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL inside
        journal.record_fill(_fill("t1"))
        if fails:
            raise RuntimeError("boom")
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    fsyncs = journal.fsyncs
    journal.record_submission(Order.create("BTC/JPY", "buy", AMOUNT, Decimal("100")))
    assert journal.fsyncs == fsyncs + 1


def test_unchanged_values_are_not_written_again(journal):
    journal.set_state("risk", {"a": 1})
    o = journal.record_submission(Order.create("BTC/JPY", "buy", AMOUNT, Decimal("100")))
    commits = journal.commits
    journal.set_state("risk", {"a": 1})
    assert journal.save(o, o) == o
    assert journal.commits == commits and len(journal.transitions(o.client_id)) == 2
    journal.set_state("risk", {"a": 2})
    assert journal.commits == commits + 1 and journal.get_state("risk") == {"a": 2}


KILLED_CHILD = r"""
import os, signal, sys
from decimal import Decimal
from ztb_core.live.execution.journal import Journal
from ztb_core.live.execution.orders import Fill, Order

path, where = sys.argv[1], sys.argv[2]
j = Journal(path, "live", "coincheck", "BTC/JPY")
fill = lambda t: Fill(t, None, None, "buy", Decimal("0.01"), Decimal("1000000"), Decimal(0), "JPY", 1)
with j.batch(fsync=False):  # a sync pass, committed without waiting for the disk
    j.record_fill(fill("committed"))
    j.set_state("fills_cursor", "committed")
with j.batch():
    j.record_submission(Order.create("BTC/JPY", "buy", Decimal("0.01"), Decimal("100")))
    j.record_fill(fill("in-flight"))
    j.set_state("fills_cursor", "in-flight")
    if where == "inside":
        os.kill(os.getpid(), signal.SIGKILL)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("where", ["inside", "after"])
def test_kill9_inside_a_batch_leaves_none_of_it(tmp_path, subprocess_env, where):
    path = tmp_path / "live.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(path), where], env=subprocess_env, capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Journal(path, "live", "coincheck", "BTC/JPY") as j:
        # the batch committed without an fsync survives the process (a kill is not a power cut)
        if where == "inside":
            assert [f.trade_id for f in j.fills()] == ["committed"] and j.orders() == []
            assert j.get_state("fills_cursor") == "committed"
        else:
            assert [f.trade_id for f in j.fills()] == ["committed", "in-flight"]
            assert [o.state for o in j.orders()] == [SUBMITTED] and j.get_state("fills_cursor") == "in-flight"


class WriteAheadChecker:
    """Wraps a venue: when an order or a cancel arrives, reads the journal FILE from a connection of
    its own (a restart after a kill -9 would see exactly this) and notes what it found."""

    def __init__(self, venue, journal: Journal) -> None:
        self.venue, self.journal = venue, journal
        self.seen: list[tuple[str, str | None, bool]] = []  # (call, state in the file, batch open)

    def _state_in_file(self, where: str, value: str) -> str | None:
        db = sqlite3.connect(f"file:{self.journal.path}?mode=ro", uri=True)
        try:
            row = db.execute(f"SELECT state FROM orders WHERE {where}=?", (value,)).fetchone()
        finally:
            db.close()
        return row[0] if row else None

    def create_limit_order(self, side, amount, price, client_id, symbol=None):
        self.seen.append(("create", self._state_in_file("client_id", client_id), self.journal.in_transaction))
        return self.venue.create_limit_order(side, amount, price, client_id, symbol)

    def cancel_order(self, exchange_id, symbol=None):
        self.seen.append(("cancel", self._state_in_file("exchange_id", exchange_id), self.journal.in_transaction))
        return self.venue.cancel_order(exchange_id, symbol)

    def __getattr__(self, name):
        return getattr(self.venue, name)


def test_an_order_and_a_cancel_are_committed_before_the_exchange_hears_of_them(exchange_adapter, journal):
    venue = WriteAheadChecker(exchange_adapter, journal)
    m = OrderManager(venue, journal, "BTC/JPY")
    m.reconcile()  # a sync pass first, as the runner does: its batch must not hold the order back
    resting = m.place("buy", AMOUNT, (exchange_adapter.fetch_ticker().last * Decimal("0.95")).quantize(Decimal(1)))
    fsyncs = journal.fsyncs
    m.cancel_all()
    assert journal.fsyncs > fsyncs  # the cancel request waited for the disk
    assert venue.seen == [("create", SUBMITTED, False), ("cancel", CANCEL_REQUESTED, False)]
    assert journal.get(resting.client_id).state != OPEN


def test_positive_control_an_order_sent_inside_a_batch_is_caught(exchange_adapter, journal, monkeypatch):
    """An order placed inside an open batch would reach the exchange before the file holds it: the
    broker refuses; with that refusal removed, the checker above sees the missing row."""
    venue = WriteAheadChecker(exchange_adapter, journal)
    m = OrderManager(venue, journal, "BTC/JPY")
    price = (exchange_adapter.fetch_ticker().last * Decimal("0.95")).quantize(Decimal(1))
    with pytest.raises(JournalError, match="write-ahead"), journal.batch():
        m.place("buy", AMOUNT, price)
    assert venue.seen == [] and journal.orders() == []
    monkeypatch.setattr(Journal, "require_on_disk", lambda self, what: None)
    with journal.batch():
        m.place("buy", AMOUNT, price)
    assert venue.seen == [("create", None, True)]  # the exchange had the order; the file did not


def test_a_sync_pass_commits_once_without_its_own_fsync(exchange_adapter, journal):
    """Two fills of two orders, their order states, the fill cursor and the order watermark: one
    commit, and no fsync on the decision's path until the next submission (which carries it)."""
    m = OrderManager(exchange_adapter, journal, "BTC/JPY")
    ask = exchange_adapter.fetch_ticker().ask
    first, second = (m.place("buy", AMOUNT, ask + 1000) for _ in range(2))  # marketable: fill at once
    commits, fsyncs = journal.commits, journal.fsyncs
    report = m.reconcile()
    assert len(report.new_fills) == 2 and journal.position() == 2 * AMOUNT
    assert {journal.get(o.client_id).state for o in (first, second)} == {FILLED}
    assert (journal.commits - commits, journal.fsyncs - fsyncs) == (1, 0)
    m.reconcile()  # nothing new at the exchange: nothing written
    assert (journal.commits - commits, journal.fsyncs - fsyncs) == (1, 0)
    assert _rows(journal.path)["fills"] == 2  # committed: another connection reads them
