"""IngestMessageEventsStream against a real server: ordered acknowledgements, per-event
rejects, idempotence (also for a batch re-sent while the first is still committing), and
concurrent producers followed by a live consumer that must see every event exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import Server
from factories import error_details, event, events, search_all
from live_support import BACKENDS, aiter_batches, backend_server, read

from mailevents.client import MailEventsClient
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb


@pytest.fixture(params=BACKENDS)
async def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """The conftest `server`, on SQLite and (when available) on PostgreSQL."""
    async with backend_server(request.param, tmp_path) as srv:
        yield srv


async def acks_of(server: Server, batches: list[list[pb.MessageEvent]]) -> list[object]:
    call = server.stub.IngestMessageEventsStream(aiter_batches(batches), metadata=server.metadata())
    return [ack async for ack in call]


async def test_batches_are_acknowledged_in_order_once_stored(live_server: Server) -> None:
    batches = [events(1000, prefix=f"b{i}") for i in range(5)]
    acks = await acks_of(live_server, batches)
    assert [(a.sequence, a.batch_id, a.stored) for a in acks] == [  # type: ignore[attr-defined]
        (i, f"b{i}", 1000) for i in range(5)
    ]
    first = acks[0].results  # type: ignore[attr-defined]
    assert [r.index for r in first] == list(range(1000))
    assert all(r.status == spb.INGEST_STATUS_STORED for r in first)
    # Acknowledged means stored: every event is there, each once.
    found = await search_all(live_server)
    assert len(found) == 5000 == len({ev.event_id for ev in found})


async def test_a_malformed_event_is_rejected_alone(live_server: Server) -> None:
    no_id = event("")
    no_time = pb.MessageEvent(event_id="no-time", type=pb.EVENT_TYPE_DELIVERY)
    batch = [event("ok-1"), no_id, event("ok-2"), no_time]
    (ack,) = await acks_of(live_server, [batch])
    assert (ack.stored, ack.rejected, ack.duplicates) == (2, 2, 0)  # type: ignore[attr-defined]
    rejected = {
        r.index: r.reason
        for r in ack.results  # type: ignore[attr-defined]
        if r.status == spb.INGEST_STATUS_REJECTED
    }
    assert rejected == {1: "event_id is required", 3: "timestamp is required"}
    assert sorted(ev.event_id for ev in await search_all(live_server)) == ["ok-1", "ok-2"]


async def test_a_batch_sent_again_before_its_first_copy_committed_stores_nothing_twice(
    live_server: Server,
) -> None:
    """A producer that times out and re-sends races its own first attempt into one commit."""
    batch = events(3000, prefix="dup")
    acks = await acks_of(live_server, [batch, batch, batch])
    assert [a.stored for a in acks] == [3000, 0, 0]  # type: ignore[attr-defined]
    assert [a.duplicates for a in acks] == [0, 3000, 3000]  # type: ignore[attr-defined]
    first_ids = [r.id for r in acks[0].results]  # type: ignore[attr-defined]
    assert [r.id for r in acks[2].results] == first_ids  # type: ignore[attr-defined]

    # Two producers sending the same events at once, on separate streams.
    shared = events(2000, prefix="shared")
    both = await asyncio.gather(acks_of(live_server, [shared]), acks_of(live_server, [shared]))
    assert sorted(acks[0].stored for acks in both) == [0, 2000]  # type: ignore[attr-defined]
    assert len(await search_all(live_server)) == 5000


async def test_batches_reach_the_store_in_stream_order_however_fast_each_is_prepared(
    live_server: Server,
) -> None:
    """A small batch behind a large one is prepared first (in the event loop, while
    the large one is still with a worker), yet stored after it."""
    large = events(3000, prefix="large")
    small = [events(1, prefix="large")[0], event("small")]  # repeats large's first event
    acks = await acks_of(live_server, [large, small])
    assert [a.stored for a in acks] == [3000, 1]  # type: ignore[attr-defined]
    assert [r.status for r in acks[1].results] == [  # type: ignore[attr-defined]
        spb.INGEST_STATUS_DUPLICATE,
        spb.INGEST_STATUS_STORED,
    ]
    assert acks[1].results[0].id == acks[0].results[0].id  # type: ignore[attr-defined]


async def test_an_empty_batch_is_a_barrier(server: Server) -> None:
    acks = await acks_of(server, [events(10), [], events(5, prefix="x")])
    assert [(a.sequence, a.stored) for a in acks] == [(0, 10), (1, 0), (2, 5)]  # type: ignore[attr-defined]


async def test_an_oversized_batch_fails_the_stream_after_the_earlier_acks(server: Server) -> None:
    call = server.stub.IngestMessageEventsStream(
        aiter_batches([events(10), events(10_001, prefix="big")]), metadata=server.metadata()
    )
    first = await read(call)
    assert first.stored == 10
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(caught.value)[1]] == ["requests[1].events"]


async def test_a_stream_without_a_key_is_refused(server: Server) -> None:
    call = server.stub.IngestMessageEventsStream(aiter_batches([events(1)]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_client_streams_any_number_of_batches_with_a_bounded_window(
    server: Server,
) -> None:
    taken = 0

    async def batches():  # type: ignore[no-untyped-def]
        nonlocal taken
        for i in range(40):
            taken += 1
            yield events(100, prefix=f"w{i}")

    async with MailEventsClient(server.address, server.api_key) as client:
        seen = 0
        async for ack in client.ingest_stream(batches(), window=4):
            assert ack.sequence == seen and ack.stored == 100
            seen += 1
            # The source is read only as fast as batches are acknowledged.
            assert taken <= seen + 4 + 1
    assert seen == 40


async def test_concurrent_producers_and_a_live_consumer_see_every_event_once(
    live_server: Server,
) -> None:
    producers, batches_each, batch_size = 4, 15, 200
    total = producers * batches_each * batch_size
    async with MailEventsClient(live_server.address, live_server.api_key) as consumer_client:
        watch = consumer_client.watch_batches(heartbeat_interval=0.2)
        first = await anext(watch)
        assert not first.events

        async def consume() -> list[tuple[int, str]]:
            got: list[tuple[int, str]] = []
            async for message in watch:
                got.extend((ev.id, ev.event_id) for ev in message.events)
                if len(got) >= total:
                    return got
            raise AssertionError("the watch ended")

        async def produce(n: int) -> int:
            async with MailEventsClient(live_server.address, live_server.api_key) as client:
                stored = 0
                plan = (events(batch_size, prefix=f"p{n}-{b}") for b in range(batches_each))
                async for ack in client.ingest_stream(plan):
                    stored += ack.stored
                return stored

        consumer = asyncio.create_task(consume())
        stored = await asyncio.gather(*(produce(n) for n in range(producers)))
        got = await asyncio.wait_for(consumer, 30)
        await watch.aclose()
    assert sum(stored) == total
    assert len(got) == total
    ids = [store_id for store_id, _ in got]
    assert ids == sorted(ids), "live events come in commit order"
    assert len({event_id for _, event_id in got}) == total, "an event came twice"


async def test_the_same_events_twice_in_one_commit_are_stored_once(server: Server) -> None:
    """Two writes queued together are merged into one transaction by the store's writer."""
    from mailevents_server.ingest import prepare

    store = server.running.store
    ready, _ = prepare(events(100, prefix="same"))
    first, second = await asyncio.gather(store.write(1, ready), store.write(1, ready))
    assert {w.outcome.value for w in first} == {"stored"}
    assert {w.outcome.value for w in second} == {"duplicate"}
    assert [w.id for w in second] == [w.id for w in first]
