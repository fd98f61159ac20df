"""`skip` on search and list (AIP-158), and offset walks at keyset cost.

On both stores through the real server: a skip returns exactly the rows an
offset would, in every order and with the IN lists SQLite reads value by
value; a walk of offset pages resumes each follow-on page from where the page
before it ended, so events present when the walk began are returned once
each while newer ones arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import Server, make_server
from factories import cond, event, event_ids, query, rich_status, search_all
from google.rpc import error_details_pb2
from pgtest import SERVER_BACKENDS, fresh_database

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

BACKENDS = ["sqlite", *SERVER_BACKENDS]
ORDERS = [
    spb.ORDER_TIMESTAMP_DESC,
    spb.ORDER_TIMESTAMP_ASC,
    spb.ORDER_ID_ASC,
    spb.ORDER_ID_DESC,
    spb.ORDER_TIMESTAMP_DESC_ID_ASC,
    spb.ORDER_TIMESTAMP_ASC_ID_DESC,
]


@pytest.fixture(params=BACKENDS)
async def srv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    if request.param == "sqlite":
        server = await make_server(str(tmp_path / "events.db"))
        try:
            yield server
        finally:
            await server.channel.close()
            await server.running.stop(grace=0)
        return
    async with fresh_database(request.param) as url:
        server = await make_server(url)
        try:
            yield server
        finally:
            await server.channel.close()
            await server.running.stop(grace=0)


def _events() -> list[pb.MessageEvent]:
    types = [pb.EVENT_TYPE_DELIVERY, pb.EVENT_TYPE_BOUNCE, pb.EVENT_TYPE_OPEN]
    # Timestamps out of id order, with ties, so the four orders differ.
    return [
        event(f"s{i:03d}", ts=10_000 + (i * 37) % 50, type=types[i % 3], bulk_email_id=i % 4)
        for i in range(120)
    ]


async def test_skip_is_an_offset_in_every_order(srv: Server) -> None:
    await srv.ingest(_events())
    some_types = cond("type", spb.OPERATOR_IN, "delivery", "bounce")
    # An IN list that SQLite reads value by value in id order.
    some_bulk = cond("bulk_email_id", spb.OPERATOR_IN, "1", "2")
    for order in ORDERS:
        for conditions in ((), (some_types,), (some_bulk,)):
            q = query(*conditions, order=order)
            everything = event_ids(await search_all(srv, q))
            for skip in (0, 1, 7, 40, len(everything) - 1, len(everything), 500):
                page = await search_all(srv, q, skip=skip, max_events=9)
                assert event_ids(page) == everything[skip : skip + 9], (order, skip)
                listed = await srv.stub.ListMessageEvents(
                    spb.ListMessageEventsRequest(query=q, page_size=9, skip=skip),
                    metadata=srv.metadata(),
                )
                assert event_ids(listed.events) == everything[skip : skip + 9], (order, skip)
            # With a token, the skip counts from the token's position.
            first = await srv.stub.ListMessageEvents(
                spb.ListMessageEventsRequest(query=q, page_size=5), metadata=srv.metadata()
            )
            after = await srv.stub.ListMessageEvents(
                spb.ListMessageEventsRequest(
                    query=q, page_size=5, skip=3, page_token=first.next_page_token
                ),
                metadata=srv.metadata(),
            )
            assert event_ids(after.events) == everything[8:13]


@pytest.mark.parametrize(
    ("order", "ts_descending", "id_descending"),
    [
        (spb.ORDER_TIMESTAMP_DESC_ID_ASC, True, False),
        (spb.ORDER_TIMESTAMP_ASC_ID_DESC, False, True),
    ],
)
async def test_mixed_orders_are_keyset_orders(
    srv: Server, order: int, ts_descending: bool, id_descending: bool
) -> None:
    await srv.ingest(_events())
    q = query(order=order)
    found = await search_all(srv, q)
    stored = {ev.event_id: ev for ev in await search_all(srv, query(order=spb.ORDER_ID_ASC))}
    ids = list(stored)  # in id order

    def key(event_id: str) -> tuple[int, int]:
        seconds = stored[event_id].timestamp.seconds
        position = ids.index(event_id)
        return (-seconds if ts_descending else seconds, -position if id_descending else position)

    assert event_ids(found) == sorted(stored, key=key)
    # Page tokens continue in the same order, across runs of equal timestamps.
    paged, token = [], ""
    while True:
        page = await srv.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(query=q, page_size=7, page_token=token),
            metadata=srv.metadata(),
        )
        paged += event_ids(page.events)
        token = page.next_page_token
        if not token:
            break
    assert paged == event_ids(found)


async def test_negative_skip_is_refused(srv: Server) -> None:
    for call in (
        search_all(srv, query(), skip=-1),
        srv.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(query=query(), skip=-1), metadata=srv.metadata()
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bad = error_details_pb2.BadRequest()
        assert any(d.Unpack(bad) for d in rich_status(caught.value).details)
        assert [(v.field, v.description) for v in bad.field_violations] == [
            ("skip", "must not be negative")
        ]


@pytest.mark.parametrize("order", [spb.ORDER_TIMESTAMP_DESC, spb.ORDER_ID_ASC])
async def test_an_offset_walk_returns_each_event_present_at_its_start_once(
    srv: Server, order: int
) -> None:
    await srv.ingest([event(f"w{i:03d}", ts=20_000 + i // 2) for i in range(95)])
    q = query(order=order)
    before = event_ids(await search_all(srv, q))
    seen: list[str] = []
    offset, n = 0, 0
    while True:
        page = event_ids(await search_all(srv, q, skip=offset, max_events=10))
        seen += page
        if len(page) < 10:
            break
        offset += 10
        # Newer events (first in newest-first order: a pure OFFSET would
        # repeat the rows they push down) and older ones arrive between pages.
        await srv.ingest([event(f"new{n}", ts=90_000), event(f"old{n}", ts=100)])
        n += 1
    kept = [e for e in seen if e.startswith("w")]
    assert kept == before  # none skipped, none repeated, in order
    assert len(seen) == len(set(seen))


async def test_counts_follow_commits(srv: Server) -> None:
    await srv.ingest([event(f"c{i}", ts=30_000 + i) for i in range(10)])

    async def total() -> int:
        response = await srv.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(query=query()), metadata=srv.metadata()
        )
        return int(response.total)

    assert await total() == 10
    assert await total() == 10
    await srv.ingest([event("c-late", ts=1)])
    assert await total() == 11
