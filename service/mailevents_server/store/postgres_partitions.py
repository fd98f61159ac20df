"""The PostgreSQL store's partitions of `events` over time, from creation to retention.

`events` is RANGE-partitioned on `ts` (see postgres_schema), so everything
that follows time lives here: which period holds a timestamp, creating
partitions ahead (a maintenance task) and on demand before a write whose
events fall outside them, and retention, which drops whole partitions and
deletes the rest in small batches. It is apart from the store because none
of it is on the read path, and apart from the writer because the writer only
asks it, before each commit, for the partitions its events need.

DDL takes short lock timeouts and is best effort: the DEFAULT partition takes
any event that has no partition yet, and a later run finishes what one could
not. Retention raises each tenant's floor (`retention_floors`) to the highest
id it removed, in the same transaction as the removal.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import asyncpg

from mailevents_server import faults
from mailevents_server.store.group_commit import WriteRequest
from mailevents_server.store.postgres_pool import BoundedPool
from mailevents_server.store.postgres_writer import EVENT_COLUMNS, TS

log = logging.getLogger(__name__)

#: Advisory lock key (64-bit, per database) serializing partition DDL;
#: postgres_schema.MIGRATE_LOCK is of the same family.
DDL_LOCK = 0x6D65_7631_0003
INTERVALS = ("month", "day")
_DELETE_BATCH = 5_000
#: Raise each tenant's retention floor to the highest id among the rows of
#: `source` (a table or a DELETE's RETURNING tenant_id, id) about to be gone.
_RAISE_FLOORS = (
    "INSERT INTO retention_floors (tenant_id, max_id) "
    "SELECT tenant_id, max(id) FROM {source} GROUP BY tenant_id "
    "ON CONFLICT (tenant_id) DO UPDATE "
    "SET max_id = greatest(retention_floors.max_id, excluded.max_id)"
)
#: Partitions are made on demand only for events this close to now; others
#: go to the DEFAULT partition (a stray far-off timestamp must not create
#: thousands of partitions).
_ON_DEMAND_PAST = timedelta(days=3660)
_ON_DEMAND_FUTURE = timedelta(days=400)
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


async def existing(conn: asyncpg.Connection) -> list[tuple[str, int, int]]:
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


class Partitions:
    """The partitions of `events`: what exists (cached), what to create, what to drop.

    `interval` is "month" or "day" (pick "day" with a short retention, so
    that retention drops whole partitions); `ahead` is how many future
    periods `maintain` keeps created; `pool` gives the store's pool for
    short queries.
    """

    def __init__(
        self,
        pool: Callable[[], BoundedPool],
        *,
        interval: str = "month",
        ahead: int = 3,
        lock_timeout_ms: int = 250,
    ) -> None:
        if interval not in INTERVALS:
            raise ValueError(f"partition_interval must be month or day, not {interval!r}")
        self.interval = interval
        self._pool = pool
        self._ahead = ahead
        self._lock_timeout_ms = lock_timeout_ms
        self._ranges: list[tuple[int, int]] = []  # partition bounds, sorted

    def period(self, ts_us: int) -> tuple[int, int]:
        """The [start, end) microseconds of the UTC month or day holding ts_us."""
        t = _EPOCH + timedelta(microseconds=ts_us)
        if self.interval == "day":
            start = datetime(t.year, t.month, t.day, tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            start = datetime(t.year, t.month, 1, tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
        return _us(start), _us(end)

    def _covered(self, ts_us: int) -> bool:
        i = bisect.bisect_right(self._ranges, (ts_us, 2**63)) - 1
        return i >= 0 and self._ranges[i][0] <= ts_us < self._ranges[i][1]

    # -- creating ------------------------------------------------------------

    async def before_write(self, conn: asyncpg.Connection, batch: list[WriteRequest]) -> int | None:
        """Before a commit's transaction: create the partitions its events need.

        Returns the DDL lock when some event still has none: the commit holds
        it shared, so that no ATTACH commits between routing such an event to
        DEFAULT and storing it there (the row would violate DEFAULT's narrowed
        partition constraint, and the commit fail).
        """
        stamps = [ev.columns[TS] for req in batch for ev in req.events]
        await self.ensure(conn, stamps)
        return None if all(self._covered(ts) for ts in stamps) else DDL_LOCK

    async def ensure(self, conn: asyncpg.Connection, stamps: Iterable[int]) -> None:
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
            await self.create(conn, start, end)

    async def create(self, conn: asyncpg.Connection, start: int, end: int) -> bool:
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
                found = await existing(conn)
                for _, lo, hi in found:
                    if lo <= start and end <= hi:
                        self._ranges = [(p[1], p[2]) for p in found]
                        return False
                    if lo < end and hi > start:  # overlap: keep the uncovered part
                        if lo <= start:
                            start = hi
                        else:
                            end = lo
                if start >= end:
                    return False
                name = _partition_name(start, self.interval)
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
                self._ranges = sorted([(p[1], p[2]) for p in found] + [(start, end)])
                log.info("created partition %s", name)
                return True
        except asyncpg.PostgresError as exc:  # best effort: DEFAULT takes the events
            log.warning(
                "partition for [%d, %d) not created now (%s); events go to DEFAULT", start, end, exc
            )
            return False

    async def maintain(self) -> None:
        """Keep the current period and the next few created ahead of the writes."""
        async with self._pool().acquire() as conn:
            self._ranges = [(p[1], p[2]) for p in await existing(conn)]
            ts = _now_us()
            for _ in range(self._ahead + 1):
                start, end = self.period(ts)
                if not self._covered(start):
                    await self.create(conn, start, end)
                ts = end

    async def maintain_every(self, seconds: float) -> None:
        """`maintain` now and then, for as long as the store is open (a task)."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.maintain()
            except Exception as exc:
                faults.log_failure(log, "partition maintenance failed; retrying later", exc)

    # -- retention -----------------------------------------------------------

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
        pool = self._pool()
        removed = 0
        async with pool.acquire() as conn:
            for name, _, end in await existing(conn):
                if end <= cutoff_us:
                    removed += await self._drop(conn, name)
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

    async def _drop(self, conn: asyncpg.Connection, name: str) -> int:
        try:
            async with conn.transaction():
                # Our own DDL lock is waited for (another replica's, or the
                # maintenance task's, partition creation ends soon, and no
                # reader queues behind an advisory lock); the lock timeout is
                # for the table locks of the DETACH, which readers would queue behind.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK)
                await conn.execute(f"SET LOCAL lock_timeout = {int(self._lock_timeout_ms)}")
                await conn.execute(f"ALTER TABLE events DETACH PARTITION {name}")
        except asyncpg.LockNotAvailableError:
            log.info("partition %s busy; deleting its rows in batches instead", name)
            return await _delete_rows(conn, name)
        async with conn.transaction():
            await conn.execute(_RAISE_FLOORS.format(source=name))
            count = int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            await conn.execute(f"DROP TABLE {name}")
        self._ranges = [(p[1], p[2]) for p in await existing(conn)]
        log.info("retention dropped partition %s (%d events)", name, count)
        return count


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


def _partition_name(start_us: int, interval: str) -> str:
    t = _EPOCH + timedelta(microseconds=start_us)
    name = f"events_p{t.year:04d}{t.month:02d}"
    if interval == "day" or t.day != 1 or t.hour or t.minute:
        name += f"{t.day:02d}"
    if t.hour or t.minute or t.second or t.microsecond:
        name += f"_{start_us}"
    return name
