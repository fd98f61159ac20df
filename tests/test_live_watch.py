"""WatchMessageEvents against a real server: live delivery, heartbeats, watermarks,
resume tokens (also across a restart), filters, tenancy, limits and errors.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import Server, make_server
from factories import BASE_SECONDS, cond, error_details, event, events, mask, query
from live_support import (
    BACKENDS,
    backend_server,
    ids_of,
    read,
    read_events,
    read_to_end,
    seconds,
    watch_request,
)

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.query.model import Query
from mailevents_server.query.validate import compile_query
from mailevents_server.store import sqlite_sql


@pytest.fixture(params=BACKENDS)
async def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """The conftest `server`, on SQLite and (when available) on PostgreSQL."""
    async with backend_server(request.param, tmp_path) as srv:
        yield srv


async def test_a_watch_starts_with_its_position_then_sends_each_commit(live_server: Server) -> None:
    await live_server.ingest(events(3, prefix="old"))
    call = live_server.stub.WatchMessageEvents(watch_request(), metadata=live_server.metadata())
    first = await read(call)
    # At once, before any event: where the stream stands, and a token for it.
    assert not first.events
    assert first.watermark.position == 3
    assert first.watermark.HasField("time")
    assert first.resume_token

    # An event with a timestamp a month old, committed now, is as new as any:
    # positions follow commits, not timestamps.
    late = event("late", ts=BASE_SECONDS - 30 * 86400)
    committed = time.monotonic()
    await live_server.ingest([late, event("new")])
    message = await read(call)
    latency = time.monotonic() - committed
    assert ids_of([message]) == ["late", "new"]
    assert [ev.id for ev in message.events] == [4, 5]
    assert message.watermark.position == 5
    assert message.watermark.time.ToMicroseconds() >= first.watermark.time.ToMicroseconds()
    assert latency < 0.5, f"{latency:.3f}s from commit to consumer"
    call.cancel()


async def test_filters_read_mask_and_tenancy(live_server: Server) -> None:
    request = watch_request(
        query=query(cond("type", spb.OPERATOR_IN, "bounce", "spam_complaint")),
        read_mask=mask("event_id", "type", "recipient"),
    )
    call = live_server.stub.WatchMessageEvents(request, metadata=live_server.metadata())
    await read(call)
    await live_server.ingest(
        [
            event("d1", type=pb.EVENT_TYPE_DELIVERY),
            event("b1", type=pb.EVENT_TYPE_BOUNCE, recipient="a@x.org", campaign_id="c"),
        ]
    )
    await live_server.ingest(
        [event("b-other", type=pb.EVENT_TYPE_BOUNCE)], key=live_server.other_api_key
    )
    await live_server.ingest([event("s1", type=pb.EVENT_TYPE_SPAM_COMPLAINT)])
    received = await read_events(call, 2)
    assert ids_of(received) == ["b1", "s1"]
    b1 = received[0].events[0]
    assert b1.recipient == "a@x.org" and not b1.HasField("campaign_id")
    # The watermark reaches the tenant's last commit; another tenant's commit
    # moves it on where commit order is shared (SQLite), not where it is per
    # tenant (PostgreSQL, Citus).
    last = received[-1]
    assert last.watermark.position >= last.events[-1].id
    call.cancel()


async def test_idle_streams_get_heartbeats_with_a_fresh_watermark(server: Server) -> None:
    await server.ingest(events(2))
    request = watch_request(heartbeat_interval=seconds(0.2))
    call = server.stub.WatchMessageEvents(request, metadata=server.metadata())
    started = time.monotonic()
    beats = [await read(call) for _ in range(4)]
    elapsed = time.monotonic() - started
    assert all(not b.events and b.resume_token and b.watermark.position == 2 for b in beats)
    times = [b.watermark.time.ToMicroseconds() for b in beats]
    assert times == sorted(times) and times[-1] > times[0]
    assert 0.45 < elapsed < 2.0  # the first at once, then three at 0.2 s
    call.cancel()


async def test_resuming_from_a_token_sends_exactly_what_was_committed_since(
    live_server: Server,
) -> None:
    call = live_server.stub.WatchMessageEvents(watch_request(), metadata=live_server.metadata())
    await read(call)
    await live_server.ingest(events(5, prefix="a"))
    seen = await read_events(call, 5)
    token = seen[-1].resume_token
    call.cancel()

    await live_server.ingest(events(7, prefix="b"))  # while no one watches
    await live_server.ingest(events(5, prefix="a"))  # duplicates: nothing new
    resumed = live_server.stub.WatchMessageEvents(
        watch_request(resume_token=token), metadata=live_server.metadata()
    )
    caught_up = await read_events(resumed, 7)
    assert ids_of(caught_up) == [f"b-{i:05d}" for i in range(7)]
    # Nothing more is pending: the next message is a heartbeat, not a repeat.
    await live_server.ingest([event("c")])
    assert ids_of([await read(resumed)]) == ["c"]
    resumed.cancel()


async def test_a_backlog_comes_in_batches_and_the_time_only_once_caught_up(
    live_server: Server,
) -> None:
    call = live_server.stub.WatchMessageEvents(
        watch_request(batch_size=1000), metadata=live_server.metadata()
    )
    first = await read(call)
    await live_server.ingest(events(2500))
    messages = await read_events(call, 2500)
    assert [len(m.events) for m in messages] == [1000, 1000, 500]
    assert [m.watermark.position for m in messages] == [1000, 2000, 2500]
    assert [m.watermark.HasField("time") for m in messages] == [False, False, True]
    all_ids = [ev.id for m in messages for ev in m.events]
    assert all_ids == list(range(first.watermark.position + 1, 2501))
    call.cancel()


async def test_a_token_survives_a_server_restart(tmp_path: Path) -> None:
    database = str(tmp_path / "restart.db")
    srv = await make_server(database)
    try:
        call = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata())
        await read(call)
        await srv.ingest(events(4, prefix="before"))
        token = (await read_events(call, 4))[-1].resume_token
    finally:
        await srv.channel.close()
        await srv.running.stop(grace=0)

    again = await make_server(database)  # same database: same secret, same positions
    try:
        await again.ingest(events(3, prefix="after"))
        call = again.stub.WatchMessageEvents(
            watch_request(resume_token=token), metadata=again.metadata()
        )
        assert ids_of(await read_events(call, 3)) == [f"after-{i:05d}" for i in range(3)]
        call.cancel()
    finally:
        await again.channel.close()
        await again.running.stop(grace=0)


async def test_max_events_ends_the_stream_with_an_exact_token(live_server: Server) -> None:
    call = live_server.stub.WatchMessageEvents(
        watch_request(max_events=3), metadata=live_server.metadata()
    )
    await read(call)
    await live_server.ingest(events(5))
    messages = await read_to_end(call)
    assert ids_of(messages) == [f"ev-{i:05d}" for i in range(3)]
    rest = live_server.stub.WatchMessageEvents(
        watch_request(resume_token=messages[-1].resume_token, max_events=2),
        metadata=live_server.metadata(),
    )
    assert ids_of(await read_to_end(rest)) == ["ev-00003", "ev-00004"]


async def test_one_commit_wakes_every_watcher(live_server: Server) -> None:
    calls = [
        live_server.stub.WatchMessageEvents(watch_request(), metadata=live_server.metadata())
        for _ in range(20)
    ]
    await asyncio.gather(*(read(call) for call in calls))
    await live_server.ingest([event("for-all")])
    messages = await asyncio.gather(*(read(call, 2.0) for call in calls))
    assert all(ids_of([m]) == ["for-all"] for m in messages)
    for call in calls:
        call.cancel()


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"heartbeat_interval": seconds(0.01)}, "heartbeat_interval"),
        ({"heartbeat_interval": seconds(7200)}, "heartbeat_interval"),
        ({"batch_size": -1}, "batch_size"),
        ({"max_events": -1}, "max_events"),
        ({"resume_token": "garbage"}, "resume_token"),
        ({"read_mask": mask("nope")}, "read_mask"),
    ],
)
async def test_invalid_requests_name_the_field(
    server: Server, request_fields: dict[str, object], field: str
) -> None:
    call = server.stub.WatchMessageEvents(
        watch_request(**request_fields), metadata=server.metadata()
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in error_details(caught.value)[1]]


async def test_tokens_are_bound_to_query_tenant_and_kind(server: Server) -> None:
    await server.ingest(events(3))
    call = server.stub.WatchMessageEvents(watch_request(), metadata=server.metadata())
    token = (await read(call)).resume_token
    call.cancel()

    async def refused(request: spb.WatchMessageEventsRequest, key: str | None = None) -> str:
        watch = server.stub.WatchMessageEvents(request, metadata=server.metadata(key))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(watch)
        return error_details(caught.value)[0].reason

    other_query = query(cond("type", spb.OPERATOR_EXACT, "bounce"))
    assert await refused(watch_request(query=other_query, resume_token=token)) == (
        "TOKEN_QUERY_MISMATCH"
    )
    assert await refused(watch_request(resume_token=token), server.other_api_key) == (
        "INVALID_TOKEN"
    )
    # A token from the history part of a search cannot be continued live.
    search = server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(batch_size=1), metadata=server.metadata()
    )
    history_token = (await read(search)).resume_token
    search.cancel()
    assert await refused(watch_request(resume_token=history_token)) == "TOKEN_NOT_LIVE"


async def test_a_token_ahead_of_the_store_is_refused(tmp_path: Path) -> None:
    """A database restored from a backup has not reached the token's position."""
    database = tmp_path / "live.db"
    backup = tmp_path / "backup.db"
    srv = await make_server(str(database))
    try:
        await srv.ingest(events(2, prefix="kept"))
        with sqlite3.connect(database) as source, sqlite3.connect(backup) as target:
            source.backup(target)
        await srv.ingest(events(3, prefix="lost"))
        call = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata())
        token = (await read(call)).resume_token
        call.cancel()
    finally:
        await srv.channel.close()
        await srv.running.stop(grace=0)

    restored = await make_server(str(backup))
    try:
        call = restored.stub.WatchMessageEvents(
            watch_request(resume_token=token), metadata=restored.metadata()
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(call)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(caught.value)[0].reason == "TOKEN_AHEAD_OF_STORE"
    finally:
        await restored.channel.close()
        await restored.running.stop(grace=0)


async def test_a_token_retention_has_since_passed_is_refused(live_server: Server) -> None:
    """An event committed after the token's position and removed by retention before
    the resume would be skipped without a word: the resume is refused instead."""
    srv = live_server
    now = int(time.time())
    await srv.ingest(events(3, prefix="recent", start=now - 600))
    call = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata())
    token = (await read(call)).resume_token
    call.cancel()
    # A backfilled event already older than the window, and one that is not.
    await srv.ingest([event("expired", ts=now - 60 * 86_400), event("fresh", ts=now - 60)])
    assert await srv.running.store.delete_before((now - 30 * 86_400) * 1_000_000) == 1

    call = srv.stub.WatchMessageEvents(watch_request(resume_token=token), metadata=srv.metadata())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "TOKEN_BEHIND_RETENTION"

    # A position taken since is past what was removed; another tenant is unaffected.
    call = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata())
    token = (await read(call)).resume_token
    call.cancel()
    call = srv.stub.WatchMessageEvents(watch_request(resume_token=token), metadata=srv.metadata())
    assert (await read(call)).resume_token
    call.cancel()
    other = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata(srv.other_api_key))
    other_token = (await read(other)).resume_token
    other.cancel()
    other = srv.stub.WatchMessageEvents(
        watch_request(resume_token=other_token), metadata=srv.metadata(srv.other_api_key)
    )
    assert (await read(other)).resume_token
    other.cancel()


async def test_unauthenticated_watch_is_refused(server: Server) -> None:
    call = server.stub.WatchMessageEvents(watch_request())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_cancelled_watch_stops_its_work(server: Server) -> None:
    call = server.stub.WatchMessageEvents(
        watch_request(heartbeat_interval=seconds(0.1)), metadata=server.metadata()
    )
    await read(call)
    call.cancel()
    await asyncio.sleep(0.3)
    # The server's stream is gone: a commit afterwards reaches no one and breaks nothing.
    await server.ingest([event("after-cancel")])
    await asyncio.sleep(0.2)


def test_the_live_read_plan_is_a_range_of_the_tenant_index(server: Server) -> None:
    """Following a tenant's tail reads only new rows, whatever the filters."""
    compiled = compile_query(query(cond("type", spb.OPERATOR_EXACT, "bounce")), tenant_id=1)
    bounded = Query(**{**compiled.__dict__, "max_id": 10_000})
    sql, params = sqlite_sql.select_after(bounded, 5_000, 1000)
    with sqlite3.connect(server.database) as conn:
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX events_tenant (tenant_id=? AND rowid>? AND rowid<?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


async def test_a_graceful_shutdown_ends_live_streams_at_once(tmp_path: Path) -> None:
    """Live streams never end by themselves: they must not hold up a shutdown's grace."""
    srv = await make_server(str(tmp_path / "stop.db"))
    try:
        watch = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata())
        follow = srv.stub.SearchMessageEvents(
            spb.SearchMessageEventsRequest(follow=True), metadata=srv.metadata()
        )
        await read(watch)
        await read(follow)
        started = time.monotonic()
        await srv.running.stop(grace=10)
        assert time.monotonic() - started < 3
        for call in (watch, follow):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await read(call)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the client resumes
    finally:
        await srv.channel.close()
