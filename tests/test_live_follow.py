"""SearchMessageEvents with follow: the history, then live events, with an exact seam;
and the watermark every search now ends with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import Server
from factories import cond, error_details, event, events, query
from live_support import BACKENDS, backend_server, ids_of, read, read_events, read_to_end, seconds

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb


@pytest.fixture(params=BACKENDS)
async def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """The conftest `server`, on SQLite and (when available) on PostgreSQL."""
    async with backend_server(request.param, tmp_path) as srv:
        yield srv


def follow_request(**fields: object) -> spb.SearchMessageEventsRequest:
    fields.setdefault("query", query(order=spb.ORDER_TIMESTAMP_ASC))
    return spb.SearchMessageEventsRequest(follow=True, **fields)  # type: ignore[arg-type]


async def test_history_then_the_seam_then_live_events(live_server: Server) -> None:
    await live_server.ingest(events(2500, prefix="old"))
    call = live_server.stub.SearchMessageEvents(
        follow_request(batch_size=1000), metadata=live_server.metadata()
    )
    history = await read_events(call, 2500)
    assert [len(m.events) for m in history] == [1000, 1000, 500]
    assert not any(m.HasField("watermark") for m in history)  # not complete yet
    seam = await read(call)
    assert not seam.events and not seam.HasField("stats")
    assert seam.watermark.position == 2500 and seam.watermark.HasField("time")

    await live_server.ingest([event("new-1"), *events(3, prefix="old")])
    live = await read(call)
    assert ids_of([live]) == ["new-1"]
    assert live.watermark.position == 2501
    call.cancel()


async def test_no_gap_and_no_repeat_at_the_seam_while_events_keep_coming(
    live_server: Server,
) -> None:
    produced: list[str] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            batch = [event(f"p-{n + i}") for i in range(50)]
            n += 50
            await live_server.ingest(batch)
            produced.extend(ev.event_id for ev in batch)
            await asyncio.sleep(0)

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.2)
    call = live_server.stub.SearchMessageEvents(
        follow_request(batch_size=100), metadata=live_server.metadata()
    )
    received: list[str] = []
    saw_seam = False
    try:
        async with asyncio.timeout(30):
            while not saw_seam or len(received) < len(produced) or not stop.is_set():
                message = await read(call)
                received.extend(ids_of([message]))
                if message.HasField("watermark") and not saw_seam:
                    saw_seam = True
                    await asyncio.sleep(0.3)  # keep producing into the live part
                    stop.set()
                    await producer
    finally:
        stop.set()
        await producer
        call.cancel()
    assert len(received) == len(set(received)), "an event came twice"
    assert set(received) == set(produced), "an event is missing"


async def test_resume_in_the_history_and_in_the_live_part(live_server: Server) -> None:
    await live_server.ingest(events(30, prefix="h"))
    call = live_server.stub.SearchMessageEvents(
        follow_request(batch_size=10), metadata=live_server.metadata()
    )
    first = await read(call)
    call.cancel()

    await live_server.ingest(events(2, prefix="l"))  # after the snapshot: live, not history
    resumed = live_server.stub.SearchMessageEvents(
        follow_request(batch_size=10, resume_token=first.resume_token),
        metadata=live_server.metadata(),
    )
    rest = await read_events(resumed, 20)
    assert ids_of([first, *rest]) == [f"h-{i:05d}" for i in range(30)]
    seam = await read(resumed)
    assert seam.watermark.position == 30
    live = await read_events(resumed, 2)
    assert ids_of(live) == ["l-00000", "l-00001"]
    resumed.cancel()

    # A live token continues live, and needs no history.
    await live_server.ingest([event("later")])
    again = live_server.stub.SearchMessageEvents(
        follow_request(batch_size=10, resume_token=live[-1].resume_token),
        metadata=live_server.metadata(),
    )
    assert ids_of(await read_events(again, 1)) == ["later"]
    again.cancel()


async def test_follow_with_max_events_stops_inside_the_live_part(server: Server) -> None:
    await server.ingest(events(3, prefix="h"))
    call = server.stub.SearchMessageEvents(follow_request(max_events=5), metadata=server.metadata())
    await read_events(call, 3)
    await read(call)  # the seam
    await server.ingest(events(4, prefix="l"))
    rest = await read_to_end(call)
    assert ids_of(rest) == ["l-00000", "l-00001"]
    assert rest[-1].HasField("stats") and rest[-1].stats.events == 5
    assert not rest[-1].HasField("watermark")  # cut short: no completeness claim


async def test_follow_filters_live_events_like_the_history(server: Server) -> None:
    bounces = query(cond("type", spb.OPERATOR_EXACT, "bounce"), order=spb.ORDER_TIMESTAMP_ASC)
    await server.ingest([event("b0", type=pb.EVENT_TYPE_BOUNCE), event("d0")])
    call = server.stub.SearchMessageEvents(
        follow_request(query=bounces, heartbeat_interval=seconds(0.2)),
        metadata=server.metadata(),
    )
    assert ids_of(await read_events(call, 1)) == ["b0"]
    await read(call)  # seam
    await server.ingest([event("d1"), event("b1", type=pb.EVENT_TYPE_BOUNCE)])
    assert ids_of(await read_events(call, 1)) == ["b1"]
    heartbeat = await read(call)
    assert not heartbeat.events and heartbeat.watermark.position == 4
    call.cancel()


async def test_a_plain_search_ends_with_its_watermark(server: Server) -> None:
    await server.ingest(events(5))
    call = server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(batch_size=2), metadata=server.metadata()
    )
    messages = await read_to_end(call)
    assert [m.HasField("watermark") for m in messages] == [False, False, False, True]
    final = messages[-1]
    assert final.watermark.position == 5 and final.watermark.HasField("time")

    limited = server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(max_events=2), metadata=server.metadata()
    )
    assert not (await read_to_end(limited))[-1].HasField("watermark")


async def test_a_live_token_is_refused_without_follow(server: Server) -> None:
    await server.ingest(events(1))
    watch = server.stub.WatchMessageEvents(
        spb.WatchMessageEventsRequest(query=query(order=spb.ORDER_TIMESTAMP_ASC)),
        metadata=server.metadata(),
    )
    token = (await read(watch)).resume_token
    watch.cancel()
    # The same query with follow takes a watch's token...
    follow = server.stub.SearchMessageEvents(
        follow_request(resume_token=token), metadata=server.metadata()
    )
    first = await read(follow)
    assert not first.events and first.watermark.position == 1
    follow.cancel()
    # ...a plain search cannot.
    plain = server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(
            query=query(order=spb.ORDER_TIMESTAMP_ASC), resume_token=token
        ),
        metadata=server.metadata(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(plain)
    assert error_details(caught.value)[0].reason == "INVALID_TOKEN"


async def test_a_cancelled_follow_releases_its_store_stream(server: Server) -> None:
    await server.ingest(events(50))
    call = server.stub.SearchMessageEvents(
        follow_request(batch_size=10), metadata=server.metadata()
    )
    await read(call)
    call.cancel()
    for _ in range(50):
        if server.running.store.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert server.running.store.open_streams == 0


async def test_an_empty_history_gives_one_seam_message_then_live_events(server: Server) -> None:
    call = server.stub.SearchMessageEvents(
        follow_request(heartbeat_interval=seconds(5)), metadata=server.metadata()
    )
    seam = await read(call)
    assert not seam.events and seam.watermark.position == 0 and seam.resume_token
    await server.ingest([event("first")])
    assert ids_of([await read(call)]) == ["first"]  # no second empty message before it
    call.cancel()
