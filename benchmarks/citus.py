"""`--store citus`: do writes of different tenants wait on each other? On Citus and on
plain PostgreSQL, in the same run.

Each scenario ingests through PostgresStore objects in this process, one per
producer, as separate replicas would (each has its own pool and writer
lanes): 1 producer into 1 tenant, then 4 producers into 4 tenants, then the
same 4 with every commit serialized by one cluster-wide advisory lock (the
design before commit order was per tenant, emulated around the unchanged
commit). While a scenario runs, a sampler on every node counts the sessions
waiting on a lock (pg_stat_activity.wait_event_type = 'Lock') every few
milliseconds: lock wait per commit = samples x interval / commits. On 2
cores the figure that matters is that wait, not speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg

from benchmarks import pg
from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.auth import hash_key, new_key
from mailevents_server.ingest import prepare
from mailevents_server.store import postgres_writer
from mailevents_server.store.postgres import PostgresStore

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "citus.sh"
BATCH = 500
SAMPLE_SECONDS = 0.005
GLOBAL_LOCK = 0x6D65_7631_0002  # the key the cluster-wide write lock used


@dataclass
class Result:
    events: int
    commits: int
    seconds: float
    lock_wait_s: float
    waits: dict[str, float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def wait_ms_per_commit(self) -> float:
        return 1000 * self.lock_wait_s / max(self.commits, 1)


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """The shared throwaway Citus cluster (scripts/citus.sh); its coordinator's URL."""
    done = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise RuntimeError("scripts/citus.sh start failed")
    try:
        yield done.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True)


@contextlib.contextmanager
def scratch_schema(admin_url: str) -> Iterator[str]:
    """A new schema on the coordinator, dropped afterwards; a URL whose search_path is it."""
    name = f"mev_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg._admin(admin_url, f"CREATE SCHEMA {name}"))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(query=urlencode({"search_path": name})))
    finally:
        asyncio.run(pg._admin(admin_url, f"DROP SCHEMA IF EXISTS {name} CASCADE"))


@contextlib.asynccontextmanager
async def _global_lock() -> AsyncIterator[None]:
    """Every commit of every replica behind one session advisory lock, as before."""
    original = postgres_writer.commit_tenant

    async def serialized(conn: asyncpg.Connection, tenant_id: int, batch: Any) -> Any:
        await conn.execute("SELECT pg_advisory_lock($1)", GLOBAL_LOCK)
        try:
            return await original(conn, tenant_id, batch)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", GLOBAL_LOCK)

    postgres_writer.commit_tenant = serialized  # type: ignore[assignment]
    try:
        yield
    finally:
        postgres_writer.commit_tenant = original


async def _node_urls(url: str) -> list[str]:
    """The URL itself, and on Citus each worker's (same user and database)."""
    conn = await asyncpg.connect(url)
    try:
        citus = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'")
        if not citus:
            return [url]
        rows = await conn.fetch(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary'"
        )
    finally:
        await conn.close()
    parts = urlsplit(url)
    user = parts.username or "postgres"
    return [urlunsplit(parts._replace(netloc=f"{user}@{h}:{p}", query="")) for h, p in rows]


async def _sample(urls: list[str], stop: asyncio.Event) -> dict[str, float]:
    """Seconds of lock waiting summed over every session of every node, sampled, by
    the lock's kind (advisory, tuple, transactionid, relation...)."""
    conns = [await asyncpg.connect(u) for u in urls]
    waited: dict[str, float] = {}
    try:
        while not stop.is_set():
            for conn in conns:
                for kind, n in await conn.fetch(
                    "SELECT wait_event, count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' GROUP BY 1"
                ):
                    waited[str(kind)] = waited.get(str(kind), 0.0) + int(n) * SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        for conn in conns:
            await conn.close()
    return waited


async def _scenario(url: str, producers: int, events: Sequence[pb.MessageEvent]) -> Result:
    """The second of two runs (new tenants each): the first makes the partitions."""
    await _run(url, producers, events)
    return await _run(url, producers, events)


async def _run(url: str, producers: int, events: Sequence[pb.MessageEvent]) -> Result:
    stores = [PostgresStore(url) for _ in range(producers)]
    for store in stores:
        await store.open()
    try:
        tenants = [
            await stores[0].create_key(f"bench-{uuid.uuid4().hex[:8]}", hash_key(new_key()))
            for _ in range(producers)
        ]
        share = len(events) // producers
        batches = [
            [
                prepare(events[p * share + i : p * share + i + BATCH])[0]
                for i in range(0, share, BATCH)
            ]
            for p in range(producers)
        ]
        commits = sum(len(b) for b in batches)
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(await _node_urls(url), stop))

        async def produce(p: int) -> None:
            for ready in batches[p]:
                await stores[p].write(tenants[p], ready)

        started = time.perf_counter()
        await asyncio.gather(*(produce(p) for p in range(producers)))
        elapsed = time.perf_counter() - started
        stop.set()
        waits = await sampler
        return Result(share * producers, commits, elapsed, sum(waits.values()), waits)
    finally:
        for store in stores:
            await store.close()


Scenario = Callable[[str], Awaitable[Result]]


def _scenarios(events: Sequence[pb.MessageEvent]) -> dict[str, Scenario]:
    async def global_lock(url: str) -> Result:
        async with _global_lock():
            return await _scenario(url, 4, events)

    return {
        "1 producer -> 1 tenant": lambda url: _scenario(url, 1, events),
        "4 producers -> 4 tenants": lambda url: _scenario(url, 4, events),
        "4 -> 4, one cluster-wide lock (before)": global_lock,
    }


async def _stored_bytes(url: str) -> tuple[int, int]:
    """(events, bytes of events and event_keys with their indexes) on plain PostgreSQL."""
    conn = await asyncpg.connect(url)
    try:
        n = int(await conn.fetchval("SELECT count(*) FROM events"))
        size = int(
            await conn.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.oid IN (SELECT inhrelid FROM pg_inherits "
                "WHERE inhparent = 'events'::regclass) OR c.oid = 'event_keys'::regclass"
            )
        )
        return n, size
    finally:
        await conn.close()


def bench_citus(events: Sequence[pb.MessageEvent]) -> None:
    """Print the scenarios on plain PostgreSQL and on Citus, side by side."""
    results: dict[str, dict[str, Result]] = {}
    stored: tuple[int, int] = (0, 0)
    with pg.server() as pg_admin, cluster() as citus_admin:
        for label, run in _scenarios(events).items():
            with pg.scratch_database(pg_admin) as url:
                results.setdefault(label, {})["postgres"] = asyncio.run(run(url))
                if label.startswith("4 producers"):
                    stored = asyncio.run(_stored_bytes(url))
            with scratch_schema(citus_admin) as url:
                results[label]["citus"] = asyncio.run(run(url))
        workers = len(asyncio.run(_node_urls(citus_admin))) - 1
    print(f"\n## Writes of different tenants, {len(events):,} events per scenario, batches of")
    print(f"{BATCH}; Citus: coordinator + {workers} workers on this machine; this run")
    print(f"{'':<40} {'PostgreSQL':>30} {'Citus':>30}")
    for label, by_store in results.items():
        cells = [
            f"{r.rate:>8,.0f} ev/s {r.wait_ms_per_commit:>7.2f} ms lock/commit"
            for r in (by_store["postgres"], by_store["citus"])
        ]
        print(f"{label:<40} {cells[0]:>30} {cells[1]:>30}")
    print("(lock/commit: sessions waiting on a lock, sampled every 5 ms on every node,")
    print(" summed, divided by commits; the second of two runs, new tenants each)")
    for label, by_store in results.items():
        for name, r in by_store.items():
            if r.waits:
                kinds = ", ".join(
                    f"{k} {1000 * v / r.commits:.2f}"
                    for k, v in sorted(r.waits.items(), key=lambda kv: -kv[1])
                )
                print(f"  {label}, {name}: ms/commit by lock kind: {kinds}")
    if stored[0]:
        print(
            f"bytes per stored event, with indexes and dedup keys: {stored[1] / stored[0]:,.0f}"
            f" ({stored[0]:,} events)"
        )
