"""Two `mailevents serve` processes against one PostgreSQL (and one Citus
coordinator), as two replicas behind a load balancer: what one ingests, the
other's live tail delivers, exactly once and in commit order; paging gives the
same pages from both, and a page token from one continues on the other;
producers on both stay idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from factories import event, event_ids, list_all, query
from pgtest import SERVER_BACKENDS, fresh_database
from replica_support import Replica, start_replica, stop_replica

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.auth import hash_key, new_key
from mailevents_server.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.fixture(params=SERVER_BACKENDS)
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Replica, Replica]]:
    async with fresh_database(request.param) as url:
        store = PostgresStore(url)  # migrate and make the key before the replicas start
        await store.open()
        key = new_key()
        await store.create_key("acme", hash_key(key))
        await store.close()
        a, b = await asyncio.gather(
            start_replica(url, key, tmp_path / "a.log"), start_replica(url, key, tmp_path / "b.log")
        )
        try:
            yield a, b
        finally:
            await asyncio.gather(stop_replica(a), stop_replica(b))


async def test_live_tail_on_one_replica_gets_what_the_other_ingests(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    await a.ingest([event(f"before-{i}") for i in range(5)])  # history: not part of the tail
    watch = b.stub.WatchMessageEvents(
        spb.WatchMessageEventsRequest(query=query(), batch_size=100), metadata=b.metadata()
    )
    first = await watch.read()  # the watch has started: its first message says where
    seen = [e.event_id for e in first.events]
    sent = [f"live-{i:04d}" for i in range(1000)]
    for start in range(0, len(sent), 200):
        chunk = sent[start : start + 200]
        resent = sent[max(0, start - 50) : start]  # producers retry: duplicates
        result = await a.ingest(
            [event(e, ts=1_700_000_000 + i) for i, e in enumerate(resent + chunk)]
        )
        assert result.stored == len(chunk) and result.duplicates == len(resent)

    ids: list[int] = []

    async def consume() -> None:
        while len(seen) < len(sent):
            message = await watch.read()
            seen.extend(e.event_id for e in message.events)
            ids.extend(e.id for e in message.events)

    await asyncio.wait_for(consume(), 30)
    watch.cancel()
    assert seen == sent  # everything, once, in commit order
    assert ids == sorted(ids)


async def test_paging_is_the_same_on_both_replicas(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    await a.ingest([event(f"p{i:04d}", ts=1_700_000_000 + i // 4) for i in range(500)])
    await b.ingest([event(f"q{i:04d}", ts=1_700_000_000 + i // 3) for i in range(500)])
    for q in (query(), query(order=spb.ORDER_TIMESTAMP_ASC)):
        from_a = event_ids(await list_all(a, q, page_size=97))
        from_b = event_ids(await list_all(b, q, page_size=97))
        assert from_a == from_b and len(from_a) == 1000
    # A page token from one replica continues on the other.
    page = await a.stub.ListMessageEvents(
        spb.ListMessageEventsRequest(query=query(), page_size=300), metadata=a.metadata()
    )
    rest = await b.stub.ListMessageEvents(
        spb.ListMessageEventsRequest(
            query=query(), page_size=1000, page_token=page.next_page_token
        ),
        metadata=b.metadata(),
    )
    newest_first = event_ids(await list_all(a, query(), page_size=1000))
    assert event_ids(page.events) + event_ids(rest.events) == newest_first


async def test_producers_on_both_replicas_store_each_event_once(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    names = [f"d{i:04d}" for i in range(800)]

    async def produce(replica: Replica, offset: int) -> list[spb.IngestResult]:
        out: list[spb.IngestResult] = []
        for start in range(offset, offset + 600, 100):
            chunk = [event(n) for n in names[start % 800 : start % 800 + 100]]
            out.extend((await replica.ingest(chunk)).results)
        return out

    results = await asyncio.gather(produce(a, 0), produce(b, 200), produce(a, 400), produce(b, 0))
    stored = [r.event_id for part in results for r in part if r.status == spb.INGEST_STATUS_STORED]
    assert sorted(stored) == sorted(set(stored))
    id_of: dict[str, int] = {}
    for part in results:
        for r in part:
            assert id_of.setdefault(r.event_id, r.id) == r.id
    everything = await list_all(b, query(), page_size=1000)
    assert sorted(e.event_id for e in everything) == sorted(id_of)
