"""The scale-out store: PostgreSQL through an asyncpg pool.

Several service replicas can share one database. What keeps them correct:
- A tenant's ids grow in its commit order (postgres_writer): each commit
  locks the tenant's row of `tenant_positions`, allocates the next ids,
  inserts and advances the position before committing. Tenants never share
  a lock or a row on the write path, so on Citus each tenant's writes run on
  its own shard, in parallel with everyone else's.
- Idempotent ingest: (tenant_id, event_id) is the primary key of
  `event_keys`, inserted in the same transaction as the event. Under the
  tenant's lock the existing keys are read first, so a duplicate is
  reported with the id it was stored under.
- Schema migrations run under a session advisory lock, so replicas that start
  together migrate once.
- Partitions (see postgres_schema) are created ahead by a maintenance task and
  on demand before a write whose events fall outside them; DDL takes short
  lock timeouts and is best effort, because the DEFAULT partition takes any
  event that has no partition yet.
- Every commit NOTIFYs `mailevents_commits` with its schema, the tenant and
  its new position, so live tails on other replicas wake without polling.
- On a database with the `citus` extension the layout is made at start
  (postgres_citus): reference tables for what every query needs, the rest
  distributed by `tenant_id` and co-located.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from mailevents.event_types import type_name
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import faults
from mailevents_server.ingest import PreparedEvent
from mailevents_server.query.model import Query
from mailevents_server.store import postgres_citus
from mailevents_server.store import postgres_sql as sql
from mailevents_server.store.base import KEY_ID_LENGTH, KeyInfo, Row, Store, WriteResult
from mailevents_server.store.commits import TenantCommits
from mailevents_server.store.group_commit import WriteRequest as _WriteRequest
from mailevents_server.store.postgres_pool import BoundedPool
from mailevents_server.store.postgres_schema import MIGRATIONS
from mailevents_server.store.postgres_writer import (
    CHANNEL,
    EVENT_COLUMNS,
    TS,
    TenantWriters,
    parse_payload,
)

log = logging.getLogger(__name__)

#: Advisory lock keys (64-bit, per database): schema migrations, partition DDL.
MIGRATE_LOCK = 0x6D65_7631_0001
DDL_LOCK = 0x6D65_7631_0003
_TS = TS
_DELETE_BATCH = 5_000


async def _delete_keyed_batch(
    conn: asyncpg.Connection, tenant_id: int, cutoff_us: int
) -> tuple[int, int]:
    """Delete up to a batch of a tenant's dedup keys before the cutoff and their events.

    Every statement names the tenant, so on Citus each runs on the tenant's
    shard alone (a ctid is only meaningful within one shard). Returns how
    many keys and events were removed.
    """
    removed = await conn.fetch(
        "DELETE FROM event_keys WHERE tenant_id = $1 AND ctid = ANY(ARRAY("
        "SELECT ctid FROM event_keys WHERE tenant_id = $1 AND ts < $2 LIMIT $3)) RETURNING id",
        tenant_id,
        cutoff_us,
        _DELETE_BATCH,
    )
    if not removed:
        return 0, 0
    events, top = await conn.fetchrow(
        "WITH d AS (DELETE FROM events WHERE tenant_id = $1 AND ts < $2 "
        "AND id = ANY($3::bigint[]) RETURNING id) SELECT count(*), max(id) FROM d",
        tenant_id,
        cutoff_us,
        [int(r[0]) for r in removed],
    )
    await _raise_floor(conn, tenant_id, top)
    return len(removed), int(events)


async def _raise_floor(conn: asyncpg.Connection, tenant_id: int, removed_id: int | None) -> None:
    """Record that retention removed the tenant's events up to `removed_id` (if any)."""
    if removed_id is None:
        return
    await conn.execute(
        "INSERT INTO retention_floors (tenant_id, max_id) VALUES ($1, $2) "
        "ON CONFLICT (tenant_id) DO UPDATE "
        "SET max_id = greatest(retention_floors.max_id, excluded.max_id)",
        tenant_id,
        removed_id,
    )


#: Raise each tenant's retention floor to the highest id among the rows of
#: `source` (a table or a DELETE's RETURNING tenant_id, id) about to be gone.
_RAISE_FLOORS = (
    "INSERT INTO retention_floors (tenant_id, max_id) "
    "SELECT tenant_id, max(id) FROM {source} GROUP BY tenant_id "
    "ON CONFLICT (tenant_id) DO UPDATE "
    "SET max_id = greatest(retention_floors.max_id, excluded.max_id)"
)
#: How long closing waits for connections still in use before cutting them.
_CLOSE_SECONDS = 5.0
#: Partitions are made on demand only for events this close to now; others
#: go to the DEFAULT partition (a stray far-off timestamp must not create
#: thousands of partitions).
_ON_DEMAND_PAST = timedelta(days=3660)
_ON_DEMAND_FUTURE = timedelta(days=400)
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Store options that are ours, read from the URL's query and removed before
#: the URL reaches asyncpg (which would send them to the server as settings).
_URL_OPTIONS = (
    "partition_interval",
    "partitions_ahead",
    "pool_size",
    "stream_pool_size",
    "writers",
)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


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
        self.partition_interval = str(options["partition_interval"])
        if self.partition_interval not in ("month", "day"):
            raise ValueError(
                f"partition_interval must be month or day, not {self.partition_interval!r}"
            )
        self._ahead = int(options["partitions_ahead"])
        self._synchronous = synchronous.upper()
        self._maintenance_seconds = maintenance_seconds
        self._lock_timeout_ms = lock_timeout_ms
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
        self._ranges: list[tuple[int, int]] = []  # partition bounds, sorted
        self._secret: bytes | None = None
        self._commits = TenantCommits()
        self._listener_task: asyncio.Task[None] | None = None
        self._schema = ""  # where our tables are: commits of others are not ours
        self.icu = sql.DEFAULT_ICU
        self.open_streams = 0

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        setup = await self._connect()
        try:
            await self._migrate(setup)
            self.icu = await self._case_folding_collation(setup)
        finally:
            await setup.close()
        self._pool = await asyncpg.create_pool(
            self.url,
            # No floor: asyncpg would restore it in the background after the
            # server restarts, logging a traceback for every failed attempt.
            min_size=0,
            max_size=self._pool_size,
            server_settings=_SESSION,
        )
        self._stream_pool = await asyncpg.create_pool(
            self.url, min_size=0, max_size=self._stream_pool_size, server_settings=_SESSION
        )
        writer_settings = dict(_SESSION)
        if self._synchronous in ("OFF", "NORMAL"):
            writer_settings["synchronous_commit"] = "off"
        self._write_pool = await asyncpg.create_pool(
            self.url, min_size=0, max_size=self._writers_size, server_settings=writer_settings
        )
        self._writers = TenantWriters(
            self._write_pool, self._prepare_write, self._commits.publish, lambda: self.metrics
        )
        await self.maintain()
        listening = asyncio.get_running_loop().create_future()
        self._listener_task = asyncio.create_task(self._listen(listening), name="postgres-listen")
        await listening
        self._maintenance_task = asyncio.create_task(
            self._maintenance_loop(), name="postgres-maintenance"
        )

    async def close(self) -> None:
        for task in (self._maintenance_task, self._listener_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._maintenance_task = self._listener_task = None
        if self._writers is not None:
            await self._writers.close()  # drains what was queued before
            self._writers = None
        for pool in (self._stream_pool, self._pool, self._write_pool):
            if pool is not None:
                try:
                    # Waits for connections still in use by calls being cancelled.
                    await asyncio.wait_for(pool.close(), _CLOSE_SECONDS)
                except TimeoutError:
                    log.warning(
                        "connections still busy after %ss; terminating them", _CLOSE_SECONDS
                    )
                    pool.terminate()
        self._pool = self._stream_pool = self._write_pool = None

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, server_settings=_SESSION)

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS mev_schema (version integer NOT NULL)")
            self.citus = await postgres_citus.has_citus(conn)
            async with conn.transaction():
                if self.citus:
                    # DDL after writes to reference tables in one transaction:
                    # Citus then needs one connection per worker throughout.
                    await conn.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
                version = await conn.fetchval("SELECT version FROM mev_schema")
                if version is None:
                    await conn.execute("INSERT INTO mev_schema (version) VALUES (0)")
                    version = 0
                if version > len(MIGRATIONS):
                    raise RuntimeError(
                        f"the database has schema version {version}, newer than this "
                        f"mailevents ({len(MIGRATIONS)}); upgrade mailevents"
                    )
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    log.info("applying PostgreSQL schema migration %d", number)
                    await conn.execute(script)
                    await conn.execute("UPDATE mev_schema SET version = $1", number)
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('token_secret', $1) "
                    "ON CONFLICT (key) DO NOTHING",
                    secrets.token_bytes(32),
                )
            if self.citus:
                await postgres_citus.make_layout(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)

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

    # -- writes ------------------------------------------------------------

    async def write(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[WriteResult]:
        if not events:
            return []
        if self._writers is None:
            raise faults.StoreClosed("store is closed")
        return await self._writers.write(tenant_id, events)

    async def _prepare_write(
        self, conn: asyncpg.Connection, batch: list[_WriteRequest]
    ) -> int | None:
        """Before a commit's transaction: create the partitions its events need.

        Returns the DDL lock when some event still has none: the commit holds
        it shared, so that no ATTACH commits between routing such an event to
        DEFAULT and storing it there (the row would violate DEFAULT's narrowed
        partition constraint, and the commit fail).
        """
        stamps = [ev.columns[_TS] for req in batch for ev in req.events]
        await self._ensure_partitions(conn, stamps)
        return None if all(self._covered(ts) for ts in stamps) else DDL_LOCK

    # -- partitions ----------------------------------------------------------

    def period(self, ts_us: int) -> tuple[int, int]:
        """The [start, end) microseconds of the UTC month or day holding ts_us."""
        t = _EPOCH + timedelta(microseconds=ts_us)
        if self.partition_interval == "day":
            start = datetime(t.year, t.month, t.day, tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            start = datetime(t.year, t.month, 1, tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
        return _us(start), _us(end)

    def _covered(self, ts_us: int) -> bool:
        i = bisect.bisect_right(self._ranges, (ts_us, 2**63)) - 1
        return i >= 0 and self._ranges[i][0] <= ts_us < self._ranges[i][1]

    @staticmethod
    async def partitions(conn: asyncpg.Connection) -> list[tuple[str, int, int]]:
        """(name, start, end) of every range partition of events, by start."""
        rows = await conn.fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
        )
        out = []
        for name, bound in rows:
            m = _BOUND.search(bound or "")
            if m:
                out.append((str(name), int(m.group(1)), int(m.group(2))))
        return sorted(out, key=lambda p: p[1])

    async def _ensure_partitions(self, conn: asyncpg.Connection, stamps: Any) -> None:
        """Create the partitions a write needs, best effort, before its transaction."""
        now = datetime.now(UTC)
        low, high = _us(now - _ON_DEMAND_PAST), _us(now + _ON_DEMAND_FUTURE)
        wanted: set[tuple[int, int]] = set()
        last: tuple[int, int] | None = None
        for ts in stamps:
            if last is not None and last[0] <= ts < last[1]:
                continue
            if self._covered(ts) or not low <= ts < high:
                continue
            last = self.period(ts)
            wanted.add(last)
        for start, end in sorted(wanted):
            await self.create_partition(conn, start, end)

    async def create_partition(self, conn: asyncpg.Connection, start: int, end: int) -> bool:
        """Create the partition for [start, end), moving its rows out of DEFAULT.

        Where neighbours already cover part of the period, the new partition
        covers the rest. Creating the table separately and ATTACHing it takes
        only SHARE UPDATE EXCLUSIVE on `events` (readers and writers go on),
        plus a short ACCESS EXCLUSIVE on the DEFAULT partition; a lock timeout
        makes it give up rather than queue readers behind it. Returns whether
        a partition was created.

        The DDL lock itself is waited for, without that timeout: another
        replica holding it may be attaching this very period, and an event
        sent to DEFAULT meanwhile fails ("violates partition constraint")
        when that ATTACH commits; after the wait, the partition is there.
        """
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK)
                await conn.execute(f"SET LOCAL lock_timeout = {int(self._lock_timeout_ms)}")
                existing = await self.partitions(conn)
                for _, lo, hi in existing:
                    if lo <= start and end <= hi:
                        self._ranges = [(p[1], p[2]) for p in existing]
                        return False
                    if lo < end and hi > start:  # overlap: keep the uncovered part
                        if lo <= start:
                            start = hi
                        else:
                            end = lo
                if start >= end:
                    return False
                name = _partition_name(start, self.partition_interval)
                columns = ", ".join(EVENT_COLUMNS)
                await conn.execute(
                    f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
                await conn.execute(
                    f"WITH moved AS (DELETE FROM events_default "
                    f"WHERE ts >= {start} AND ts < {end} RETURNING {columns}) "
                    f"INSERT INTO {name} ({columns}) SELECT {columns} FROM moved"
                )
                await conn.execute(
                    f"ALTER TABLE events ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ({start}) TO ({end})"
                )
                self._ranges = sorted([(p[1], p[2]) for p in existing] + [(start, end)])
                log.info("created partition %s", name)
                return True
        except asyncpg.PostgresError as exc:  # best effort: DEFAULT takes the events
            log.warning(
                "partition for [%d, %d) not created now (%s); events go to DEFAULT", start, end, exc
            )
            return False

    async def maintain(self) -> None:
        """Keep the current period and the next few created ahead of the writes."""
        async with self._require_pool().acquire() as conn:
            self._ranges = [(p[1], p[2]) for p in await self.partitions(conn)]
            ts = _now_us()
            for _ in range(self._ahead + 1):
                start, end = self.period(ts)
                if not self._covered(start):
                    await self.create_partition(conn, start, end)
                ts = end

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self._maintenance_seconds)
            try:
                await self.maintain()
            except Exception as exc:
                faults.log_failure(log, "partition maintenance failed; retrying later", exc)

    # -- retention -------------------------------------------------------------

    async def delete_before(self, cutoff_us: int) -> int:
        """Remove events older than cutoff_us; returns how many.

        Partitions wholly before the cutoff are detached and dropped (a
        metadata change, not a delete); detaching needs a brief ACCESS
        EXCLUSIVE lock on `events`, taken with a short lock timeout so that
        readers never queue behind it, and when it cannot be had the
        partition's rows are deleted in small batches instead (the empty
        partition is dropped by a later run). The rest (the boundary
        partition, DEFAULT) is deleted in small batches driven by
        `event_keys`, one short transaction each.
        """
        pool = self._require_pool()
        removed = 0
        async with pool.acquire() as conn:
            for name, _, end in await self.partitions(conn):
                if end <= cutoff_us:
                    removed += await self._drop_partition(conn, name)
            tenants = [
                int(t) for (t,) in await conn.fetch("SELECT tenant_id FROM tenant_positions")
            ]
        for tenant_id in tenants:
            while True:
                async with pool.acquire() as conn, conn.transaction():
                    keys, events = await _delete_keyed_batch(conn, tenant_id, cutoff_us)
                removed += events
                if keys < _DELETE_BATCH:
                    break
        return removed

    async def _drop_partition(self, conn: asyncpg.Connection, name: str) -> int:
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {int(self._lock_timeout_ms)}")
                await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK)
                await conn.execute(f"ALTER TABLE events DETACH PARTITION {name}")
        except asyncpg.LockNotAvailableError:
            log.info("partition %s busy; deleting its rows in batches instead", name)
            return await self._delete_rows(conn, name)
        async with conn.transaction():
            await conn.execute(_RAISE_FLOORS.format(source=name))
            count = int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            await conn.execute(f"DROP TABLE {name}")
        self._ranges = [(p[1], p[2]) for p in await self.partitions(conn)]
        log.info("retention dropped partition %s (%d events)", name, count)
        return count

    @staticmethod
    async def _delete_rows(conn: asyncpg.Connection, table: str) -> int:
        """Empty one partition in short batches, tenant by tenant (each batch on one shard)."""
        removed = 0
        tenants = [int(t) for (t,) in await conn.fetch("SELECT tenant_id FROM tenant_positions")]
        for tenant_id in tenants:
            while True:
                async with conn.transaction():
                    deleted, top = await conn.fetchrow(
                        f"WITH d AS (DELETE FROM {table} WHERE tenant_id = $1 AND ctid = ANY(ARRAY("
                        f"SELECT ctid FROM {table} WHERE tenant_id = $1 LIMIT $2)) RETURNING id) "
                        "SELECT count(*), max(id) FROM d",
                        tenant_id,
                        _DELETE_BATCH,
                    )
                    await _raise_floor(conn, tenant_id, top)
                removed += int(deleted)
                if deleted < _DELETE_BATCH:
                    break
        return removed

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

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """Hear every replica's commits (NOTIFY), reconnecting when the link drops.

        While the link is down, waiters still wake by their timeout and
        re-read the position, so nothing is missed, only later.
        """
        delay = 0.5
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                self._schema = str(await conn.fetchval("SELECT current_schema()"))
                await conn.add_listener(CHANNEL, self._heard)
                # Commits made while we were not listening, of the tenants followed here.
                for tenant_id, position in await conn.fetch(
                    "SELECT tenant_id, last_id FROM tenant_positions "
                    "WHERE tenant_id = ANY($1::bigint[])",
                    self._commits.tenants(),
                ):
                    self._commits.publish(int(tenant_id), int(position))
                if not ready.done():
                    ready.set_result(None)
                delay = 0.5
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not ready.done():
                    ready.set_exception(exc)
                    return
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        parsed = parse_payload(payload, self._schema)
        if parsed is not None:
            self._commits.publish(*parsed)


#: Session settings for every connection: JIT compiles long queries for tens of
#: milliseconds, a loss for the short indexed queries this service runs.
_SESSION = {"jit": "off", "application_name": "mailevents"}


def _partition_name(start_us: int, interval: str) -> str:
    t = _EPOCH + timedelta(microseconds=start_us)
    name = f"events_p{t.year:04d}{t.month:02d}"
    if interval == "day" or t.day != 1 or t.hour or t.minute:
        name += f"{t.day:02d}"
    if t.hour or t.minute or t.second or t.microsecond:
        name += f"_{start_us}"
    return name
