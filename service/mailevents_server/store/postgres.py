"""The scale-out store: PostgreSQL through asyncpg pools.

Several service replicas can share one database. This module is the store
the service sees: its options, opening and closing (migrations, pools, the
tasks below) and the reads; each other concern has a module of its own:
- postgres_writer: the write path. A tenant's ids grow in its commit order:
  each commit locks the tenant's row of `tenant_positions`, allocates the
  next ids, inserts and advances the position before committing. Tenants
  never share a lock or a row on the write path, so on Citus each tenant's
  writes run on its own shard, in parallel with everyone else's. Ingest is
  idempotent: (tenant_id, event_id) is the primary key of `event_keys`,
  inserted in the same transaction as the event; under the tenant's lock the
  existing keys are read first, so a duplicate is reported with the id it
  was stored under.
- postgres_listen: every commit NOTIFYs `mailevents_commits` with its schema, the tenant
  and its new position, so live tails on other replicas wake without polling.
- postgres_partitions: partitions are created ahead by a maintenance task and
  on demand before a write whose events fall outside them; retention drops
  whole partitions.
- postgres_schema: migrations run under a session advisory lock, so replicas
  that start together migrate once; postgres_citus: on a database with the
  `citus` extension the layout is made at start (reference tables for what
  every query needs, the rest distributed by `tenant_id` and co-located).
- postgres_pool makes the pools and bounds every wait of a call; postgres_sql
  compiles queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from mailevents.event_types import type_name
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import faults
from mailevents_server.ingest import PreparedEvent
from mailevents_server.query.model import Query
from mailevents_server.store import postgres_pool, postgres_schema, postgres_writer
from mailevents_server.store import postgres_sql as sql
from mailevents_server.store.base import KEY_ID_LENGTH, KeyInfo, Row, Store, WriteResult
from mailevents_server.store.commits import TenantCommits
from mailevents_server.store.postgres_listen import CommitListener
from mailevents_server.store.postgres_partitions import Partitions
from mailevents_server.store.postgres_pool import BoundedPool
from mailevents_server.store.postgres_writer import TenantWriters

log = logging.getLogger(__name__)

#: Store options that are ours, read from the URL's query and removed before
#: the URL reaches asyncpg (which would send them to the server as settings).
_URL_OPTIONS = (
    "partition_interval",
    "partitions_ahead",
    "pool_size",
    "stream_pool_size",
    "writers",
)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL for asyncpg, and our own options taken from its query string."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _URL_OPTIONS:
            ours[key] = value
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


class PostgresStore(Store):
    """PostgreSQL via asyncpg.

    Options (keyword arguments, or the same names in the URL's query string):
    `partition_interval` "month" (default) or "day" (pick "day" with a short
    `--retention`, so that retention drops whole partitions), `partitions_ahead`
    (how many future periods the maintenance task keeps created, default 3),
    `pool_size` (connections for short queries, default 10), `stream_pool_size`
    (connections for streams, each held for a whole stream, default 32; a
    stream beyond that waits for one), `synchronous` ("OFF" or
    "NORMAL" turn synchronous_commit off for bulk loads, like SQLite's PRAGMA).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | str = 10,
        stream_pool_size: int | str = 32,
        readers: int | None = None,
        synchronous: str = "FULL",
        partition_interval: str = "month",
        partitions_ahead: int | str = 3,
        maintenance_seconds: float = 3600.0,
        lock_timeout_ms: int = 250,
    ) -> None:
        self.url, url_options = split_url(url)
        options: dict[str, Any] = {
            "pool_size": readers or pool_size,
            "stream_pool_size": stream_pool_size,
            "partition_interval": partition_interval,
            "partitions_ahead": partitions_ahead,
            **url_options,
        }
        self._pool_size = int(options["pool_size"])
        self._stream_pool_size = int(options["stream_pool_size"])
        #: The partitions of `events`: made ahead, on demand, dropped by retention.
        self.partitions = Partitions(
            self._require_pool,
            interval=str(options["partition_interval"]),
            ahead=int(options["partitions_ahead"]),
            lock_timeout_ms=lock_timeout_ms,
        )
        self._synchronous = synchronous.upper()
        self._maintenance_seconds = maintenance_seconds
        self._writers_size = int(options.get("writers", 8))
        self._pool: asyncpg.Pool | None = None
        self._write_pool: asyncpg.Pool | None = None
        self._writers: TenantWriters | None = None
        #: Whether the database is a Citus coordinator (layout made at open).
        self.citus = False
        #: Streams hold a connection for as long as the client reads: they get
        #: their own pool so that they never starve short queries.
        self._stream_pool: asyncpg.Pool | None = None
        self._maintenance_task: asyncio.Task[None] | None = None
        self._secret: bytes | None = None
        self._commits = TenantCommits()
        self._listener = CommitListener(self._connect, self._commits)
        self.icu = sql.DEFAULT_ICU
        self.open_streams = 0

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        setup = await self._connect()
        try:
            self.citus = await postgres_schema.migrate(setup)
            self.icu = await self._case_folding_collation(setup)
        finally:
            await setup.close()
        self._pool = await postgres_pool.create(self.url, self._pool_size)
        self._stream_pool = await postgres_pool.create(self.url, self._stream_pool_size)
        self._write_pool = await postgres_writer.open_pool(
            self.url, size=self._writers_size, synchronous=self._synchronous
        )
        self._writers = TenantWriters(
            self._write_pool,
            self.partitions.before_write,
            self._commits.publish,
            lambda: self.metrics,
        )
        await self.partitions.maintain()
        await self._listener.start()
        self._maintenance_task = asyncio.create_task(
            self.partitions.maintain_every(self._maintenance_seconds),
            name="postgres-maintenance",
        )

    async def close(self) -> None:
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
        self._maintenance_task = None
        await self._listener.stop()
        if self._writers is not None:
            await self._writers.close()  # drains what was queued before
            self._writers = None
        await postgres_pool.close((self._stream_pool, self._pool, self._write_pool))
        self._pool = self._stream_pool = self._write_pool = None

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, server_settings=postgres_pool.SESSION)

    @staticmethod
    async def _case_folding_collation(conn: asyncpg.Connection) -> str:
        """ICU's root collation when the server has ICU, else the database default.

        ICU lowercases with full Unicode case mapping, as Python's str.lower
        (which the SQLite store uses) does; libc locales differ in places and
        "C" folds ASCII only.
        """
        found = await conn.fetchval(
            "SELECT collname FROM pg_collation WHERE collname = $1", sql.DEFAULT_ICU
        )
        if found:
            return str(found)
        log.warning(
            "PostgreSQL has no ICU collation %r: case-insensitive matching follows the "
            "database locale and may differ from the SQLite store for non-ASCII text",
            sql.DEFAULT_ICU,
        )
        return "default"

    def pools(self) -> dict[str, asyncpg.Pool]:
        """The open connection pools by name, for the pool metrics."""
        named = {"queries": self._pool, "streams": self._stream_pool, "writes": self._write_pool}
        return {name: pool for name, pool in named.items() if pool is not None}

    async def database_bytes(self) -> int:
        """The database's size on disk, for the size metric (read at scrape time)."""
        return int(
            await self._require_pool().fetchval("SELECT pg_database_size(current_database())")
        )

    def _require_pool(self) -> BoundedPool:
        """The pool for short queries, each bounded by the deadline of the call it serves."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        return BoundedPool(self._pool)

    # -- tenants and keys --------------------------------------------------

    async def secret(self) -> bytes:
        if self._secret is None:
            value = await self._require_pool().fetchval(
                "SELECT value FROM meta WHERE key = 'token_secret'"
            )
            assert value is not None, "migrations create the secret"
            self._secret = bytes(value)
        return self._secret

    async def tenant_for_key(self, key_hash: str) -> int | None:
        value = await self._require_pool().fetchval(
            "SELECT tenant_id FROM api_keys WHERE key_hash = $1", key_hash
        )
        return int(value) if value is not None else None

    async def create_key(self, tenant: str, key_hash: str, label: str = "") -> int:
        now = _now_us()
        async with self._require_pool().acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO tenants (name, created_us) VALUES ($1, $2) "
                "ON CONFLICT (name) DO NOTHING",
                tenant,
                now,
            )
            tenant_id = int(await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant))
            await conn.execute(
                "INSERT INTO api_keys (key_hash, tenant_id, label, created_us) "
                "VALUES ($1, $2, $3, $4)",
                key_hash,
                tenant_id,
                label,
                now,
            )
        return tenant_id

    async def list_keys(self) -> list[KeyInfo]:
        records = await self._require_pool().fetch(
            "SELECT k.key_hash, t.name, k.label, k.created_us FROM api_keys k "
            "JOIN tenants t ON t.id = k.tenant_id ORDER BY t.name, k.created_us"
        )
        return [KeyInfo(h[:KEY_ID_LENGTH], t, label, int(c)) for h, t, label, c in records]

    async def revoke_key(self, key_id: str) -> int:
        if len(key_id) < KEY_ID_LENGTH:
            raise ValueError(f"a key id has at least {KEY_ID_LENGTH} characters")
        status = await self._require_pool().execute(
            "DELETE FROM api_keys WHERE starts_with(key_hash, $1)", key_id
        )
        return int(status.rsplit(" ", 1)[1])

    # -- writes and retention --------------------------------------------------

    async def write(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[WriteResult]:
        if not events:
            return []
        if self._writers is None:
            raise faults.StoreClosed("store is closed")
        return await self._writers.write(tenant_id, events)

    async def delete_before(self, cutoff_us: int) -> int:
        """Remove events older than cutoff_us (see `Partitions.delete_before`)."""
        return await self.partitions.delete_before(cutoff_us)

    # -- reads -------------------------------------------------------------

    async def read(
        self, query: Query, batch_size: int, limit: int | None = None
    ) -> AsyncIterator[list[Row]]:
        text, params = sql.select(query, limit=limit, icu=self.icu)
        pool = self._stream_pool
        if pool is None:
            raise RuntimeError("store is not open")
        conn = await pool.acquire(timeout=faults.call_budget())
        self.open_streams += 1
        transaction = conn.transaction(readonly=True)
        prefetch: asyncio.Future[Any] | None = None
        try:
            await transaction.start()
            cursor = await conn.cursor(text, *params)
            prefetch = asyncio.ensure_future(cursor.fetch(batch_size))
            while True:
                records = await prefetch
                if not records:
                    break
                # Read the next batch while this one is being sent.
                prefetch = asyncio.ensure_future(cursor.fetch(batch_size))
                yield [(r[0], r[1], r[2]) for r in records]
        finally:
            # Shielded: a second cancellation (a cancelled call, then server
            # shutdown) must not stop the cleanup half-way and leak the
            # connection, which would make closing the pool wait forever.
            await asyncio.shield(self._end_stream(pool, conn, transaction, prefetch))

    async def _end_stream(
        self,
        pool: asyncpg.Pool,
        conn: asyncpg.Connection,
        transaction: Any,
        prefetch: asyncio.Future[Any] | None,
    ) -> None:
        try:
            if prefetch is not None and not prefetch.done():
                prefetch.cancel()
                with contextlib.suppress(BaseException):
                    await prefetch
            with contextlib.suppress(Exception):
                await transaction.rollback()
            await pool.release(conn)
        except Exception as exc:
            faults.log_failure(log, "could not return a stream's connection; closing it", exc)
            conn.terminate()
        finally:
            self.open_streams -= 1

    async def page(self, query: Query, limit: int) -> list[Row]:
        text, params = sql.select(query, limit=limit, icu=self.icu)
        records = await self._require_pool().fetch(text, *params)
        return [(r[0], r[1], r[2]) for r in records]

    async def get(self, tenant_id: int, *, id: int = 0, event_id: str = "") -> Row | None:
        pool = self._require_pool()
        if id:
            record = await pool.fetchrow(
                "SELECT ts, id, data FROM events WHERE tenant_id = $1 AND id = $2", tenant_id, id
            )
        else:
            record = await pool.fetchrow(
                "SELECT e.ts, e.id, e.data FROM event_keys k JOIN events e "
                "ON e.tenant_id = k.tenant_id AND e.ts = k.ts AND e.id = k.id "
                "WHERE k.tenant_id = $1 AND k.event_id = $2",
                tenant_id,
                sql.clean(event_id),
            )
        return (int(record[0]), int(record[1]), bytes(record[2])) if record else None

    async def count(self, query: Query) -> int:
        params = sql.Params()
        clause = sql.where(query, params, keyset=False, icu=self.icu)
        value = await self._require_pool().fetchval(
            f"SELECT count(*) FROM events WHERE {clause}", *params.values
        )
        return int(value)

    async def group_counts(
        self, query: Query, group_by: int, time_zone: str, max_buckets: int
    ) -> list[tuple[str, int]]:
        params = sql.Params()
        if group_by in (spb.GROUP_BY_HOUR, spb.GROUP_BY_DAY):
            unit = "hour" if group_by == spb.GROUP_BY_HOUR else "day"
            key = sql.bucket("ts", unit, params.add(time_zone))
            clause = sql.where(query, params, keyset=False, icu=self.icu)
            text = (
                f'SELECT {key} COLLATE "C" AS k, count(*) AS n FROM events WHERE {clause} '
                f"GROUP BY k ORDER BY k LIMIT {params.add(max_buckets)}"
            )
            records = await self._require_pool().fetch(text, *params.values)
            return [(str(k), int(n)) for k, n in records]
        clause = sql.where(query, params, keyset=False, icu=self.icu)
        limit = params.add(max_buckets)
        if group_by == spb.GROUP_BY_TYPE:
            # SQLite groups by the type number, or by the name for unknown
            # types, and sorts numbers before names on equal counts.
            text = (
                "SELECT type, CASE WHEN type = 0 THEN type_name END AS tn, count(*) AS n "
                f"FROM events WHERE {clause} GROUP BY 1, 2 "
                f"ORDER BY n DESC, type = 0, type, tn LIMIT {limit}"
            )
            records = await self._require_pool().fetch(text, *params.values)
            return [(str(tn) if t == 0 else type_name(int(t)), int(n)) for t, tn, n in records]
        if group_by == spb.GROUP_BY_CAMPAIGN:
            column = "campaign_id"
        elif group_by == spb.GROUP_BY_RECIPIENT_DOMAIN:
            column = "recipient_domain"
        else:
            raise ValueError(f"unknown group_by {group_by}")
        text = (
            f"SELECT {column} AS k, count(*) AS n FROM events WHERE {clause} "
            f"GROUP BY k ORDER BY n DESC, k ASC NULLS FIRST LIMIT {limit}"
        )
        records = await self._require_pool().fetch(text, *params.values)
        return [("" if k is None else str(k), int(n)) for k, n in records]

    async def retention_floor(self, tenant_id: int) -> int:
        pool = self._require_pool()
        value = await pool.fetchval(
            "SELECT max_id FROM retention_floors WHERE tenant_id = $1", tenant_id
        )
        return int(value or 0)

    async def last_id(self, tenant_id: int) -> int:
        value = await self._require_pool().fetchval(
            "SELECT last_id FROM tenant_positions WHERE tenant_id = $1", tenant_id
        )
        return int(value or 0)

    async def skip_positions(self, count: int) -> None:
        # Every tenant, those without a position yet too: their tokens may
        # come from commits the restored database lost. The count is written
        # into the statement: Citus plans this INSERT ... SELECT on the
        # coordinator and does not pass a bound parameter on to it.
        gap = int(count)
        await self._require_pool().execute(
            f"INSERT INTO tenant_positions (tenant_id, last_id) SELECT id, {gap} FROM tenants "
            f"ON CONFLICT (tenant_id) DO UPDATE SET last_id = tenant_positions.last_id + {gap}"
        )

    # -- live streams --------------------------------------------------------

    async def wait_for_commit(self, tenant_id: int, position: int, max_wait: float) -> None:
        await self._commits.wait(tenant_id, position, max_wait)

    async def read_after(self, query: Query, position: int, limit: int) -> list[Row]:
        params = sql.Params()
        clause = sql.where(query, params, keyset=False, icu=self.icu)
        text = (
            f"SELECT ts, id, data FROM events WHERE {clause} AND id > {params.add(position)} "
            f"ORDER BY id LIMIT {params.add(limit)}"
        )
        records = await self._require_pool().fetch(text, *params.values)
        return [(r[0], r[1], r[2]) for r in records]
