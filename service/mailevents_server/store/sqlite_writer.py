"""The SQLite store's writer: one plain sqlite3 connection on one dedicated thread.

Every write transaction is a single call into that thread: BEGIN, the
duplicate lookups, the inserts and COMMIT run there back to back. Awaiting
each statement in turn (as aiosqlite would have it) costs a thread hop per
statement, and under load each hop waits for the GIL behind whatever the event
loop is doing, up to the interpreter's 5 ms switch interval: a 1,000-event
commit took ~150 ms that way, against ~20 ms of SQLite work.

The inserts are one `executemany`. Multi-row INSERT statements (512 rows
each) were tried so that the GIL would be released for longer stretches, but
SQLite 3.40 runs a long VALUES list as a co-routine: ~5 µs an event more CPU,
and CPU, not the GIL, is what the write path runs short of on two cores.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from mailevents_server import wire
from mailevents_server.query.fields import DATA_COLUMNS
from mailevents_server.store.base import Outcome, WriteResult
from mailevents_server.store.group_commit import WriteRequest
from mailevents_server.store.sqlite_schema import MIGRATIONS

T = TypeVar("T")

INSERT = (
    f"INSERT INTO events (id, tenant_id, {', '.join(DATA_COLUMNS)}, data) "
    f"VALUES ({', '.join('?' for _ in range(len(DATA_COLUMNS) + 3))})"
)

#: The highest id ever given: the last event's, or the one retention recorded
#: before deleting it.
HIGHEST_ID = (
    "SELECT max(coalesce((SELECT max(id) FROM events), 0), "
    "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor'), 0))"
)

#: Rows one retention batch deletes: small enough to keep each commit short.
DELETE_BATCH = 2000

#: Event ids looked up per duplicate-check statement.
_LOOKUP_CHUNK = 500

#: WAL pages before a commit checkpoints them into the database file (SQLite's
#: default is 1,000). Each index of a busy table dirties pages all over it, so a
#: 1,000-event commit writes some 2,000 pages and checkpointed after every
#: commit; at 10,000 (a WAL of up to ~40 MB) a page rewritten by consecutive
#: commits is copied once, and a commit costs ~15% less wall time.
WAL_AUTOCHECKPOINT_PAGES = 10_000


@dataclass
class DeleteRequest(WriteRequest):
    """One small retention batch (one tenant), queued like a write so ingest interleaves."""

    cutoff_us: int = 0
    deleted: int = 0


class Writer:
    """The writing connection and the one thread that uses it."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @classmethod
    async def open(
        cls, path: str, synchronous: str, setup: Callable[[sqlite3.Connection], None]
    ) -> Writer:
        """Connect on the writer thread; `setup` registers the SQL functions readers have."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout = 10000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
                setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, self._conn, *args))

    async def close(self) -> None:
        # No PRAGMA optimize: statistics follow sqlite_statistics's rules.
        try:
            await self.run(sqlite3.Connection.close)
        finally:
            self._executor.shutdown(wait=True)


def transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    """`work()` inside BEGIN IMMEDIATE ... COMMIT, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already: on SQLITE_FULL, IOERR or BUSY it
        # can end the whole transaction itself, and a ROLLBACK then fails with
        # "cannot rollback - no transaction is active", hiding the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def migrate(conn: sqlite3.Connection, path: str, log: Callable[[str], None]) -> None:
    """Apply the migrations this database has not had yet, in one transaction."""

    def work() -> None:
        row = conn.execute("PRAGMA user_version").fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"{path} has schema version {version}, newer than this "
                f"mailevents ({len(MIGRATIONS)}); upgrade mailevents"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log(f"applying schema migration {number} to {path}")
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('token_secret', ?)",
            (secrets.token_bytes(32),),
        )

    transaction(conn, work)


def highest_id(conn: sqlite3.Connection) -> int:
    row = conn.execute(HIGHEST_ID).fetchone()
    return int(row[0]) if row else 0


def skip_ids(conn: sqlite3.Connection, count: int) -> int:
    """Record a highest id `count` past the current one (see `Store.skip_positions`)."""

    def work() -> int:
        floor = highest_id(conn) + count
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('id_floor', ?)", (floor,))
        return floor

    return transaction(conn, work)


def commit(
    conn: sqlite3.Connection, batch: Sequence[WriteRequest], next_id: int
) -> tuple[list[list[WriteResult]], int]:
    """One group commit: each request's results, and the next id to give."""

    def work() -> list[list[WriteResult]]:
        nonlocal next_id
        all_results: list[list[WriteResult]] = []
        rows: list[tuple[Any, ...]] = []
        # Ids given earlier in this transaction: a producer's re-sent batch
        # may share a commit with the original, before either is inserted.
        pending: dict[tuple[int, str], int] = {}
        for req in batch:
            if isinstance(req, DeleteRequest):
                req.deleted = delete_batch(conn, req.tenant_id, req.cutoff_us)
                all_results.append([])
                continue
            tenant_id = req.tenant_id
            existing = _existing_ids(conn, tenant_id, {ev.event_id for ev in req.events})
            results: list[WriteResult] = []
            for ev in req.events:
                known = existing.get(ev.event_id) or pending.get((tenant_id, ev.event_id))
                if known is not None:
                    results.append(WriteResult(ev.index, ev.event_id, Outcome.DUPLICATE, known))
                    continue
                new_id = next_id
                next_id += 1
                pending[(tenant_id, ev.event_id)] = new_id
                rows.append((new_id, tenant_id, *ev.columns, wire.stored_event(new_id, ev.body)))
                results.append(WriteResult(ev.index, ev.event_id, Outcome.STORED, new_id))
            all_results.append(results)
        conn.executemany(INSERT, rows)  # not multi-row INSERTs: see the module docstring
        return all_results

    results = transaction(conn, work)
    return results, next_id


def _existing_ids(conn: sqlite3.Connection, tenant_id: int, event_ids: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    keys = list(event_ids)
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        found.update(
            conn.execute(
                f"SELECT event_id, id FROM events WHERE tenant_id = ? AND event_id IN ({marks})",
                (tenant_id, *chunk),
            )
        )
    return found


def delete_batch(conn: sqlite3.Connection, tenant_id: int, cutoff_us: int) -> int:
    """Delete up to DELETE_BATCH of a tenant's events older than the cutoff."""
    # Ids are never handed out twice: remember the highest before it may
    # be deleted, since the next id on start comes from it (HIGHEST_ID).
    conn.execute(f"INSERT OR REPLACE INTO meta (key, value) VALUES ('id_floor', ({HIGHEST_ID}))")
    # The batch is the tenant's oldest rows, in (tenant_id, ts) index order:
    # the same rows for both statements of this transaction.
    batch = "SELECT id FROM events WHERE tenant_id = ? AND ts < ? LIMIT ?"
    params = (tenant_id, cutoff_us, DELETE_BATCH)
    conn.execute(
        "INSERT INTO meta (key, value) "
        f"SELECT ?, m FROM (SELECT max(id) AS m FROM ({batch})) WHERE m IS NOT NULL "
        "ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), excluded.value)",
        (retention_floor_key(tenant_id), *params),
    )
    cur = conn.execute(f"DELETE FROM events WHERE id IN ({batch})", params)
    return int(cur.rowcount)


def retention_floor_key(tenant_id: int) -> str:
    """The meta row of a tenant's retention floor (see `Store.retention_floor`)."""
    return f"retention_floor:{tenant_id}"
