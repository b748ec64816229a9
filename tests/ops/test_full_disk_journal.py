"""Item 7 for live trading: a journal write that fails (a full disk) stops order placement: the
failed write raises `JournalWriteError`, every later write is refused with the same message, and the
exchange is never asked for an order the journal could not record."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from ztb_core.live.execution.broker import OrderManager
from ztb_core.live.execution.journal import Journal, JournalWriteError
from ztb_core.live.execution.orders import Order


class RecordingVenue:
    def __init__(self):
        self.calls = []

    def create_limit_order(self, side, amount, price, client_id, symbol=None):
        self.calls.append(client_id)
        raise AssertionError("the exchange must not be called for an unjournaled order")

    def fetch_open_orders(self, symbol=None):
        return []

    def fetch_my_trades(self, symbol=None, since_ms=None, limit=None):
        return []


def _fill(fs, leave_bytes: int) -> None:
    import os

    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    (fs / "filler").write_bytes(b"\0" * max(0, free - leave_bytes))


def test_journal_on_a_full_filesystem_stops_order_placement(tiny_fs):
    journal = Journal(tiny_fs / "journal.sqlite", "paper", "emulator", "BTC/JPY")
    venue = RecordingVenue()
    mgr = OrderManager(venue, journal, "BTC/JPY")
    _fill(tiny_fs, 0)
    with pytest.raises(JournalWriteError, match=r"journal write failed .*full.*no order is placed"):
        for _ in range(200):  # the WAL may absorb a few rows before the disk says no
            journal.record_submission(Order.create("BTC/JPY", "buy", Decimal("0.01"), Decimal("100")))
    assert isinstance(journal.write_failed, str)
    with pytest.raises(JournalWriteError):
        mgr.place("buy", Decimal("0.01"), Decimal("100"))
    assert venue.calls == []
    journal.close()


def test_a_failed_commit_is_a_journal_write_error_and_sticks(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "j.sqlite", "paper", "emulator", "BTC/JPY")
    journal.record_submission(Order.create("BTC/JPY", "buy", Decimal("1"), Decimal("100")))

    class FullDb:
        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    real = journal._db
    monkeypatch.setattr(journal, "_db", FullDb(real))
    with pytest.raises(JournalWriteError, match="database or disk is full"):
        journal.record_submission(Order.create("BTC/JPY", "sell", Decimal("1"), Decimal("101")))
    monkeypatch.setattr(journal, "_db", real)  # even with the disk back, the session stays stopped
    with pytest.raises(JournalWriteError):
        journal.record_submission(Order.create("BTC/JPY", "sell", Decimal("1"), Decimal("102")))
    assert len(journal.orders()) == 1  # the failed order was rolled back, not half-written
    journal.close()
