"""SearchMessageEvents: batches, projection, limits, resumption, cancellation, deadlines."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import grpc
import pytest
from factories import (
    BASE_SECONDS,
    cond,
    error_details,
    event,
    event_ids,
    events,
    mask,
    query,
    search_all,
)

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb


def search(server: Any, key: str | None = None, timeout: float | None = 60, **request: Any) -> Any:
    return server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(**request), metadata=server.metadata(key), timeout=timeout
    )


async def responses(server: Any, **request: Any) -> list[spb.SearchMessageEventsResponse]:
    return [r async for r in search(server, **request)]


async def invalid_fields(server: Any, **request: Any) -> list[str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await responses(server, **request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return [field for field, _ in error_details(caught.value)[1]]


async def wait_for_no_open_streams(server: Any) -> None:
    """Poll until the store has no stream open (the server's work stopped).

    Then give handlers that were cancelled before they reached the store a
    moment to unwind: the fixture stops the server right after the test, and
    work still in flight then (e.g. a pooled reader being replaced) is cut off.
    """
    for _ in range(500):
        if server.running.store.open_streams == 0:
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{server.running.store.open_streams} streams still open")


# -- batches ------------------------------------------------------------------


async def test_batches_tokens_and_final_stats(server: Any) -> None:
    stored = events(25)
    await server.ingest(stored)
    got = await responses(server, batch_size=10)
    assert [len(r.events) for r in got] == [10, 10, 5, 0]
    for batch in got[:-1]:
        assert batch.resume_token
        assert not batch.HasField("stats")
    final = got[-1]
    assert final.resume_token == "" and len(final.events) == 0
    assert final.HasField("stats")
    assert final.stats.events == 25 and final.stats.batches == 3
    assert final.stats.elapsed.ToNanoseconds() >= 0
    streamed = [ev.event_id for r in got for ev in r.events]
    assert streamed == [ev.event_id for ev in reversed(stored)]


async def test_default_batch_size_is_1000(server: Any) -> None:
    await server.ingest(events(2500))
    got = await responses(server)
    assert [len(r.events) for r in got] == [1000, 1000, 500, 0]


async def test_max_batch_size(server: Any) -> None:
    await server.ingest(events(10_001))
    got = await responses(server, batch_size=10_000)
    assert [len(r.events) for r in got] == [10_000, 1, 0]


async def test_empty_result_is_just_stats(server: Any) -> None:
    got = await responses(server, batch_size=10)
    assert len(got) == 1
    assert got[0].stats.events == 0 and got[0].stats.batches == 0


async def test_every_resume_token_continues_after_its_batch(server: Any) -> None:
    await server.ingest(events(23))
    got = await responses(server, batch_size=5)
    everything = [ev.event_id for r in got for ev in r.events]
    seen = 0
    for batch in got[:-1]:
        seen += len(batch.events)
        rest = await search_all(server, batch_size=5, resume_token=batch.resume_token)
        assert event_ids(rest) == everything[seen:]


@pytest.mark.parametrize("size", [-1, 10_001, 2**31 - 1])
async def test_batch_size_out_of_range(server: Any, size: int) -> None:
    assert await invalid_fields(server, batch_size=size) == ["batch_size"]


async def test_big_events_are_split_below_the_message_limit(server: Any) -> None:
    # 40 events of ~200 KB in one batch of 1000 would be ~8 MB; the server keeps
    # each message under gRPC's 4 MiB default, so a default client receives it.
    big = "x" * 200_000
    await server.ingest([event(f"big{i:02d}", ts=BASE_SECONDS + i, reason=big) for i in range(40)])
    async with grpc.aio.insecure_channel(server.address) as channel:  # default 4 MiB limit
        stub = type(server.stub)(channel)
        call = stub.SearchMessageEvents(
            spb.SearchMessageEventsRequest(), metadata=server.metadata(), timeout=60
        )
        got = [r async for r in call]
    assert sum(len(r.events) for r in got) == 40
    assert len(got) > 2
    assert all(r.ByteSize() < 4 * 1024 * 1024 for r in got)
    assert got[-1].stats.events == 40 and got[-1].stats.batches == len(got) - 1


# -- read mask ----------------------------------------------------------------


async def test_read_mask_projects_fields(server: Any) -> None:
    await server.ingest(
        [
            event(
                "p1",
                type=pb.EVENT_TYPE_CLICK,
                campaign_id="camp",
                recipient="a@example.com",
                tags=["t"],
                metadata={"k": "v"},
                geo_ip=pb.GeoIp(country="FR", city="Paris"),
            )
        ]
    )
    [ev] = await search_all(server, read_mask=mask("event_id", "campaign_id", "geo_ip.country"))
    assert {f.name for f, _ in ev.ListFields()} == {"event_id", "campaign_id", "geo_ip"}
    assert ev.event_id == "p1" and ev.campaign_id == "camp"
    assert ev.geo_ip == pb.GeoIp(country="FR")

    [ev] = await search_all(server, read_mask=mask("id", "tags", "metadata", "timestamp"))
    assert {f.name for f, _ in ev.ListFields()} == {"id", "tags", "metadata", "timestamp"}
    assert ev.id > 0 and list(ev.tags) == ["t"] and dict(ev.metadata) == {"k": "v"}

    # Without a mask: everything, including derived fields.
    [full] = await search_all(server)
    assert full.type_name == "click" and full.event_category == "track_event"
    assert full.recipient == "a@example.com" and full.geo_ip.city == "Paris"


async def test_read_mask_applies_to_list_and_get(server: Any) -> None:
    await server.ingest([event("p1", campaign_id="camp", recipient="a@example.com")])
    page = await server.stub.ListMessageEvents(
        spb.ListMessageEventsRequest(read_mask=mask("recipient")), metadata=server.metadata()
    )
    assert [{f.name for f, _ in ev.ListFields()} for ev in page.events] == [{"recipient"}]
    got = await server.stub.GetMessageEvent(
        spb.GetMessageEventRequest(event_id="p1", read_mask=mask("campaign_id")),
        metadata=server.metadata(),
    )
    assert {f.name for f, _ in got.event.ListFields()} == {"campaign_id"}


@pytest.mark.parametrize("paths", [["nope"], ["event_id", "geo_ip.planet"], ["events"], [""]])
async def test_unknown_read_mask_path_is_invalid(server: Any, paths: list[str]) -> None:
    await server.ingest([event("p1")])
    assert await invalid_fields(server, read_mask=mask(*paths)) == ["read_mask"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(read_mask=mask(*paths)), metadata=server.metadata()
        )
    assert [f for f, _ in error_details(caught.value)[1]] == ["read_mask"]


# -- max_events ---------------------------------------------------------------


async def test_max_events_stops_early(server: Any) -> None:
    stored = events(25)
    await server.ingest(stored)
    got = await responses(server, batch_size=5, max_events=7)
    assert [len(r.events) for r in got] == [5, 2, 0]
    assert got[-1].stats.events == 7 and got[-1].stats.batches == 2
    assert [ev.event_id for r in got for ev in r.events] == [
        ev.event_id for ev in reversed(stored)
    ][:7]
    await wait_for_no_open_streams(server)


async def test_max_events_on_a_batch_boundary_and_beyond_the_end(server: Any) -> None:
    await server.ingest(events(10))
    assert [len(r.events) for r in await responses(server, batch_size=5, max_events=5)] == [5, 0]
    assert [len(r.events) for r in await responses(server, batch_size=5, max_events=50)] == [
        5,
        5,
        0,
    ]


async def test_negative_max_events_is_invalid(server: Any) -> None:
    assert await invalid_fields(server, max_events=-1) == ["max_events"]


# -- resumption ---------------------------------------------------------------


async def test_resume_after_client_disconnects(server: Any) -> None:
    stored = events(50, step=3)
    await server.ingest(stored)
    q = query(order=spb.ORDER_TIMESTAMP_ASC)
    call = search(server, query=q, batch_size=5)
    first: list[str] = []
    token = ""
    batches = 0
    async for response in call:
        first.extend(event_ids(response.events))
        token = response.resume_token
        batches += 1
        if batches == 2:
            call.cancel()
            break
    assert len(first) == 10 and token
    assert await call.code() == grpc.StatusCode.CANCELLED
    await wait_for_no_open_streams(server)

    rest = event_ids(await search_all(server, q, batch_size=5, resume_token=token))
    assert first + rest == [ev.event_id for ev in stored]


async def test_resume_sees_the_snapshot_of_the_first_call(server: Any) -> None:
    await server.ingest(events(20, step=10))
    got = await responses(server, batch_size=5)
    token = got[1].resume_token
    # Arrivals after the first call began: newer, older, and at the cursor.
    cursor = got[1].events[-1].timestamp.seconds
    await server.ingest(
        [
            event("late-new", ts=BASE_SECONDS + 100_000),
            event("late-old", ts=BASE_SECONDS - 100_000),
            event("late-at", ts=cursor),
            event("late-mid", ts=cursor - 5),
        ]
    )
    rest = event_ids(await search_all(server, batch_size=5, resume_token=token))
    assert rest == [f"ev-{i:05d}" for i in range(9, -1, -1)]


async def test_resume_token_is_bound_to_the_query(server: Any) -> None:
    await server.ingest(events(20, campaign_id="c"))
    q = query(cond("campaign_id", spb.OPERATOR_EXACT, "c"))
    got = await responses(server, query=q, batch_size=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await responses(server, batch_size=5, resume_token=got[0].resume_token)
    info, violations = error_details(caught.value)
    assert info.reason == "TOKEN_QUERY_MISMATCH"
    assert [f for f, _ in violations] == ["resume_token"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await responses(server, query=q, resume_token=got[0].resume_token[:-3] + "abc")
    info, violations = error_details(caught.value)
    assert info.reason == "INVALID_TOKEN"
    assert [f for f, _ in violations] == ["resume_token"]


async def test_resume_with_a_different_batch_size(server: Any) -> None:
    await server.ingest(events(30))
    got = await responses(server, batch_size=4)
    rest = event_ids(await search_all(server, batch_size=25, resume_token=got[0].resume_token))
    assert rest == [f"ev-{i:05d}" for i in range(25, -1, -1)]


# -- cancellation and deadlines ----------------------------------------------


@pytest.fixture
async def large(server: Any) -> Any:
    # ~25 MB: far more than HTTP/2 flow control lets the server buffer, so a
    # stream the client stops reading is still running on the server.
    padding = "y" * 2500
    await server.ingest(events(10_000, reason=padding))
    return server


async def test_cancel_stops_the_servers_work(large: Any) -> None:
    server = large
    call = search(server, batch_size=100)
    async for response in call:
        assert len(response.events) == 100
        break
    assert server.running.store.open_streams == 1  # still streaming
    call.cancel()
    await wait_for_no_open_streams(server)
    # The server is fine afterwards.
    assert len(await search_all(server, max_events=3)) == 3


async def test_cancel_before_reading_anything(large: Any) -> None:
    server = large
    call = search(server, batch_size=50)
    await call.initial_metadata()
    call.cancel()
    assert await call.code() == grpc.StatusCode.CANCELLED
    await wait_for_no_open_streams(server)


async def test_deadline_exceeded_stops_the_server(large: Any) -> None:
    server = large
    call = search(server, timeout=1.0, batch_size=100)
    got = 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for response in call:
            got += len(response.events)
            if got == 100:
                await asyncio.sleep(2.0)  # outlive the deadline mid-stream
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert got < 10_000
    await wait_for_no_open_streams(server)


async def test_tiny_deadline_on_a_large_result(large: Any) -> None:
    server = large
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _drain(search(server, timeout=0.001, batch_size=100))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_for_no_open_streams(server)


async def _drain(call: Any) -> int:
    return sum([len(r.events) async for r in call])


async def test_streams_cut_short_at_any_moment_all_stop(large: Any) -> None:
    """Deadlines landing anywhere in a stream's life (before the handler runs,
    while it opens its connection, mid-stream) all end as DEADLINE_EXCEEDED
    and leave no stream, and no unclosed connection, behind."""
    server = large
    calls = [search(server, timeout=0.0005 * i, batch_size=100) for i in range(1, 41)]
    outcomes = await asyncio.gather(*(_drain(c) for c in calls), return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, grpc.aio.AioRpcError), outcome
        assert outcome.code() == grpc.StatusCode.DEADLINE_EXCEEDED, outcome
    await wait_for_no_open_streams(server)
    gc.collect()  # an unclosed aiosqlite connection warns here, failing the test


async def test_many_concurrent_streams_all_close(large: Any) -> None:
    server = large
    calls = [search(server, batch_size=100, max_events=300) for _ in range(8)]
    results = await asyncio.gather(*(_count(c) for c in calls))
    assert results == [300] * 8
    await wait_for_no_open_streams(server)


async def _count(call: Any) -> int:
    return sum([len(r.events) async for r in call])
