"""Growing a Citus cluster under load: a third worker and the shard rebalancer, then
one tenant isolated to shards of its own and moved, each while a bulk ingest and
a live tail run through two `serve` replicas. Every acknowledged event is
stored once, and the tail sees each once, in commit order, with no gap.

These tests run on a cluster of their own (scripts/citus.sh with another state
file), since they change its shape; they need Citus installed, which the
shared cluster of MAILEVENTS_TEST_CITUS_URL shows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from factories import event, query
from pgtest import CITUS_SKIP_REASON, CITUS_URL
from replica_support import Replica, start_replica, stop_replica

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.auth import hash_key, new_key
from mailevents_server.store.postgres import PostgresStore

pytestmark = [pytest.mark.citus, pytest.mark.skipif(not CITUS_URL, reason=CITUS_SKIP_REASON)]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "citus.sh"
BATCH = 200


class Cluster:
    """A private cluster: its coordinator's URL, and a way to start one more worker."""

    def __init__(self, state: str) -> None:
        self.env = {**os.environ, "MAILEVENTS_CITUS_STATE": state}
        self.url = self._run("start")

    def _run(self, command: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), command], env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def new_worker(self) -> int:
        return int(self._run("add-worker"))

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(f"/tmp/mailevents-citus-growth-{uuid.uuid4().hex[:8]}.state")
    try:
        yield c
    finally:
        c.stop()


class Load:
    """A bulk ingest through one replica and a live tail through the other."""

    def __init__(self, writer: Replica, tail: Replica) -> None:
        self.writer, self.tail = writer, tail
        self.acknowledged: list[str] = []
        self.seen: list[str] = []
        self.ids: list[int] = []
        self.stop = asyncio.Event()
        self._progress = asyncio.Event()

    async def reached(self, acknowledged: int) -> None:
        """Until at least this many events are acknowledged."""
        while len(self.acknowledged) < acknowledged:
            self._progress.clear()
            await self._progress.wait()

    async def ingest(self) -> None:
        """Batches until told to stop; a failed batch is sent again (ingest is
        idempotent), as a producer would."""
        n = 0
        while not self.stop.is_set():
            names = [f"ev-{n:03d}-{i:03d}" for i in range(BATCH)]
            batch = [event(e, ts=1_700_000_000 + n) for e in names]
            while True:
                try:
                    result = await self.writer.ingest(batch)
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
                    await asyncio.sleep(0.2)
            assert result.stored + result.duplicates == BATCH
            self.acknowledged.extend(names)
            self._progress.set()
            n += 1
            await asyncio.sleep(0.05)  # a steady load, modest for 2 cores

    async def follow(self, watch: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        while True:
            message = await watch.read()
            if message is grpc.aio.EOF:
                return
            self.seen.extend(e.event_id for e in message.events)
            self.ids.extend(e.id for e in message.events)
            self._progress.set()

    async def caught_up(self) -> None:
        while len(self.seen) < len(self.acknowledged):
            self._progress.clear()
            await self._progress.wait()


async def under_load(cluster: Cluster, tmp_path: Path, change: object) -> None:
    """Run `change(coordinator connection, tenant id)` while the load runs; then check."""
    store = PostgresStore(cluster.url + "?search_path=" + (schema := f"g{uuid.uuid4().hex[:8]}"))
    admin = await asyncpg.connect(cluster.url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    await store.open()
    key = new_key()
    tenant = await store.create_key(f"big-{schema}", hash_key(key))
    await store.create_key(f"small-{schema}", hash_key(new_key()))
    await store.close()
    url = store.url
    a, b = await asyncio.gather(
        start_replica(url, key, tmp_path / "a.log"), start_replica(url, key, tmp_path / "b.log")
    )
    load = Load(a, b)
    watch = b.stub.WatchMessageEvents(
        spb.WatchMessageEventsRequest(query=query(), batch_size=500), metadata=b.metadata()
    )
    await watch.read()  # started
    following = asyncio.create_task(load.follow(watch))
    ingesting = asyncio.create_task(load.ingest())
    try:
        await load.reached(3 * BATCH)
        conn = await asyncpg.connect(url)
        try:
            await change(conn, tenant)  # type: ignore[operator]
        finally:
            await conn.close()
        await load.reached(len(load.acknowledged) + 3 * BATCH)
        load.stop.set()
        await asyncio.wait_for(ingesting, 60)
        await asyncio.wait_for(load.caught_up(), 60)
        total = await a.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(), metadata=a.metadata(), timeout=30
        )
        assert total.total == len(load.acknowledged)  # each acknowledged event stored once
        assert load.seen == load.acknowledged  # each once, in commit order
        assert load.ids == list(range(1, len(load.ids) + 1))  # no gap
    finally:
        watch.cancel()
        following.cancel()
        ingesting.cancel()
        await asyncio.gather(following, ingesting, return_exceptions=True)
        await asyncio.gather(stop_replica(a), stop_replica(b))
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def placement_port(conn: asyncpg.Connection, tenant: int) -> int:
    """The port of the worker holding the tenant's events shard."""
    return int(
        await conn.fetchval(
            "SELECT nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) "
            "WHERE shardid = get_shard_id_for_distribution_column('events', $1::bigint)",
            tenant,
        )
    )


async def move_to(conn: asyncpg.Connection, tenant: int, port: int) -> None:
    """Move the tenant's shard group to the worker on `port`, online."""
    source = await placement_port(conn, tenant)
    if source != port:
        await conn.execute(
            "SELECT citus_move_shard_placement(get_shard_id_for_distribution_column("
            "'events', $1::bigint), '127.0.0.1', $2, '127.0.0.1', $3, 'force_logical')",
            tenant,
            source,
            port,
        )


async def test_a_new_worker_and_the_rebalancer_lose_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = cluster.new_worker()

    async def grow(conn: asyncpg.Connection, tenant: int) -> None:
        await conn.execute("SELECT citus_add_node('127.0.0.1', $1)", port)
        await conn.execute("SELECT rebalance_table_shards(shard_transfer_mode => 'force_logical')")
        moved = await conn.fetchval(
            "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) "
            "WHERE n.nodeport = $1",
            port,
        )
        assert moved > 0, "the rebalancer moved nothing to the new worker"
        # The tailed tenant's shards move too, if the rebalancer left them.
        await move_to(conn, tenant, port)
        assert await placement_port(conn, tenant) == port

    await under_load(cluster, tmp_path, grow)


async def test_one_tenant_isolated_to_its_own_shards_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    async def isolate(conn: asyncpg.Connection, tenant: int) -> None:
        # block_writes: the split holds the tenant's writes for its copy (they
        # wait, and go on after). Online splits under concurrent UPDATEs of a
        # row stall in Citus 13 (citusdata/citus#6790): commit positions are
        # such rows.
        shard = await conn.fetchval(
            "SELECT isolate_tenant_to_new_shard('events', $1::bigint, 'CASCADE', "
            "shard_transfer_mode => 'block_writes')",
            tenant,
        )
        low, high = await conn.fetchrow(
            "SELECT shardminvalue, shardmaxvalue FROM pg_dist_shard WHERE shardid = $1", shard
        )
        assert low == high, "the tenant's shard holds one hash value: its own"
        # Then give it a worker of its own kind: move it to the one it is not on.
        ports = [
            int(p)
            for (p,) in await conn.fetch(
                "SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0"
            )
        ]
        here = await placement_port(conn, tenant)
        await move_to(conn, tenant, next(p for p in ports if p != here))

    await under_load(cluster, tmp_path, isolate)
