"""The embedded default store: one SQLite file in WAL mode.

One writer connection commits batched transactions (many callers' batches per
commit, each caller awaiting its own result); readers have their own
connections and never block it. Each stream gets a dedicated connection so a
long export does not hold up short queries, and the next batch is read while
the current one is being sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiosqlite

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import faults
from mailevents_server.ingest import PreparedEvent
from mailevents_server.query import timeparts
from mailevents_server.query.model import Query
from mailevents_server.store import sqlite_sql, sqlite_writer
from mailevents_server.store.base import KEY_ID_LENGTH, KeyInfo, Row, Store, WriteResult
from mailevents_server.store.commits import CommitHub
from mailevents_server.store.group_commit import WriteRequest as _WriteRequest
from mailevents_server.store.group_commit import run_writer, submit
from mailevents_server.store.sqlite_writer import DELETE_BATCH, DeleteRequest, Writer

log = logging.getLogger(__name__)


def sqlite_path(url: str) -> str:
    """`sqlite:///path`, `sqlite://path` or a bare path -> the file path."""
    for prefix in ("sqlite:///", "sqlite://"):
        if url.startswith(prefix):
            return url[len(prefix) :] or ":memory:"
    return url


class SQLiteStore(Store):
    """SQLite via aiosqlite. `synchronous` is the PRAGMA: FULL survives power loss."""

    def __init__(self, path: str, *, readers: int = 4, synchronous: str = "FULL") -> None:
        self.path = sqlite_path(path)
        self._reader_count = readers
        self._synchronous = synchronous
        self._writer: Writer | None = None
        #: The pooled readers; None once closed (each waiter wakes, and raises).
        self._readers: asyncio.Queue[aiosqlite.Connection | None] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._queue: asyncio.Queue[_WriteRequest | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._next_id = 1
        #: The id from which the planner's statistics are checked again.
        self._check_statistics_at = 0
        self._statistics_task: asyncio.Task[None] | None = None
        self._commits = CommitHub()
        self._secret: bytes | None = None
        self.open_streams = 0
        #: Every aiosqlite connection this store opened and has not closed yet
        #: (pooled readers, streams' readers, admin connections).
        self._connections: set[aiosqlite.Connection] = set()
        #: Each connection's one close, started once (aiosqlite must not be
        #: closed twice: the second stop would wait for a thread already gone).
        self._closes: dict[aiosqlite.Connection, asyncio.Task[None]] = {}
        #: Opens, closes and pool refills in flight: close() waits for them all.
        self._background: set[asyncio.Future[Any]] = set()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        self._closed = False
        self._readers = asyncio.Queue()
        self._writer = await Writer.open(self.path, self._synchronous, _register_functions)
        try:
            await self._writer.run(sqlite_writer.migrate, self.path, log.info)
            self._next_id = await self._writer.run(sqlite_writer.highest_id) + 1
            await self._check_statistics()
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise
        self._commits.publish(self._next_id - 1)
        for _ in range(self._reader_count):
            self._readers.put_nowait(await self._open_connection())
        self._writer_task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        """Stop the writer, then close every connection this store opened.

        Returns only when each aiosqlite connection is closed and its thread
        has finished: a query left running (a cancelled caller's, a stream's)
        would otherwise answer an event loop that is gone ("Event loop is
        closed" on its thread) and leave its connection to the GC.
        """
        self._closed = True
        if self._writer_task is not None:
            await self._queue.put(None)  # drains what was queued before it
            await self._writer_task
            self._writer_task = None
        if self._statistics_task is not None:
            await asyncio.gather(self._statistics_task, return_exceptions=True)
        while self._connections or self._background:
            for conn in list(self._connections):
                self._close_connection(conn)
            await asyncio.gather(*self._background, return_exceptions=True)
        while not self._readers.empty():  # closed: no caller may get one
            self._readers.get_nowait()
        self._readers.put_nowait(None)  # wakes a waiter, which passes it on
        if self._writer is not None:
            await self._writer.close()
            self._writer = None

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def _open_connection(self, *, reader: bool = True) -> aiosqlite.Connection:
        """A new connection, opened in a task of its own that close() waits for.

        A caller cancelled meanwhile does not cancel the opening: the
        connection is closed once open instead of being leaked.
        """
        opening = asyncio.ensure_future(self._connect(reader=reader))
        self._track(opening)
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._close_when_opened)
            raise

    def _close_when_opened(self, opening: asyncio.Future[aiosqlite.Connection]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            self._close_connection(opening.result())

    async def _connect(self, *, reader: bool = True) -> aiosqlite.Connection:
        """A connection (read-only unless `reader` is false), tracked until closed."""
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn  # starts its thread
        except BaseException:
            # aiosqlite has queued the thread's stop: wait for the thread to end.
            await _join(conn)
            raise
        self._connections.add(conn)
        try:
            await conn.execute("PRAGMA busy_timeout = 10000")
            if reader:
                await conn.execute("PRAGMA query_only = 1")
                await conn.execute("PRAGMA mmap_size = 1073741824")
                await conn.execute("PRAGMA cache_size = -32768")
                for name, arity, function in _SQL_FUNCTIONS:
                    await conn.create_function(name, arity, function, deterministic=True)
            if self._closed:
                raise faults.StoreClosed("store is closed")
        except BaseException:
            await self._close_connection(conn)
            raise
        return conn

    def _close_connection(self, conn: aiosqlite.Connection) -> asyncio.Task[None]:
        """Close `conn` once, in a task close() waits for; awaiting it is optional.

        aiosqlite queues the close behind whatever the connection's thread is
        still running (a cancelled caller's query goes on there), so when the
        task is done no call of that thread is left to reach the event loop.
        """
        task = self._closes.get(conn)
        if task is None:
            task = asyncio.ensure_future(self._close_and_join(conn))
            self._closes[conn] = task
            self._track(task)
        return task

    async def _close_and_join(self, conn: aiosqlite.Connection) -> None:
        try:
            await conn.close()
        except Exception as exc:
            faults.log_failure(log, "closing a SQLite reader connection failed", exc)
        finally:
            await _join(conn)
            self._connections.discard(conn)
            self._closes.pop(conn, None)

    async def _release(self, conn: aiosqlite.Connection) -> None:
        """Close `conn`; a caller cancelled meanwhile leaves the close to close()."""
        await asyncio.shield(self._close_connection(conn))

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._readers.get()
        if conn is None:
            self._readers.put_nowait(None)
            raise faults.StoreClosed("store is closed")
        try:
            yield conn
        except asyncio.CancelledError:
            # A cancelled caller must not leave a long query running on a
            # connection the next caller will wait for. The interrupt would also
            # fail the next caller's statement (the cancelled statement stays
            # active in the connection's cache), so the connection is replaced:
            # closed once its thread is done with the query, and a new one
            # opened for the pool, both in tasks close() waits for. The
            # cancelled caller waits for neither.
            _interrupt(conn)
            self._close_connection(conn)
            self._track(asyncio.ensure_future(self._refill()))
            raise
        except BaseException:
            self._readers.put_nowait(conn)
            raise
        else:
            self._readers.put_nowait(conn)

    async def _refill(self) -> None:
        """One new reader in the pool, in place of one closed after a cancellation."""
        if self._closed:
            return
        try:
            conn = await self._connect()
        except Exception as exc:
            if not self._closed:
                faults.log_failure(log, "could not replace an interrupted reader connection", exc)
                # Callers wait for a reader: try again rather than shrink the pool.
                await asyncio.sleep(1.0)
                self._track(asyncio.ensure_future(self._refill()))
            return
        self._readers.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[aiosqlite.Connection]:
        """A short-lived writing connection for rare admin writes (keys).

        Not the event writer's connection: its transactions are the write
        queue's, and a key created meanwhile would collide with one in flight.
        SQLite's own lock (with busy_timeout) orders the two.
        """
        conn = await self._open_connection(reader=False)
        try:
            yield conn
        finally:
            await self._release(conn)

    # -- tenants and keys --------------------------------------------------

    async def secret(self) -> bytes:
        if self._secret is None:
            async with (
                self._reader() as conn,
                conn.execute("SELECT value FROM meta WHERE key = 'token_secret'") as cur,
            ):
                row = await cur.fetchone()
            assert row is not None, "migrations create the secret"
            self._secret = bytes(row[0])
        return self._secret

    async def tenant_for_key(self, key_hash: str) -> int | None:
        async with (
            self._reader() as conn,
            conn.execute("SELECT tenant_id FROM api_keys WHERE key_hash = ?", (key_hash,)) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def create_key(self, tenant: str, key_hash: str, label: str = "") -> int:
        now = int(time.time() * 1_000_000)
        async with self._admin() as conn:
            return await self._create_key(conn, tenant, key_hash, label, now)

    async def _create_key(
        self, conn: aiosqlite.Connection, tenant: str, key_hash: str, label: str, now: int
    ) -> int:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(
                "INSERT OR IGNORE INTO tenants (name, created_us) VALUES (?, ?)", (tenant, now)
            )
            async with conn.execute("SELECT id FROM tenants WHERE name = ?", (tenant,)) as cur:
                row = await cur.fetchone()
            assert row is not None
            tenant_id = int(row[0])
            await conn.execute(
                "INSERT INTO api_keys (key_hash, tenant_id, label, created_us) VALUES (?, ?, ?, ?)",
                (key_hash, tenant_id, label, now),
            )
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back itself
                await conn.execute("ROLLBACK")
            raise
        return tenant_id

    async def list_keys(self) -> list[KeyInfo]:
        async with self._reader() as conn:
            rows = await conn.execute_fetchall(
                "SELECT k.key_hash, t.name, k.label, k.created_us FROM api_keys k "
                "JOIN tenants t ON t.id = k.tenant_id ORDER BY t.name, k.created_us"
            )
        return [KeyInfo(h[:KEY_ID_LENGTH], t, label, c) for h, t, label, c in rows]

    async def revoke_key(self, key_id: str) -> int:
        if len(key_id) < KEY_ID_LENGTH:
            raise ValueError(f"a key id has at least {KEY_ID_LENGTH} characters")
        async with self._admin() as conn:
            cur = await conn.execute(
                "DELETE FROM api_keys WHERE substr(key_hash, 1, ?) = ?", (len(key_id), key_id)
            )
            return int(cur.rowcount)

    # -- writes ------------------------------------------------------------

    async def write(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[WriteResult]:
        if not events:
            return []
        return await submit(self._queue, self._writer_task, _WriteRequest(tenant_id, events))

    async def _write_loop(self) -> None:
        await run_writer(
            self._queue,
            self._commit,
            committed=lambda: self._commits.publish(self._next_id - 1),
            metrics=lambda: self.metrics,
            failed=self._reload_next_id,
        )

    async def _commit(self, batch: list[_WriteRequest]) -> list[list[WriteResult]]:
        results, self._next_id = await self._require_writer().run(
            sqlite_writer.commit, batch, self._next_id
        )
        if self._next_id >= self._check_statistics_at and self._statistics_task is None:
            self._statistics_task = asyncio.create_task(self._refresh_statistics())
        return results

    async def _check_statistics(self) -> None:
        """`refresh_statistics`, and when to check again."""
        check = await self._require_writer().run(sqlite_writer.refresh_statistics)
        if check.analyzed:
            log.info("refreshed the query planner's statistics (%d events)", check.rows)
            self.metrics.statistics_refreshes.inc()
        self._check_statistics_at = self._next_id + sqlite_writer.next_check_after(check.rows)

    async def _refresh_statistics(self) -> None:
        """Keep the planner's statistics as fresh while running as at open.

        Runs on the writer's thread between two commits (its executor takes
        one job at a time), after this commit's callers have their answer.
        """
        try:
            await self._check_statistics()
        except Exception as exc:
            faults.log_failure(log, "refreshing the query planner's statistics failed", exc)
            self._check_statistics_at = self._next_id + sqlite_writer.ANALYZE_FROM_ROWS
        finally:
            self._statistics_task = None

    async def _reload_next_id(self) -> None:
        with contextlib.suppress(Exception):
            self._next_id = await self._require_writer().run(sqlite_writer.highest_id) + 1

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    # -- reads -------------------------------------------------------------

    async def read(
        self, query: Query, batch_size: int, limit: int | None = None
    ) -> AsyncIterator[list[Row]]:
        sql, params = sqlite_sql.select(query, limit=limit)
        conn = await self._open_connection()
        self.open_streams += 1
        prefetch: asyncio.Future[Any] | None = None
        finished = False
        try:
            cursor = await conn.execute(sql, params)
            prefetch = asyncio.ensure_future(cursor.fetchmany(batch_size))
            while True:
                rows = await prefetch
                if not rows:
                    finished = True
                    break
                # Read the next batch while this one is being sent.
                prefetch = asyncio.ensure_future(cursor.fetchmany(batch_size))
                yield rows
        finally:
            self.open_streams -= 1
            if not finished:
                # Cancelled or abandoned: stop SQLite mid-statement, not at the end.
                _interrupt(conn)
            if prefetch is not None and not prefetch.done():
                prefetch.cancel()  # its fetch goes on on the thread: the close waits for it
                prefetch.add_done_callback(_retrieve)
            # Shielded: a second cancellation leaves the close to close().
            await self._release(conn)

    async def page(self, query: Query, limit: int) -> list[Row]:
        sql, params = sqlite_sql.select(query, limit=limit)
        async with self._reader() as conn:
            return list(await conn.execute_fetchall(sql, params))  # type: ignore[arg-type]

    async def get(self, tenant_id: int, *, id: int = 0, event_id: str = "") -> Row | None:
        column, value = ("id", id) if id else ("event_id", event_id)
        sql = f"SELECT ts, id, data FROM events WHERE tenant_id = ? AND {column} = ?"
        async with self._reader() as conn, conn.execute(sql, (tenant_id, value)) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1]), bytes(row[2])) if row else None

    async def count(self, query: Query) -> int:
        clause, params = sqlite_sql.where(query, keyset=False)
        async with (
            self._reader() as conn,
            conn.execute(f"SELECT count(*) FROM events WHERE {clause}", params) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def group_counts(
        self, query: Query, group_by: int, time_zone: str, max_buckets: int
    ) -> list[tuple[str, int]]:
        clause, params = sqlite_sql.where(query, keyset=False)
        time_order = False
        if group_by == spb.GROUP_BY_TYPE:
            key = "CASE WHEN type = 0 THEN type_name ELSE type END"
        elif group_by == spb.GROUP_BY_CAMPAIGN:
            key = "campaign_id"
        elif group_by == spb.GROUP_BY_RECIPIENT_DOMAIN:
            key = "recipient_domain"
        elif group_by in (spb.GROUP_BY_HOUR, spb.GROUP_BY_DAY):
            unit = "hour" if group_by == spb.GROUP_BY_HOUR else "day"
            key = "mev_bucket(ts, ?, ?)"
            params = [unit, time_zone, *params]
            time_order = True
        else:
            raise ValueError(f"unknown group_by {group_by}")
        order = "k ASC" if time_order else "n DESC, k ASC"
        sql = (
            f"SELECT {key} AS k, count(*) AS n FROM events WHERE {clause} "
            f"GROUP BY k ORDER BY {order} LIMIT ?"
        )
        async with self._reader() as conn:
            rows = await conn.execute_fetchall(sql, [*params, max_buckets])
        return [(_key_text(k, group_by), int(n)) for k, n in rows]

    # -- retention -----------------------------------------------------------

    async def delete_before(self, cutoff_us: int) -> int:
        """Delete events older than cutoff_us in small batches through the writer queue.

        Each batch is one tenant's oldest rows (found on the (tenant_id, ts)
        index) in a short write transaction, so ingest goes on between
        batches and readers (WAL) are never blocked.
        """
        async with self._reader() as conn:
            tenants = [int(r[0]) for r in await conn.execute_fetchall("SELECT id FROM tenants")]
        removed = 0
        for tenant_id in tenants:
            while True:
                if self._writer_task is None or self._writer_task.done():
                    raise faults.StoreClosed("store is closed")
                request = DeleteRequest(tenant_id, (), cutoff_us=cutoff_us)
                await self._queue.put(request)
                await asyncio.shield(request.done)
                removed += request.deleted
                if request.deleted < DELETE_BATCH:
                    break
        return removed

    async def retention_floor(self, tenant_id: int) -> int:
        key = sqlite_writer.retention_floor_key(tenant_id)
        async with (
            self._reader() as conn,
            conn.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (key,)) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def last_id(self, tenant_id: int) -> int:
        # One writer commits every tenant in one order: the position shared
        # by all tenants is a valid watermark for each of them.
        del tenant_id
        async with (
            self._reader() as conn,
            conn.execute("SELECT coalesce(max(id), 0) FROM events") as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- live streams --------------------------------------------------------

    async def wait_for_commit(self, tenant_id: int, position: int, max_wait: float) -> None:
        del tenant_id  # one commit order for all tenants (see last_id)
        await self._commits.wait(position, max_wait)

    async def read_after(self, query: Query, position: int, limit: int) -> list[Row]:
        sql, params = sqlite_sql.select_after(query, position, limit)
        async with self._reader() as conn:
            return list(await conn.execute_fetchall(sql, params))  # type: ignore[arg-type]


def _interrupt(conn: aiosqlite.Connection) -> None:
    """Stop `conn`'s running statement, if it is still open."""
    raw = conn._connection  # aiosqlite's interrupt() raises once it is closed
    if raw is not None:
        raw.interrupt()


async def _join(conn: aiosqlite.Connection) -> None:
    """Wait for `conn`'s thread (its stop is queued) to have finished."""
    thread = conn._thread
    # Its last act is to answer the stop through the loop, so it ends right
    # after: polled (bounded) rather than joined in an executor that may be
    # shut down already.
    for _ in range(10_000):
        if thread.ident is None or not thread.is_alive():
            return
        await asyncio.sleep(0.001)
    log.warning("an aiosqlite thread did not end within 10 s of its close")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned future's outcome as seen (no "never retrieved" log)."""
    if not future.cancelled():
        future.exception()


def _lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


#: SQL functions the query compiler (sqlite_sql) uses, on every connection.
_SQL_FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("mev_lower", 1, _lower),
    ("mev_datepart", 3, timeparts.date_part),
    ("mev_bucket", 3, timeparts.bucket),
)


def _register_functions(conn: sqlite3.Connection) -> None:
    for name, arity, function in _SQL_FUNCTIONS:
        conn.create_function(name, arity, function, deterministic=True)


def _key_text(key: Any, group_by: int) -> str:
    if key is None:
        return ""
    if group_by == spb.GROUP_BY_TYPE and isinstance(key, int):
        from mailevents.event_types import type_name

        return type_name(key)
    return str(key)
