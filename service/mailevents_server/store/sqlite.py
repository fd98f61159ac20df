"""The embedded default store: one SQLite file in WAL mode.

One writer connection commits batched transactions (many callers' batches per
commit, each caller awaiting its own result); readers have their own
connections and never block it. Each stream gets a dedicated connection so a
long export does not hold up short queries, and the next batch is read while
the current one is being sent. The writer's thread and transactions are in
sqlite_writer, the planner statistics' upkeep in sqlite_statistics.
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
from mailevents_server.store.sqlite_connections import Connections, interrupt
from mailevents_server.store.sqlite_statistics import Statistics
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
        self._conns = Connections(self.path, readers, _SQL_FUNCTIONS)
        self._queue: asyncio.Queue[_WriteRequest | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._next_id = 1
        self._statistics = Statistics(
            self._require_writer, lambda: self._next_id, lambda: self.metrics
        )
        self._commits = CommitHub()
        self._secret: bytes | None = None
        self.open_streams = 0

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        self._conns.reopen()
        self._writer = await Writer.open(self.path, self._synchronous, _register_functions)
        try:
            await self._writer.run(sqlite_writer.migrate, self.path, log.info)
            self._next_id = await self._writer.run(sqlite_writer.highest_id) + 1
            await self._statistics.check()
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise
        self._commits.publish(self._next_id - 1)
        await self._conns.fill()
        self._writer_task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        """Stop the writer, then close every connection this store opened.

        Returns only when each aiosqlite connection is closed and its thread
        has finished: a query left running (a cancelled caller's, a stream's)
        would otherwise answer an event loop that is gone ("Event loop is
        closed" on its thread) and leave its connection to the GC.
        """
        self._conns.closing()
        if self._writer_task is not None:
            await self._queue.put(None)  # drains what was queued before it
            await self._writer_task
            self._writer_task = None
        await self._statistics.wait()
        await self._conns.close()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None

    # -- tenants and keys --------------------------------------------------

    async def secret(self) -> bytes:
        if self._secret is None:
            async with (
                self._conns.reader() as conn,
                conn.execute("SELECT value FROM meta WHERE key = 'token_secret'") as cur,
            ):
                row = await cur.fetchone()
            assert row is not None, "migrations create the secret"
            self._secret = bytes(row[0])
        return self._secret

    async def tenant_for_key(self, key_hash: str) -> int | None:
        async with (
            self._conns.reader() as conn,
            conn.execute("SELECT tenant_id FROM api_keys WHERE key_hash = ?", (key_hash,)) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def create_key(self, tenant: str, key_hash: str, label: str = "") -> int:
        now = int(time.time() * 1_000_000)
        async with self._conns.admin() as conn:
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
        async with self._conns.reader() as conn:
            rows = await conn.execute_fetchall(
                "SELECT k.key_hash, t.name, k.label, k.created_us FROM api_keys k "
                "JOIN tenants t ON t.id = k.tenant_id ORDER BY t.name, k.created_us"
            )
        return [KeyInfo(h[:KEY_ID_LENGTH], t, label, c) for h, t, label, c in rows]

    async def revoke_key(self, key_id: str) -> int:
        if len(key_id) < KEY_ID_LENGTH:
            raise ValueError(f"a key id has at least {KEY_ID_LENGTH} characters")
        async with self._conns.admin() as conn:
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
        self._statistics.committed()
        return results

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
        conn = await self._conns.open_connection()
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
                interrupt(conn)
            if prefetch is not None and not prefetch.done():
                prefetch.cancel()  # its fetch goes on on the thread: the close waits for it
                prefetch.add_done_callback(_retrieve)
            # Shielded: a second cancellation leaves the close to close().
            await self._conns.release(conn)

    async def page(self, query: Query, limit: int) -> list[Row]:
        sql, params = sqlite_sql.select(query, limit=limit)
        async with self._conns.reader() as conn:
            return list(await conn.execute_fetchall(sql, params))  # type: ignore[arg-type]

    async def get(self, tenant_id: int, *, id: int = 0, event_id: str = "") -> Row | None:
        column, value = ("id", id) if id else ("event_id", event_id)
        sql = f"SELECT ts, id, data FROM events WHERE tenant_id = ? AND {column} = ?"
        async with self._conns.reader() as conn, conn.execute(sql, (tenant_id, value)) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1]), bytes(row[2])) if row else None

    async def count(self, query: Query) -> int:
        clause, params = sqlite_sql.where(query, keyset=False)
        async with (
            self._conns.reader() as conn,
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
        async with self._conns.reader() as conn:
            rows = await conn.execute_fetchall(sql, [*params, max_buckets])
        return [(_key_text(k, group_by), int(n)) for k, n in rows]

    # -- retention -----------------------------------------------------------

    async def delete_before(self, cutoff_us: int) -> int:
        """Delete events older than cutoff_us in small batches through the writer queue.

        Each batch is one tenant's oldest rows (found on the (tenant_id, ts)
        index) in a short write transaction, so ingest goes on between
        batches and readers (WAL) are never blocked.
        """
        async with self._conns.reader() as conn:
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
            self._conns.reader() as conn,
            conn.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (key,)) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def last_id(self, tenant_id: int) -> int:
        # One writer commits every tenant in one order: the position shared
        # by all tenants is a valid watermark for each of them.
        # The highest id ever given, not the highest stored: retention may
        # have removed the newest events, and a position never goes back.
        del tenant_id
        async with (
            self._conns.reader() as conn,
            conn.execute(sqlite_writer.HIGHEST_ID) as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def skip_positions(self, count: int) -> None:
        self._next_id = await self._require_writer().run(sqlite_writer.skip_ids, count) + 1

    # -- live streams --------------------------------------------------------

    async def wait_for_commit(self, tenant_id: int, position: int, max_wait: float) -> None:
        del tenant_id  # one commit order for all tenants (see last_id)
        await self._commits.wait(position, max_wait)

    async def read_after(self, query: Query, position: int, limit: int) -> list[Row]:
        sql, params = sqlite_sql.select_after(query, position, limit)
        async with self._conns.reader() as conn:
            return list(await conn.execute_fetchall(sql, params))  # type: ignore[arg-type]


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
