"""What only the PostgreSQL store has: migrations under concurrent start,
partitions (ahead, on demand, DEFAULT, moving rows out of it), retention by
dropping partitions, commit-ordered ids across replicas, NOTIFY wake-ups,
and query plans that use the indexes.

The behaviour both stores share is in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from factories import event
from pgtest import SERVER_BACKENDS, fresh_database

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest import prepare
from mailevents_server.query.fields import BY_NAME, DATA_COLUMNS
from mailevents_server.query.model import Predicate, Query
from mailevents_server.store import postgres_partitions, postgres_sql
from mailevents_server.store.postgres import PostgresStore, split_url
from mailevents_server.store.postgres_partitions import DDL_LOCK
from mailevents_server.store.postgres_schema import MIGRATIONS

pytestmark = pytest.mark.postgres

DAY = 86_400
#: A Sort node in EXPLAIN output (a Merge Append's "Sort Key" is not one).
_SORT = re.compile(r"(?m)^\s*(->\s*)?(Incremental )?Sort\s+\(")


@pytest.fixture(params=SERVER_BACKENDS)
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh database on PostgreSQL, and a fresh schema on Citus."""
    async with fresh_database(request.param) as u:
        yield u


def with_options(url: str, options: str) -> str:
    """The URL with our store options added to its query string."""
    return url + ("&" if "?" in url else "?") + options


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def seconds(year: int, month: int, day: int = 15) -> int:
    return int(datetime(year, month, day, 12, tzinfo=UTC).timestamp())


async def partition_names(url: str) -> dict[str, int]:
    """Each range partition of events with its row count, and DEFAULT's."""
    conn = await asyncpg.connect(url)
    try:
        names = [p[0] for p in await postgres_partitions.existing(conn)] + ["events_default"]
        return {n: int(await conn.fetchval(f"SELECT count(*) FROM {n}")) for n in names}
    finally:
        await conn.close()


# -- schema -------------------------------------------------------------------------------


async def test_replicas_starting_together_migrate_once(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        secrets = {await s.secret() for s in stores}
        assert len(secrets) == 1
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT version FROM mev_schema") == len(MIGRATIONS)
            assert await conn.fetchval("SELECT count(*) FROM mev_schema") == 1
        finally:
            await conn.close()
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_event_columns_are_the_field_registry(store: PostgresStore, url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'events' AND table_schema = current_schema() "
            "ORDER BY ordinal_position"
        )
    finally:
        await conn.close()
    assert [r[0] for r in rows] == ["id", "tenant_id", *DATA_COLUMNS, "data"]


def test_url_options_are_ours_and_removed() -> None:
    url, options = split_url("postgresql://u@h:5/db?partition_interval=day&sslmode=disable")
    assert url == "postgresql://u@h:5/db?sslmode=disable"
    assert options == {"partition_interval": "day"}


# -- partitions ---------------------------------------------------------------------------


async def test_partitions_ahead_on_demand_and_default(url: str) -> None:
    store = PostgresStore(with_options(url, "partitions_ahead=2"))
    await store.open()
    try:
        now = datetime.now(UTC)
        names = await partition_names(url)
        assert f"events_p{now.year:04d}{now.month:02d}" in names
        assert len(names) == 1 + 3  # DEFAULT, this month and two ahead

        tenant = await store.create_key("acme", "h")
        two_years_ago = int(time.time()) - 730 * DAY
        far_past = seconds(1990, 5)
        ready, _ = prepare([event("recentish", ts=two_years_ago), event("ancient", ts=far_past)])
        await store.write(tenant, ready)
        names = await partition_names(url)
        then = datetime.fromtimestamp(two_years_ago, UTC)
        assert names[f"events_p{then.year:04d}{then.month:02d}"] == 1  # made on demand
        assert names["events_default"] == 1  # too far off: no partition made for it

        # A partition made later for DEFAULT's rows takes them over.
        start, end = store.partitions.period(far_past * 1_000_000)
        async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
            async with pool.acquire() as conn:
                assert await store.partitions.create(conn, start, end)
        names = await partition_names(url)
        assert names["events_default"] == 0 and names["events_p199005"] == 1
        row = await store.get(tenant, event_id="ancient")
        assert row is not None and row[0] == far_past * 1_000_000
        assert await store.count(Query(tenant)) == 2
    finally:
        await store.close()


async def test_daily_partitions(url: str) -> None:
    store = PostgresStore(with_options(url, "partition_interval=day&partitions_ahead=1"))
    await store.open()
    try:
        today = datetime.now(UTC)
        names = await partition_names(url)
        assert f"events_p{today.year:04d}{today.month:02d}{today.day:02d}" in names
        assert len(names) == 1 + 2
    finally:
        await store.close()


async def attach_as_another_replica(
    conn: asyncpg.Connection, name: str, start: int, end: int
) -> None:
    """What a replica's create_partition does, in the caller's open transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK)
    await conn.execute(
        f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    await conn.execute(
        f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
    )


async def test_a_write_waits_for_another_replicas_partition_ddl(url: str) -> None:
    """Another replica is attaching the partition a write needs: the write must
    not give up on it and go to DEFAULT, whose partition constraint that attach
    is narrowing (PostgreSQL rejects such a row: "violates partition
    constraint"); it waits for the attach and lands in the new partition."""
    store = PostgresStore(url, lock_timeout_ms=100)
    await store.open()
    other = await asyncpg.connect(url)  # the other replica, mid-DDL
    try:
        tenant = await store.create_key("acme", "h")
        start, end = store.partitions.period(seconds(2024, 2) * 1_000_000)
        ready, _ = prepare([event("during-attach", ts=seconds(2024, 2))])
        async with other.transaction():
            await attach_as_another_replica(other, "events_p202402", start, end)
            writing = asyncio.create_task(store.write(tenant, ready))
            await asyncio.sleep(2)  # far beyond the lock timeout: the write is waiting
            assert not writing.done()
        await asyncio.wait_for(writing, 30)
        assert (await partition_names(url))["events_p202402"] == 1
    finally:
        await other.close()
        await store.close()


async def test_a_write_to_default_is_not_undercut_by_an_attach(url: str) -> None:
    """A write whose own partition could not be made now (a reader holds
    DEFAULT) sends its event to DEFAULT; another replica attaching that period
    meanwhile waits for the commit, or the commit for it: never does the ATTACH
    commit between the routing and the row."""
    store = PostgresStore(url, lock_timeout_ms=100)
    await store.open()
    reader, other = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        tenant = await store.create_key("acme", "h")
        start, end = store.partitions.period(seconds(2024, 3) * 1_000_000)
        ready, _ = prepare([event("beside-attach", ts=seconds(2024, 3))])
        reading = reader.transaction()
        await reading.start()
        await reader.fetchval("SELECT count(*) FROM events_default")  # ATTACH must wait
        prepared, attached = asyncio.Event(), asyncio.Event()
        assert store._writers is not None
        original = store._writers._prepare

        async def prepare_then_pause(conn: asyncpg.Connection, batch: list[object]) -> object:
            lock = await original(conn, batch)  # type: ignore[arg-type]
            prepared.set()
            await attached.wait()
            return lock

        store._writers._prepare = prepare_then_pause  # type: ignore[assignment]
        writing = asyncio.create_task(store.write(tenant, ready))
        await asyncio.wait_for(prepared.wait(), 30)
        assert "events_p202403" not in await partition_names(url)  # gave up: DEFAULT
        await reading.rollback()
        async with other.transaction():
            await attach_as_another_replica(other, "events_p202403", start, end)
            attached.set()
            await asyncio.sleep(2)  # the commit is waiting
            assert not writing.done()
        await asyncio.wait_for(writing, 30)
        assert (await partition_names(url))["events_p202403"] == 1
    finally:
        await reader.close()
        await other.close()
        await store.close()


async def test_retention_drops_whole_partitions(store: PostgresStore, url: str) -> None:
    tenant = await store.create_key("acme", "h")
    now = int(time.time())
    ready, _ = prepare(
        [event(f"m{m}-{i}", ts=now - m * 31 * DAY + i) for m in (0, 2, 3, 4) for i in range(10)]
    )
    written = await store.write(tenant, ready)
    before = await partition_names(url)
    cutoff = (now - 45 * DAY) * 1_000_000
    removed = await store.delete_before(cutoff)
    assert removed == 30
    # Dropped with their partitions, the removed events still raise the floor.
    assert await store.retention_floor(tenant) == max(w.id for w in written[10:])
    after = await partition_names(url)
    dropped = set(before) - set(after)
    assert len(dropped) >= 2  # months 3 and 4 are wholly before the cutoff
    assert all(end <= cutoff for name, _, end in await _bounds(url, before) if name in dropped)
    assert await store.count(Query(tenant)) == 10
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM event_keys WHERE ts < $1", cutoff) == 0
    finally:
        await conn.close()


async def _bounds(url: str, names: dict[str, int]) -> list[tuple[str, int, int]]:
    # Bounds of dropped partitions are gone from the catalog: recompute them from the names.
    out = []
    for name in names:
        if name == "events_default":
            continue
        y, m = int(name[8:12]), int(name[12:14])
        start = datetime(y, m, 1, tzinfo=UTC)
        end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
        out.append((name, int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)))
    return out


async def test_retention_does_not_wait_for_a_long_reader(url: str) -> None:
    """A stream holding `events` open makes DETACH wait: retention gives up on
    the lock quickly and deletes the partition's rows in batches instead."""
    store = PostgresStore(url, lock_timeout_ms=200)
    await store.open()
    reader = await asyncpg.connect(url)
    try:
        tenant = await store.create_key("acme", "h")
        now = int(time.time())
        ready, _ = prepare([event(f"old{i}", ts=now - 100 * DAY + i) for i in range(20)])
        written = await store.write(tenant, ready)
        transaction = reader.transaction()
        await transaction.start()
        await reader.fetchval("SELECT count(*) FROM events")  # holds ACCESS SHARE
        started = time.monotonic()
        assert await store.delete_before((now - 50 * DAY) * 1_000_000) == 20
        assert time.monotonic() - started < 5
        assert await store.retention_floor(tenant) == max(w.id for w in written)
        # Readers were never queued behind the DDL.
        assert await store.count(Query(tenant)) == 0
        await transaction.rollback()
        then = datetime.fromtimestamp(now - 100 * DAY, UTC)
        assert f"events_p{then.year:04d}{then.month:02d}" in await partition_names(url)
        await store.delete_before((now - 50 * DAY) * 1_000_000)  # now it can drop it
        assert f"events_p{then.year:04d}{then.month:02d}" not in await partition_names(url)
    finally:
        await reader.close()
        await store.close()


# -- ids in commit order ------------------------------------------------------------------


async def test_ids_follow_commit_order_across_replicas(url: str) -> None:
    """Two stores (as two replicas) write at once; every snapshot a reader
    takes holds exactly the ids 1..max: no commit ever lands below one
    already visible, which is what max_id snapshots and live tails need."""
    stores = [PostgresStore(url), PostgresStore(url)]
    for s in stores:
        await s.open()
    checker = await asyncpg.connect(url)
    try:
        tenant = await stores[0].create_key("acme", "h")
        done = asyncio.Event()

        async def produce(n: int) -> None:
            for b in range(40):
                ready, _ = prepare(
                    [event(f"w{n}-{b}-{i}", ts=1_700_000_000 + i) for i in range(25)]
                )
                await stores[n % 2].write(tenant, ready)

        async def check() -> int:
            checks = 0
            while not done.is_set():
                # One statement, one snapshot.
                position, count, highest = await checker.fetchrow(
                    "SELECT coalesce((SELECT last_id FROM tenant_positions "
                    "WHERE tenant_id = $1), 0), count(*), coalesce(max(id), 0) "
                    "FROM events WHERE tenant_id = $1",
                    tenant,
                )
                assert count == highest, "a visible id has an invisible one below it"
                assert position == highest, "the position runs ahead of or behind the rows"
                checks += 1
                await asyncio.sleep(0)
            return checks

        checking = asyncio.create_task(check())
        await asyncio.gather(*(produce(n) for n in range(4)))
        done.set()
        assert await checking > 10
        assert await stores[1].last_id(tenant) == 4 * 40 * 25
    finally:
        await checker.close()
        for s in stores:
            await s.close()


async def test_commits_wake_waiters_on_other_replicas(url: str) -> None:
    writer, watcher = PostgresStore(url), PostgresStore(url)
    await writer.open()
    await watcher.open()
    try:
        tenant = await writer.create_key("acme", "h")
        position = await watcher.last_id(tenant)
        waiting = asyncio.create_task(watcher.wait_for_commit(tenant, position, 30))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        started = time.monotonic()
        await writer.write(tenant, prepare([event("n1"), event("n2")])[0])
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 1  # NOTIFY, not the timeout
        mark = await watcher.watermark(tenant)
        rows = await watcher.read_after(Query(tenant, max_id=mark.position), position, 10)
        assert [r[1] for r in rows] == [position + 1, position + 2]
    finally:
        await writer.close()
        await watcher.close()


async def test_commits_in_another_schema_wake_no_waiter(url: str) -> None:
    """NOTIFY's channel is the database's: a deployment in another schema of it
    (another test's, on Citus), with the same tenant ids, must not wake ours."""
    elsewhere = f"elsewhere_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE SCHEMA {elsewhere}")
    watcher = PostgresStore(url)
    neighbour = PostgresStore(with_options(url.split("?")[0], f"search_path={elsewhere}"))
    await watcher.open()
    await neighbour.open()
    try:
        tenant = await watcher.create_key("acme", "h")
        assert await neighbour.create_key("acme", "h") == tenant
        waiting = asyncio.create_task(watcher.wait_for_commit(tenant, 0, 30))
        await neighbour.write(tenant, prepare([event("theirs")])[0])
        await asyncio.sleep(0.5)
        assert not waiting.done()
        waiting.cancel()
    finally:
        await neighbour.close()
        await watcher.close()
        await admin.execute(f"DROP SCHEMA {elsewhere} CASCADE")
        await admin.close()


# -- text PostgreSQL cannot hold ----------------------------------------------------------


async def test_nul_characters_are_stored_and_matched(store: PostgresStore) -> None:
    tenant = await store.create_key("acme", "h")
    ready, _ = prepare([event("nul\x00id", campaign_id="a\x00b")])
    result = await store.write(tenant, ready)
    row = await store.get(tenant, event_id="nul\x00id")
    assert row is not None and row[1] == result[0].id
    assert b"a\x00b" in row[2]  # the stored event is exact
    pred = Predicate(BY_NAME["campaign_id"], spb.OPERATOR_CONTAINS, ("\x00b",))
    assert await store.count(Query(tenant, predicates=(pred,))) == 1


# -- plans --------------------------------------------------------------------------------


def _q(tenant: int, *preds: Predicate, **kw: object) -> Query:
    return Query(tenant, predicates=preds, **kw)  # type: ignore[arg-type]


def _p(field: str, op: int, *values: object) -> Predicate:
    return Predicate(BY_NAME[field], op, values)  # type: ignore[arg-type]


async def test_main_query_shapes_use_indexes(store: PostgresStore, url: str) -> None:
    if store.citus:
        # The shards' plans depend on each shard's statistics (tiny, empty
        # partitions are scanned); the indexes are the same tables' indexes.
        pytest.skip("query plans are checked on plain PostgreSQL")
    tenant = await store.create_key("acme", "h")
    now = int(time.time())
    evs = [
        event(
            f"e{i}",
            ts=now - (i % 60) * DAY,
            campaign_id=f"c{i % 7}",
            recipient=f"r{i % 13}@x.org",
            message_id=f"m{i % 11}",
            transmission_id=f"t{i % 5}",
            template_id=f"tp{i % 3}",
            bulk_email_id=i % 17,
            send_email_id=i % 19,
        )
        for i in range(3000)
    ]
    await store.write(tenant, prepare(evs)[0])
    mid = (now - 10 * DAY) * 1_000_000
    shapes: dict[str, Query] = {
        "newest": _q(tenant, max_id=3000),
        "oldest": _q(tenant, descending=False),
        "next page": _q(tenant, after=(mid, 1500), max_id=3000),
        "campaign": _q(tenant, _p("campaign_id", spb.OPERATOR_EXACT, "c3")),
        "recipient": _q(tenant, _p("recipient", spb.OPERATOR_EXACT, "r1@x.org")),
        "message": _q(tenant, _p("message_id", spb.OPERATOR_EXACT, "m2")),
        "transmission": _q(tenant, _p("transmission_id", spb.OPERATOR_EXACT, "t1")),
        "template": _q(tenant, _p("template_id", spb.OPERATOR_EXACT, "tp1")),
        "type": _q(tenant, _p("type", spb.OPERATOR_EXACT, 2)),
        "types": _q(tenant, _p("type", spb.OPERATOR_IN, 2, 3)),
        "bulk email": _q(tenant, _p("bulk_email_id", spb.OPERATOR_EXACT, 4)),
        "type name": _q(tenant, _p("type_name", spb.OPERATOR_EXACT, "bounce")),  # rare here
        "send email": _q(tenant, _p("send_email_id", spb.OPERATOR_EXACT, 4)),
        "event id": _q(tenant, _p("event_id", spb.OPERATOR_EXACT, "e5")),
        "window": _q(tenant, start_us=mid, end_us=mid + DAY * 1_000_000),
        # Deep offset pages: the skip is a keyset bound found by an inner OFFSET.
        "newest, skipped": _q(tenant, max_id=3000, skip=2000),
        "by id, skipped": _q(tenant, by_id=True, descending=False, max_id=3000, skip=2000),
        "mixed": _q(tenant, max_id=3000, mixed=True),
        "mixed, next page": _q(tenant, after=(mid, 1500), max_id=3000, mixed=True),
    }
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("ANALYZE events")

        async def plan(text: str, params: list[object]) -> str:
            rows = await conn.fetch(f"EXPLAIN {text}", *params)
            return "\n".join(r[0] for r in rows)

        for name, q in shapes.items():
            text, params = postgres_sql.select(q, limit=101, icu=store.icu)
            found = await plan(text, params)
            assert "Seq Scan" not in found, f"{name}:\n{found}"
            if name == "type name":  # Tastypie's event_name: found by its own index
                assert re.search(r"Index Cond: .*type_name", found), found
            if name.startswith("mixed"):  # only runs of equal timestamps are sorted
                assert "Incremental Sort" in found and not _SORT.search(
                    found.replace("Incremental Sort", "")
                ), f"{name}:\n{found}"
            if name.endswith("skipped"):
                assert text.count("OFFSET") == 1, text
                assert "Limit" in found and "InitPlan" in found, f"{name}:\n{found}"
            if name in (
                "newest",
                "oldest",
                "next page",
                "campaign",
                "recipient",
                "newest, skipped",
                "by id, skipped",
            ):
                assert not _SORT.search(found), f"{name} should read in index order:\n{found}"
        window = await plan(*postgres_sql.select(shapes["window"], limit=101, icu=store.icu))
        # Pruned to the one partition holding the window.
        assert (
            "events_default" not in window
            and len(set(re.findall(r" on (events_p\d+)", window))) == 1
        ), window
        by_id = await plan(
            "SELECT ts, id, data FROM events WHERE tenant_id = $1 AND id = $2", [tenant, 7]
        )
        assert "Seq Scan" not in by_id, by_id
        params = postgres_sql.Params()
        clause = postgres_sql.where(shapes["newest"], params, keyset=False)
        tail = await plan(
            f"SELECT ts, id, data FROM events WHERE {clause} AND id > {params.add(2900)} "
            f"ORDER BY id LIMIT {params.add(100)}",
            params.values,
        )
        assert "Seq Scan" not in tail, tail
    finally:
        await conn.close()
