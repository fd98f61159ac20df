"""Commit order per tenant on PostgreSQL and Citus: tenants never wait on each other's
writes; resume positions from before the per-tenant order stay valid; a plain
PostgreSQL database that later gets Citus is laid out at start with its data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from factories import event
from pgtest import SERVER_BACKENDS, fresh_citus_schema, fresh_database

from mailevents_server.ingest import prepare
from mailevents_server.query.model import Query
from mailevents_server.store import postgres_citus
from mailevents_server.store.group_commit import WriteRequest
from mailevents_server.store.postgres import PostgresStore
from mailevents_server.store.postgres_schema import MIGRATIONS
from mailevents_server.store.postgres_writer import commit_tenant

pytestmark = pytest.mark.postgres


@pytest.fixture(params=SERVER_BACKENDS)
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with fresh_database(request.param) as u:
        yield u


async def stored_ids(store: PostgresStore, tenant: int) -> list[str]:
    rows = await store.page(Query(tenant, max_id=await store.last_id(tenant)), 10_000)
    found = []
    for _, id_, _ in rows:
        got = await store.get(tenant, id=id_)
        assert got is not None
        found.append(id_)
    return sorted(found)


async def test_a_tenant_blocked_mid_commit_does_not_hold_up_another(url: str) -> None:
    """Tenant A's write transaction is held open (it waits on a conflicting key that
    another session inserted and has not committed); tenant B's write, on another
    replica and on the same one, commits and is acknowledged meanwhile; then A
    commits, with nothing lost and its ids in order."""
    first, second = PostgresStore(url), PostgresStore(url)
    await first.open()
    await second.open()
    blocker = await asyncpg.connect(url)
    try:
        a = await first.create_key("a", "ha")
        b = await first.create_key("b", "hb")
        await first.write(a, prepare([event("a0")])[0])
        # Another session inserts A's key "a2" and keeps its transaction open:
        # A's commit that stores "a2" must wait for it (unique key).
        held = blocker.transaction()
        await held.start()
        await blocker.execute(
            "INSERT INTO event_keys (tenant_id, event_id, id, ts) VALUES ($1, 'a2', 999, 0)", a
        )
        a_write = asyncio.ensure_future(
            first.write(a, prepare([event("a1"), event("a2"), event("a3")])[0])
        )
        await asyncio.sleep(0.5)
        assert not a_write.done(), "A's commit should be waiting on the uncommitted key"
        for replica in (second, first):
            started = time.monotonic()
            results = await asyncio.wait_for(
                replica.write(b, prepare([event(f"b-{id(replica)}-{i}") for i in range(3)])[0]),
                10,
            )
            assert len(results) == 3 and time.monotonic() - started < 5
            assert not a_write.done(), "B was acknowledged while A still waits"
        await held.rollback()  # the other session gives up its key
        results = await asyncio.wait_for(a_write, 10)
        assert [r.id for r in results] == [2, 3, 4]
        assert await stored_ids(second, a) == [1, 2, 3, 4]
        assert await stored_ids(second, b) == [1, 2, 3, 4, 5, 6]
        assert await second.last_id(a) == 4 and await second.last_id(b) == 6
    finally:
        await blocker.close()
        await first.close()
        await second.close()


async def test_positions_from_before_per_tenant_order_stay_valid(url: str) -> None:
    """A database made before commit order was per tenant (one position shared by
    all, `mev_position`): every existing tenant starts from that shared position,
    so a resume token issued before (position <= it) misses nothing after."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE mev_schema (version integer NOT NULL)")
        await conn.execute("INSERT INTO mev_schema VALUES (3)")
        for script in MIGRATIONS[:3]:
            await conn.execute(script)
        await conn.execute("INSERT INTO tenants (name, created_us) VALUES ('old', 0)")
        old = int(await conn.fetchval("SELECT id FROM tenants WHERE name = 'old'"))
        await conn.execute("UPDATE mev_position SET last_id = 500")
    finally:
        await conn.close()
    store = PostgresStore(url)
    await store.open()
    try:
        assert await store.last_id(old) == 500
        results = await store.write(old, prepare([event("after")])[0])
        assert results[0].id == 501
        new = await store.create_key("new", "hn")
        assert (await store.write(new, prepare([event("first")])[0]))[0].id == 1
        # A live position issued before the migration (<= 500) still reaches "after".
        rows = await store.read_after(Query(old, max_id=await store.last_id(old)), 480, 10)
        assert [r[1] for r in rows] == [501]
    finally:
        await store.close()


async def test_a_plain_database_that_gets_citus_is_distributed_at_start() -> None:
    """Tables made and filled without Citus's layout (as on plain PostgreSQL) are
    distributed at the next start, with their rows, and work on as before."""
    async with fresh_citus_schema() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE mev_schema (version integer NOT NULL)")
            await conn.execute(f"INSERT INTO mev_schema VALUES ({len(MIGRATIONS)})")
            for script in MIGRATIONS:
                await conn.execute(script)
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('token_secret', '\\x00'::bytea)"
            )
            await conn.execute("INSERT INTO tenants (id, name, created_us) VALUES (7, 't', 0)")
            await conn.execute(
                "INSERT INTO api_keys (key_hash, tenant_id, created_us) VALUES ('k', 7, 0)"
            )
            assert set((await postgres_citus.layout(conn)).values()) == {"local"}
            ready = prepare([event(f"e{i}") for i in range(20)])[0]
            await commit_tenant(conn, 7, [WriteRequest(7, ready)])
        finally:
            await conn.close()
        store = PostgresStore(url)
        await store.open()
        try:
            async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
                async with pool.acquire() as c:
                    laid = await postgres_citus.layout(c)
            assert {t: laid[t] for t in postgres_citus.REFERENCE_TABLES} == dict.fromkeys(
                postgres_citus.REFERENCE_TABLES, "reference"
            )
            assert {t: laid[t] for t in postgres_citus.DISTRIBUTED_TABLES} == dict.fromkeys(
                postgres_citus.DISTRIBUTED_TABLES, "distributed"
            )
            assert await store.tenant_for_key("k") == 7
            assert await store.count(Query(7)) == 20
            assert (await store.write(7, prepare([event("e20"), event("e3")])[0]))[0].id == 21
            assert await store.count(Query(7)) == 21  # e3 was a duplicate
        finally:
            await store.close()
