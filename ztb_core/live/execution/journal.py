"""The order journal: a SQLite file (WAL, synchronous=FULL) holding every order intent, every state
transition, every fill and the risk state, so a restart (even after kill -9) knows exactly what was
asked of the exchange and what came of it.

Write-ahead rule (enforced by `broker.OrderManager`): an order is journaled as `new`, then moved to
`submitted` and committed *before* the exchange call; the outcome is written after it. A process
killed in between leaves a `submitted` order, which `reconcile` resolves against the exchange's
open orders and recent fills before any new order may be placed. Fills are keyed by the exchange's
trade id, so recording one twice is a no-op and a fill is never counted twice.

A journal belongs to one mode (`paper` or `live`) and one exchange/symbol; opening it for another
raises, so a dry run can never mix its simulated orders into the real book.
"""
# Over 600 lines on purpose: the schema and every transaction that touches the books stay in one file, so one reader can check all writes to money state together.

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...errors import ZtbError
from .orders import LIVE, NEW, REJECTED, SUBMITTED, UNRESOLVED, Fill, Order, now_ms

SCHEMA_VERSION = 1

#: the journal key under which the risk manager keeps its state (breakers, daily halt, counters)
RISK_STATE_KEY = "risk_state"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL, amount TEXT NOT NULL,
    price TEXT NOT NULL, state TEXT NOT NULL, exchange_id TEXT, filled TEXT NOT NULL, avg_price TEXT,
    created_ms INTEGER NOT NULL, submitted_ms INTEGER, updated_ms INTEGER NOT NULL, reason TEXT,
    reduce_only INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS orders_exchange_id ON orders(exchange_id) WHERE exchange_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_state ON orders(state);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
    time_ms INTEGER NOT NULL, detail TEXT);
CREATE INDEX IF NOT EXISTS transitions_client ON transitions(client_id);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY, client_id TEXT, exchange_order_id TEXT, side TEXT NOT NULL, amount TEXT NOT NULL,
    price TEXT NOT NULL, fee TEXT NOT NULL, fee_currency TEXT, time_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS fills_client ON fills(client_id);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL);
"""


class JournalError(ZtbError):
    """The journal file is unusable, belongs to another mode/market, or disagrees with a write."""


class JournalWriteError(JournalError):
    """A journal write failed (disk full, I/O error): the session must stop placing orders."""


class JournalLock:
    """One process per journal: an exclusive `flock` on `<journal>.lock`, which holds the owner's pid
    (the kernel drops the lock when the process dies, kill -9 included, so no stale lock remains).
    The lock file sits beside the RESOLVED journal path: a symlink to the journal (or a path through a
    symlinked folder) takes the same lock as the file itself, so two processes cannot share one
    journal under two names. A hard link is the same file under a name the path cannot tell, so the
    journal file itself is `flock`ed too (flock and SQLite's own POSIX locks do not interact on a
    local file system); a journal not created yet is created empty (SQLite's empty database)."""

    def __init__(self, journal_path: str | Path) -> None:
        self.journal = Path(journal_path)
        real = self.journal.expanduser().resolve()  # follows symlinks, also to a journal not yet created
        self.real = real
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None
        self._file_fd: int | None = None

    def acquire(self) -> JournalLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JournalError(
                f"{self.journal}: in use by another ztb live process (pid {holder}); only one process may "
                "use a journal at a time: stop that one first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        try:
            self._lock_file()
        except BaseException:
            self.release()
            raise
        return self

    def _lock_file(self) -> None:
        """The journal file's own lock: the one a hard link to it shares."""
        fd = os.open(self.real, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(
                f"{self.journal}: in use by another ztb live process under another name (a hard link to the "
                "same file); only one process may use a journal at a time: stop that one first"
            ) from None
        self._file_fd = fd

    def release(self) -> None:
        if self._file_fd is not None:
            fcntl.flock(self._file_fd, fcntl.LOCK_UN)
            os.close(self._file_fd)
            self._file_fd = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JournalLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _d(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


def _row_order(row: sqlite3.Row) -> Order:
    return Order(
        client_id=row["client_id"],
        symbol=row["symbol"],
        side=row["side"],
        amount=Decimal(row["amount"]),
        price=Decimal(row["price"]),
        state=row["state"],
        exchange_id=row["exchange_id"],
        filled=Decimal(row["filled"]),
        avg_price=_d(row["avg_price"]),
        created_ms=row["created_ms"],
        submitted_ms=row["submitted_ms"],
        updated_ms=row["updated_ms"],
        reason=row["reason"],
        reduce_only=bool(row["reduce_only"]),
    )


def _row_fill(row: sqlite3.Row) -> Fill:
    return Fill(
        trade_id=row["trade_id"],
        client_id=row["client_id"],
        exchange_order_id=row["exchange_order_id"],
        side=row["side"],
        amount=Decimal(row["amount"]),
        price=Decimal(row["price"]),
        fee=Decimal(row["fee"]),
        fee_currency=row["fee_currency"] or "",
        time_ms=row["time_ms"],
    )


class Journal:
    """One SQLite journal file. Every write is its own committed transaction (fsynced by
    synchronous=FULL) before the method returns, unless it is made inside `batch()`: then it is
    committed with the batch, all of the batch or none of it."""

    def __init__(self, path: str | Path, mode: str, exchange: str, symbol: str) -> None:
        if mode not in ("paper", "live"):
            raise JournalError(f"journal mode must be paper or live, got {mode!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.mode, self.exchange, self.symbol = mode, exchange, symbol
        self._lock = threading.RLock()
        #: why writes are refused after a failed one (None while the journal is healthy)
        self.write_failed: str | None = None
        # every fill, oldest first, read once and dropped when a fill is added: position, cash flow
        # and entry price are asked several times per bar, and one process owns the journal (lock)
        self._all_fills: list[Fill] | None = None
        self._depth = 0  # open write units: 0 none, 1 a transaction, more: savepoints inside it
        self._owner: int | None = None  # the thread whose write units are open (it holds the lock)
        #: write transactions committed through this handle that changed something, and how many of
        #: them waited for the disk (an fsync each; `batch(fsync=False)` does not)
        self.commits = self.fsyncs = 0
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable SQLite journal ({exc})") from None
        self._check_identity()

    # ---- lifecycle -------------------------------------------------------------------------
    def _check_identity(self) -> None:
        want = {"schema": str(SCHEMA_VERSION), "mode": self.mode, "exchange": self.exchange, "symbol": self.symbol}
        with self._lock:
            have = {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM meta")}
            if not have:
                with self._tx() as db:
                    db.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", list(want.items()))
                return
        for key, value in want.items():
            if have.get(key) != value:
                raise JournalError(
                    f"{self.path}: this journal is for {key}={have.get(key)!r}, not {value!r}; "
                    f"use a separate journal.path per mode and market"
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    class _Tx:
        """One write unit. The outermost one is a transaction (BEGIN IMMEDIATE ... COMMIT, one
        fsync when it changed anything); one opened inside it (a journal method called within a
        `batch()`, or a nested batch) is a SAVEPOINT, so it stays all-or-nothing on its own and
        commits with the outermost. The journal's lock is held from start to end: no other thread
        reads or writes through this connection while a transaction is open. `keep_on`: exception
        types that still commit the writes made so far (outermost only). `fsync=False` (outermost
        only): committed without its own fsync (synchronous=NORMAL for this transaction), see
        `batch`."""

        def __init__(self, journal: Journal, keep_on: tuple[type[BaseException], ...] = (), fsync: bool = True) -> None:
            self.j = journal
            self.keep_on = keep_on
            self.fsync = fsync
            self.savepoint: str | None = None
            self.changes_at_begin = 0

        def __enter__(self) -> sqlite3.Connection:
            if self.j.write_failed is not None:
                raise JournalWriteError(self.j.write_failed)
            self.j._lock.acquire()
            try:
                if self.j._depth:
                    self.savepoint = f"w{self.j._depth}"
                    self.j._db.execute(f"SAVEPOINT {self.savepoint}")
                else:
                    if not self.fsync:
                        self.j._db.execute("PRAGMA synchronous=NORMAL")
                    self.j._db.execute("BEGIN IMMEDIATE")
                    self.changes_at_begin = self.j._db.total_changes
            except BaseException:
                if self.savepoint is None and not self.fsync:
                    self.j._db.execute("PRAGMA synchronous=FULL")  # the next write waits for the disk again
                self.j._lock.release()
                raise
            self.j._depth += 1
            self.j._owner = threading.get_ident()
            return self.j._db

        def __exit__(self, exc_type, exc, tb) -> None:
            self.j._depth -= 1
            try:
                if self.savepoint is not None:
                    exc = self._end_savepoint(exc_type, exc)
                else:
                    exc = self._end_transaction(exc_type, exc)
            finally:
                self.j._lock.release()
            if isinstance(exc, sqlite3.OperationalError):
                # a journal that cannot record what is asked of the exchange must stop trading:
                # every later write (so every new order) is refused with the same message
                self.j.write_failed = (
                    f"{self.j.path}: journal write failed ({exc}); no order is placed while the journal "
                    "cannot record it. Free disk space and restart: reconciliation resolves the last order"
                )
                raise JournalWriteError(self.j.write_failed) from exc

        def _end_savepoint(self, exc_type, exc):
            try:
                if exc_type:
                    self.j._all_fills = None  # the cache may hold rows this rollback removes
                    self.j._db.execute(f"ROLLBACK TO {self.savepoint}")
                self.j._db.execute(f"RELEASE {self.savepoint}")
            except sqlite3.OperationalError as end_exc:
                if exc is None:
                    exc = end_exc
            return exc

        def _end_transaction(self, exc_type, exc):
            keep = exc_type is None or issubclass(exc_type, self.keep_on)
            if not keep:
                self.j._all_fills = None
            try:
                self.j._db.execute("COMMIT" if keep else "ROLLBACK")
                if keep and self.j._db.total_changes != self.changes_at_begin:
                    self.j.commits += 1
                    self.j.fsyncs += int(self.fsync)
            except sqlite3.OperationalError as end_exc:
                # a failed COMMIT (disk full at fsync) leaves the transaction open; a failed
                # ROLLBACK means SQLite already rolled back on the failed write
                self.j._all_fills = None
                if exc is None:
                    exc = end_exc
                    try:
                        self.j._db.execute("ROLLBACK")
                    except sqlite3.OperationalError:
                        pass  # no transaction left to roll back: SQLite ended it with the failed COMMIT
            finally:
                if not self.fsync:
                    try:
                        self.j._db.execute("PRAGMA synchronous=FULL")
                    except sqlite3.OperationalError as pragma_exc:
                        exc = exc or pragma_exc
            return exc

    def _tx(self) -> Journal._Tx:
        return Journal._Tx(self)

    def batch(self, keep_on: tuple[type[BaseException], ...] = (), fsync: bool = True) -> Journal._Tx:
        """Group writes into one transaction: one fsync for a whole sync pass instead of one per
        write. Every journal write inside commits with the batch, or none does: an exception rolls
        the batch back (`keep_on`: exception types that commit the writes made so far, for work
        where any prefix is a state the journal may be left in, like a reconciliation pass whose
        exchange read failed half-way); a kill -9 before the end leaves none of it. Batches nest
        (an inner one is a savepoint). Never send anything to the exchange inside a batch:
        `require_on_disk` refuses, since the write-ahead rule needs each write durable before the
        call it announces.

        `fsync=False`, for writes that only record what the exchange already said (a reconciliation
        pass: fills, order states, cursors, all read again from the exchange by the next pass): the
        batch is committed without waiting for the disk (synchronous=NORMAL for this one
        transaction). A killed process loses none of it (the data is in the operating system's
        cache); a power cut may lose it, and then only with every later commit, never an earlier one
        (the WAL keeps commit order), and the next fsynced commit (an order's submission or cancel
        request, the write-ahead writes) makes it durable first. So an order is never sent on a
        position the disk does not hold, and the decision's path pays one fsync instead of two."""
        return Journal._Tx(self, keep_on, fsync)

    @property
    def in_transaction(self) -> bool:
        """A batch (or write) is open: what was written in it is not on disk yet."""
        return self._depth > 0

    def require_on_disk(self, what: str) -> None:
        """The write-ahead check before an exchange call: refuse while a batch is open, because
        the journal's record of `what` would not be committed before the call goes out."""
        if self._depth and self._owner == threading.get_ident():
            raise JournalError(
                f"{what}: the journal has an open batch, so its record would not be on disk before the exchange "
                "call; end the batch first (the write-ahead rule)"
            )

    # ---- orders ----------------------------------------------------------------------------
    def _write_order(self, db: sqlite3.Connection, o: Order) -> None:
        db.execute(
            "INSERT OR REPLACE INTO orders(client_id, symbol, side, amount, price, state, exchange_id, filled, avg_price,"
            " created_ms, submitted_ms, updated_ms, reason, reduce_only) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                o.client_id,
                o.symbol,
                o.side,
                str(o.amount),
                str(o.price),
                o.state,
                o.exchange_id,
                str(o.filled),
                None if o.avg_price is None else str(o.avg_price),
                o.created_ms,
                o.submitted_ms,
                o.updated_ms,
                o.reason,
                int(o.reduce_only),
            ),
        )

    def record_intent(self, order: Order, detail: dict | None = None) -> Order:
        """Journal a new order (state `new`) before anything is sent."""
        if order.state != NEW:
            raise JournalError(f"order {order.client_id}: an intent must be in state new, not {order.state}")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM orders WHERE client_id=?", (order.client_id,)).fetchone():
                raise JournalError(f"order {order.client_id}: client id already journaled")
            self._write_order(db, order)
            self._write_transition(db, order.client_id, None, NEW, detail)
        return order

    def record_submission(self, order: Order, detail: dict | None = None) -> Order:
        """Journal a new order as intent and `submitted` in one fsynced transaction: the state the
        write-ahead rule needs before the exchange call, at the cost of one disk flush, not two."""
        submitted = order.transition(SUBMITTED)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM orders WHERE client_id=?", (order.client_id,)).fetchone():
                raise JournalError(f"order {order.client_id}: client id already journaled")
            self._write_order(db, submitted)
            self._write_transition(db, order.client_id, None, NEW, detail)
            self._write_transition(db, order.client_id, NEW, SUBMITTED, None)
        return submitted

    def _write_transition(
        self, db: sqlite3.Connection, client_id: str, old: str | None, new: str, detail: dict | None
    ) -> None:
        db.execute(
            "INSERT INTO transitions(client_id, from_state, to_state, time_ms, detail) VALUES (?,?,?,?,?)",
            (client_id, old, new, now_ms(), json.dumps(detail, default=str) if detail else None),
        )

    def save(self, before: Order, after: Order, detail: dict | None = None) -> Order:
        """Persist `after` (the next version of `before`), refusing if the journal no longer holds
        `before` — two writers disagreeing about an order is a bug, never silently resolved."""
        with self._tx() as db:
            row = db.execute("SELECT state, filled FROM orders WHERE client_id=?", (before.client_id,)).fetchone()
            if row is None:
                raise JournalError(f"order {before.client_id}: not in the journal")
            if row["state"] != before.state or Decimal(row["filled"]) != before.filled:
                raise JournalError(
                    f"order {before.client_id}: journal holds state {row['state']} filled {row['filled']},"
                    f" expected {before.state} filled {before.filled}"
                )
            if after == before and not detail:
                return after  # nothing to record: a re-save of the same version is not written
            self._write_order(db, after)
            if after.state != before.state or detail:
                self._write_transition(db, after.client_id, before.state, after.state, detail)
        return after

    def transition(self, order: Order, state: str, detail: dict | None = None, **changes: Any) -> Order:
        """Validate and persist `order` moving to `state`; returns the new version."""
        return self.save(order, order.transition(state, **changes), detail)

    def get(self, client_id: str) -> Order | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM orders WHERE client_id=?", (client_id,)).fetchone()
        return _row_order(row) if row else None

    def by_exchange_id(self, exchange_id: str) -> Order | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM orders WHERE exchange_id=?", (str(exchange_id),)).fetchone()
        return _row_order(row) if row else None

    def orders(self, states: Iterable[str] | None = None) -> list[Order]:
        with self._lock:
            if states is None:
                rows = self._db.execute("SELECT * FROM orders ORDER BY created_ms, client_id").fetchall()
            else:
                st = list(states)
                rows = self._db.execute(
                    f"SELECT * FROM orders WHERE state IN ({','.join('?' * len(st))}) ORDER BY created_ms, client_id",
                    st,
                ).fetchall()
        return [_row_order(r) for r in rows]

    def live_orders(self) -> list[Order]:
        """Orders that may rest at the exchange (including unresolved ones)."""
        return self.orders(LIVE)

    def unresolved(self) -> list[Order]:
        """Orders whose placement outcome is not known (submitted or unknown)."""
        return self.orders(UNRESOLVED)

    def transitions(self, client_id: str | None = None) -> list[dict]:
        with self._lock:
            if client_id is None:
                rows = self._db.execute("SELECT * FROM transitions ORDER BY seq").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM transitions WHERE client_id=? ORDER BY seq", (client_id,)
                ).fetchall()
        return [dict(r) for r in rows]

    def known_exchange_ids(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT exchange_id FROM orders WHERE exchange_id IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    # ---- fills -----------------------------------------------------------------------------
    def record_fill(self, fill: Fill) -> bool:
        """Record a fill once; False when its trade id was already journaled."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO fills(trade_id, client_id, exchange_order_id, side, amount, price, fee,"
                " fee_currency, time_ms, recorded_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    str(fill.trade_id),
                    fill.client_id,
                    fill.exchange_order_id,
                    fill.side,
                    str(fill.amount),
                    str(fill.price),
                    str(fill.fee),
                    fill.fee_currency,
                    int(fill.time_ms),
                    now_ms(),
                ),
            )
            added = cur.rowcount == 1
        if added:
            with self._lock:
                self._all_fills = None
        return added

    def has_fill(self, trade_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM fills WHERE trade_id=?", (str(trade_id),)).fetchone() is not None

    def fills(self, client_id: str | None = None, since_ms: int | None = None) -> list[Fill]:
        if client_id is None and since_ms is None:
            with self._lock:
                if self._all_fills is None:
                    rows = self._db.execute("SELECT * FROM fills ORDER BY time_ms, trade_id").fetchall()
                    self._all_fills = [_row_fill(r) for r in rows]
                return list(self._all_fills)
        sql = "SELECT * FROM fills WHERE 1=1"
        args: list[str | int] = []
        if client_id is not None:
            sql += " AND client_id=?"
            args.append(client_id)
        if since_ms is not None:
            sql += " AND time_ms>=?"
            args.append(int(since_ms))
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY time_ms, trade_id", args).fetchall()
        return [_row_fill(r) for r in rows]

    def filled_of(self, client_id: str) -> tuple[Decimal, Decimal | None]:
        """(total filled amount, volume-weighted average price) of one order's fills."""
        fills = self.fills(client_id)
        total = sum((f.amount for f in fills), Decimal(0))
        if total == 0:
            return Decimal(0), None
        return total, sum((f.amount * f.price for f in fills), Decimal(0)) / total

    def orders_placed_since(self, since_ms: int) -> int:
        """Orders created since `since_ms` that the exchange took: they have an exchange id and were
        not rejected. An unknown outcome counts once it resolves to placed. Counted from the orders
        themselves, so a process killed between a placement and any counter cannot undercount."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM orders WHERE created_ms>=? AND exchange_id IS NOT NULL AND state!=?",
                (int(since_ms), REJECTED),
            ).fetchone()
        return int(row[0])

    def fills_summary(self, trade_ids: Iterable[str]) -> dict[str, Any]:
        """What a batch of newly recorded fills did, for a person (the `fills_summary` event that
        notifications send): count, amounts and average prices per side, fees, the position after."""
        wanted = {str(t) for t in trade_ids}
        fills = [f for f in self.fills() if f.trade_id in wanted]
        out: dict[str, Any] = {"fills": len(fills)}
        for side in ("buy", "sell"):
            mine = [f for f in fills if f.side == side]
            amount = sum((f.amount for f in mine), Decimal(0))
            out[f"{side}_amount"] = str(amount)
            out[f"{side}_avg_price"] = (
                str(sum((f.amount * f.price for f in mine), Decimal(0)) / amount) if amount else None
            )
        out["fees"] = str(sum((f.fee for f in fills), Decimal(0)))
        out["position"] = str(self.position())
        return out

    def position(self) -> Decimal:
        """Net base-currency position built by our fills (buys minus sells)."""
        return sum((f.signed_amount for f in self.fills()), Decimal(0))

    def cash_flow(self) -> Decimal:
        """Net quote currency received by our fills, fees included."""
        return sum((f.cash_flow for f in self.fills()), Decimal(0))

    # ---- key/value state (risk) ------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        """Store `value` under `key`; a value equal to the stored one is not written again (each
        write is an fsync on the decision's path, and `updated_ms` keeps the time of the change)."""
        text = json.dumps(value, default=str)
        with self._tx() as db:
            row = db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
            if row is not None and row[0] == text:
                return
            db.execute(
                "INSERT OR REPLACE INTO kv(key, value, updated_ms) VALUES (?,?,?)",
                (key, text, now_ms()),
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall()
            fills = self._db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        out = {r[0]: r[1] for r in rows}
        out["fills"] = fills
        return out


def read_snapshot(path: str | Path, fills_shown: int = 20) -> tuple[dict | None, list[dict], list[dict]]:
    """(risk state, orders that may rest at the exchange, the newest fills first) of a journal,
    opened read-only: a reader (the console) never writes the journal of a running loop, and
    SQLite's WAL lets it read while the loop writes. Raw rows, for display."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    try:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT value FROM kv WHERE key=?", (RISK_STATE_KEY,)).fetchone()
        risk = json.loads(row["value"]) if row else None
        states = sorted(LIVE)
        marks = ",".join("?" * len(states))
        orders = [
            dict(r) for r in db.execute(f"SELECT * FROM orders WHERE state IN ({marks}) ORDER BY created_ms", states)
        ]
        fills = [dict(r) for r in db.execute("SELECT * FROM fills ORDER BY time_ms DESC LIMIT ?", (fills_shown,))]
    finally:
        db.close()
    return risk if isinstance(risk, dict) else None, orders, fills
