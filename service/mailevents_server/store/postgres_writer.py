"""The PostgreSQL write path: one commit order per tenant, no lock shared by tenants.

Each tenant's commits are serialized by the row lock on its row of
`tenant_positions` (taken by the upsert that reads its position), which on
Citus lives on the tenant's shard, beside its events. Under that lock a
transaction reads the tenant's position, assigns the next ids, inserts the
events and their dedup keys, advances the position and commits. PostgreSQL
makes a commit visible before it releases the transaction's locks, so the
tenant's next writer (on any replica) can only allocate ids after every
smaller id of the tenant is visible: a reader that sees id N of a tenant
sees every committed id below N of that tenant, which is what `max_id`
snapshots and resuming a live tail by position rely on. Writers of other
tenants take other rows' locks and never wait for this one.

In a process, each tenant has its own group-commit lane (a queue and a
task, as in the SQLite writer: whatever a tenant's callers queue during a
commit goes into its next one); lanes share a small pool of connections, so
a tenant whose commit waits (on another replica's transaction, say) holds up
one connection, not the other tenants. Those connections are a pool of
their own (`open_pool`), the one the store's `synchronous` option applies to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from mailevents_server import faults, wire
from mailevents_server.ingest import PreparedEvent
from mailevents_server.metrics import Metrics
from mailevents_server.query.fields import DATA_COLUMNS
from mailevents_server.store import postgres_pool
from mailevents_server.store import postgres_sql as sql
from mailevents_server.store.base import Outcome, WriteResult
from mailevents_server.store.group_commit import WriteQueue, WriteRequest, run_writer, submit

#: The channel every commit notifies, with "<tenant id>:<new position>".
CHANNEL = "mailevents_commits"

EVENT_COLUMNS: tuple[str, ...] = ("id", "tenant_id", *DATA_COLUMNS, "data")
KEY_COLUMNS: tuple[str, ...] = ("tenant_id", "event_id", "id", "ts")
TS = DATA_COLUMNS.index("ts")

#: Reads the tenant's position and locks its row until the transaction ends
#: (a new tenant's row is created at 0).
LOCK_POSITION = (
    "INSERT INTO tenant_positions (tenant_id, last_id) VALUES ($1, 0) "
    "ON CONFLICT (tenant_id) DO UPDATE SET last_id = tenant_positions.last_id "
    "RETURNING last_id"
)

#: Runs before a commit's transaction; returns an advisory lock for the commit to
#: hold shared, or None.
Prepare = Callable[[asyncpg.Connection, list[WriteRequest]], Awaitable[int | None]]
Committed = Callable[[int, int], None]


async def open_pool(url: str, *, size: int, synchronous: str) -> asyncpg.Pool:
    """The writers' connections: the session settings, with synchronous_commit off
    when `synchronous` is "OFF" or "NORMAL" (bulk loads, like SQLite's PRAGMA)."""
    writer_settings = dict(postgres_pool.SESSION)
    if synchronous.upper() in ("OFF", "NORMAL"):
        writer_settings["synchronous_commit"] = "off"
    return await postgres_pool.create(url, size, writer_settings)


def notify_payload(tenant_id: int, position: int) -> str:
    return f"{tenant_id}:{position}"


def parse_payload(payload: str, schema: str) -> tuple[int, int] | None:
    """(tenant, position) from the NOTIFY payload of a commit in `schema`; None for
    anything else (the channel is the database's: deployments in other schemas
    of it, with the same tenant ids, notify it too)."""
    parts = payload.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != schema:
        return None
    tenant, position = parts[1:]
    try:
        return int(tenant), int(position)
    except ValueError:
        return None


async def commit_tenant(
    conn: asyncpg.Connection, tenant_id: int, batch: list[WriteRequest]
) -> tuple[list[list[WriteResult]], int]:
    """One transaction storing a tenant's batch; returns the results and the new position."""
    async with conn.transaction():
        last_id = int(await conn.fetchval(LOCK_POSITION, tenant_id))
        wanted = [sql.clean(ev.event_id) for req in batch for ev in req.events]
        found = await conn.fetch(
            "SELECT event_id, id FROM event_keys "
            "WHERE tenant_id = $1 AND event_id = ANY($2::text[])",
            tenant_id,
            wanted,
        )
        existing: dict[str, int] = {str(r[0]): int(r[1]) for r in found}
        next_id = last_id + 1
        all_results: list[list[WriteResult]] = []
        rows: list[tuple[Any, ...]] = []
        keys: list[tuple[int, str, int, int]] = []
        for req in batch:
            results: list[WriteResult] = []
            for ev in req.events:
                event_id = sql.clean(ev.event_id)
                known = existing.get(event_id)
                if known is not None:
                    results.append(WriteResult(ev.index, ev.event_id, Outcome.DUPLICATE, known))
                    continue
                new_id = next_id
                next_id += 1
                existing[event_id] = new_id
                columns = tuple(sql.clean(v) for v in ev.columns)
                rows.append((new_id, tenant_id, *columns, wire.stored_event(new_id, ev.body)))
                keys.append((tenant_id, event_id, new_id, columns[TS]))
                results.append(WriteResult(ev.index, ev.event_id, Outcome.STORED, new_id))
            all_results.append(results)
        if rows:
            # A key stored by a writer that did not hold the tenant's row
            # lock would fail this COPY (unique violation): the batch fails
            # rather than store an event twice.
            await conn.copy_records_to_table("event_keys", records=keys, columns=KEY_COLUMNS)
            await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)
            await conn.execute(
                "UPDATE tenant_positions SET last_id = $2 WHERE tenant_id = $1",
                tenant_id,
                next_id - 1,
            )
            await conn.execute(
                "SELECT pg_notify($1, current_schema() || ':' || $2)",
                CHANNEL,
                notify_payload(tenant_id, next_id - 1),
            )
    return all_results, next_id - 1


class TenantWriters:
    """A group-commit lane per tenant over a shared pool of writer connections."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        prepare: Prepare,
        committed: Committed,
        metrics: Callable[[], Metrics],
    ) -> None:
        self._pool = pool
        self._prepare = prepare
        self._committed = committed
        self._metrics = metrics
        self._lanes: dict[int, tuple[WriteQueue, asyncio.Task[None]]] = {}
        self._closed = False

    async def write(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[WriteResult]:
        if self._closed:
            raise faults.StoreClosed("store is closed")
        lane = self._lanes.get(tenant_id)
        if lane is None:
            queue: WriteQueue = asyncio.Queue()
            task = asyncio.create_task(
                run_writer(
                    queue,
                    lambda batch: self._commit(tenant_id, batch),
                    committed=lambda: None,
                    metrics=self._metrics,
                ),
                name=f"postgres-writer-{tenant_id}",
            )
            lane = self._lanes[tenant_id] = (queue, task)
        return await submit(lane[0], lane[1], WriteRequest(tenant_id, events))

    async def _commit(self, tenant_id: int, batch: list[WriteRequest]) -> list[list[WriteResult]]:
        async with self._pool.acquire() as conn:
            lock = await self._prepare(conn, batch)
            if lock is None:
                results, position = await commit_tenant(conn, tenant_id, batch)
            else:
                # Held over the whole transaction; should the commit fail, the
                # pool's reset of the connection (pg_advisory_unlock_all) lets go.
                await conn.execute("SELECT pg_advisory_lock_shared($1)", lock)
                results, position = await commit_tenant(conn, tenant_id, batch)
                await conn.execute("SELECT pg_advisory_unlock_shared($1)", lock)
        self._committed(tenant_id, position)
        return results

    async def close(self) -> None:
        """Finish what every lane has queued, then stop the lanes."""
        self._closed = True
        lanes = list(self._lanes.values())
        self._lanes.clear()
        for queue, _ in lanes:
            await queue.put(None)
        for _, task in lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await task
