"""Result order and ListMessageEvents keyset paging (AIP-158), through the real server."""

from __future__ import annotations

import base64
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
    list_all,
    query,
    search_all,
)

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

ASC = spb.ORDER_TIMESTAMP_ASC
DESC = spb.ORDER_TIMESTAMP_DESC


async def list_page(
    server: Any, key: str | None = None, **request: Any
) -> spb.ListMessageEventsResponse:
    response: spb.ListMessageEventsResponse = await server.stub.ListMessageEvents(
        spb.ListMessageEventsRequest(**request), metadata=server.metadata(key), timeout=30
    )
    return response


# -- order --------------------------------------------------------------------


@pytest.fixture
async def shuffled(server: Any) -> Any:
    # Ingested out of timestamp order, so id order and time order differ.
    offsets = [5, 1, 9, 3, 7, 0, 8, 2, 6, 4]
    await server.ingest([event(f"t{o}", ts=BASE_SECONDS + o) for o in offsets])
    return server


async def test_default_order_is_newest_first(shuffled: Any) -> None:
    expected = [f"t{o}" for o in range(9, -1, -1)]
    assert event_ids(await search_all(shuffled)) == expected
    assert event_ids(await list_all(shuffled, page_size=3)) == expected
    assert event_ids(await search_all(shuffled, query(order=DESC))) == expected


async def test_ascending_order_on_request(shuffled: Any) -> None:
    q = query(order=ASC)
    expected = [f"t{o}" for o in range(10)]
    assert event_ids(await search_all(shuffled, q)) == expected
    assert event_ids(await list_all(shuffled, q, page_size=3)) == expected


@pytest.fixture
async def ties(server: Any) -> tuple[Any, list[int]]:
    # Equal timestamps, ingested one request at a time so ids grow with the name.
    ids = []
    for name, ts in [("a", 10), ("b", 20), ("c", 20), ("d", 20), ("e", 20), ("f", 30)]:
        response = await server.ingest([event(name, ts=BASE_SECONDS + ts)])
        ids.append(response.results[0].id)
    assert ids == sorted(ids)
    return server, ids


async def test_ties_broken_by_id_descending(ties: tuple[Any, list[int]]) -> None:
    server, _ = ties
    expected = ["f", "e", "d", "c", "b", "a"]
    assert event_ids(await search_all(server)) == expected
    assert event_ids(await search_all(server, batch_size=1)) == expected
    # Page boundaries inside the run of equal timestamps lose and repeat nothing.
    for size in (1, 2, 3, 4):
        assert event_ids(await list_all(server, page_size=size)) == expected


async def test_ties_broken_by_id_ascending(ties: tuple[Any, list[int]]) -> None:
    server, _ = ties
    q = query(order=ASC)
    expected = ["a", "b", "c", "d", "e", "f"]
    assert event_ids(await search_all(server, q)) == expected
    assert event_ids(await search_all(server, q, batch_size=1)) == expected
    for size in (1, 2, 3, 4):
        assert event_ids(await list_all(server, q, page_size=size)) == expected


async def test_tie_break_with_many_equal_timestamps(server: Any) -> None:
    await server.ingest(events(30, step=0))  # all at the same second
    ids = [ev.id for ev in await list_all(server, page_size=7)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 30
    asc = [ev.id for ev in await list_all(server, query(order=ASC), page_size=7)]
    assert asc == sorted(ids)


# -- page size ----------------------------------------------------------------


async def test_page_size_default_is_100(server: Any) -> None:
    await server.ingest(events(250))
    page = await list_page(server)
    assert len(page.events) == 100
    assert page.next_page_token
    assert page.total_size == 0  # not asked for


async def test_page_size_above_max_is_coerced_to_1000(server: Any) -> None:
    await server.ingest(events(1100))
    page = await list_page(server, page_size=5000)
    assert len(page.events) == 1000
    rest = await list_page(server, page_size=5000, page_token=page.next_page_token)
    assert len(rest.events) == 100
    assert not rest.next_page_token
    assert not set(event_ids(page.events)) & set(event_ids(rest.events))


async def test_negative_page_size_is_invalid(server: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_page(server, page_size=-1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert [field for field, _ in violations] == ["page_size"]


async def test_exact_fit_has_no_next_page(server: Any) -> None:
    await server.ingest(events(10))
    page = await list_page(server, page_size=10)
    assert len(page.events) == 10
    assert page.next_page_token == ""


async def test_empty_result(server: Any) -> None:
    page = await list_page(server, include_total_size=True)
    assert list(page.events) == [] and page.next_page_token == "" and page.total_size == 0


# -- walking pages ------------------------------------------------------------


async def test_walking_all_pages_returns_every_event_once(server: Any) -> None:
    stored = events(253, step=7)
    await server.ingest(stored)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await list_page(server, page_size=10, page_token=token, include_total_size=True)
        assert page.total_size == 253
        seen.extend(event_ids(page.events))
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 26
    assert seen == [ev.event_id for ev in reversed(stored)]


async def test_walking_pages_with_a_filter(server: Any) -> None:
    evs = [
        event(f"e{i:03d}", ts=BASE_SECONDS + i, campaign_id="even" if i % 2 == 0 else "odd")
        for i in range(101)
    ]
    await server.ingest(evs)
    q = query(cond("campaign_id", spb.OPERATOR_EXACT, "even"), order=ASC)
    got = event_ids(await list_all(server, q, page_size=9))
    assert got == [f"e{i:03d}" for i in range(0, 101, 2)]


@pytest.mark.parametrize("order", [DESC, ASC])
async def test_walking_pages_inside_a_time_window(server: Any, order: int) -> None:
    await server.ingest(events(100))
    q = query(start=BASE_SECONDS + 20, end=BASE_SECONDS + 80, order=order)
    window = [f"ev-{i:05d}" for i in range(20, 80)]
    expected = window if order == ASC else window[::-1]
    for size in (1, 7, 60):
        assert event_ids(await list_all(server, q, page_size=size)) == expected
    got = await search_all(server, q, batch_size=7)
    assert event_ids(got) == expected


@pytest.mark.parametrize("order", [DESC, ASC])
async def test_paging_is_stable_while_events_arrive(server: Any, order: int) -> None:
    # 60 events at even seconds 0, 2, .., 118.
    await server.ingest([event(f"old{i:03d}", ts=BASE_SECONDS + 2 * i) for i in range(60)])
    q = query(order=order)
    expected = event_ids(await list_all(server, q))
    assert len(expected) == 60

    seen: list[str] = []
    token = ""
    round_ = 0
    while True:
        page = await list_page(
            server, query=q, page_size=7, page_token=token, include_total_size=True
        )
        assert page.total_size == 60
        seen.extend(event_ids(page.events))
        token = page.next_page_token
        if not token:
            break
        # Between pages: newer than everything, older than everything, right at
        # the cursor, and between already-returned and not-yet-returned events.
        cursor = page.events[-1].timestamp.seconds
        round_ += 1
        await server.ingest(
            [
                event(f"new{round_}-newest", ts=BASE_SECONDS + 10_000 + round_),
                event(f"new{round_}-oldest", ts=BASE_SECONDS - 10_000 - round_),
                event(f"new{round_}-at", ts=cursor),
                event(f"new{round_}-past", ts=cursor + (1 if order == DESC else -1)),
                event(f"new{round_}-ahead", ts=cursor + (-1 if order == DESC else 1)),
            ]
        )
    assert seen == expected  # no duplicates, no gaps, same order
    # A fresh walk sees the new events too.
    assert len(await list_all(server, q)) == 60 + 5 * round_


async def test_page_size_may_change_between_pages(server: Any) -> None:
    await server.ingest(events(20))
    first = await list_page(server, page_size=5)
    second = await list_page(server, page_size=15, page_token=first.next_page_token)
    assert event_ids(first.events) + event_ids(second.events) == [
        f"ev-{i:05d}" for i in range(19, -1, -1)
    ]
    assert not second.next_page_token


# -- tokens -------------------------------------------------------------------


def _assert_invalid_token(
    err: grpc.aio.AioRpcError, reason: str, field: str = "page_token"
) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = error_details(err)
    assert info.reason == reason
    assert [f for f, _ in violations] == [field]


@pytest.fixture
async def paged(server: Any) -> tuple[Any, spb.EventQuery, str]:
    await server.ingest(events(30, type=pb.EVENT_TYPE_BOUNCE, campaign_id="c1"))
    q = query(cond("campaign_id", spb.OPERATOR_EXACT, "c1"))
    page = await list_page(server, query=q, page_size=10)
    assert page.next_page_token
    return server, q, page.next_page_token


@pytest.mark.parametrize(
    "other",
    [
        query(cond("campaign_id", spb.OPERATOR_EXACT, "c2")),
        query(cond("campaign_id", spb.OPERATOR_EXACT, "c1"), order=ASC),
        query(cond("campaign_id", spb.OPERATOR_EXACT, "c1"), start=BASE_SECONDS),
        query(
            cond("campaign_id", spb.OPERATOR_EXACT, "c1"),
            cond("type", spb.OPERATOR_EXACT, "bounce"),
        ),
        query(),
    ],
)
async def test_token_is_bound_to_its_query(
    paged: tuple[Any, spb.EventQuery, str], other: spb.EventQuery
) -> None:
    server, _, token = paged
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_page(server, query=other, page_size=10, page_token=token)
    _assert_invalid_token(caught.value, "TOKEN_QUERY_MISMATCH")


async def test_same_query_continues(paged: tuple[Any, spb.EventQuery, str]) -> None:
    server, q, token = paged
    page = await list_page(server, query=q, page_size=10, page_token=token)
    assert len(page.events) == 10


def _tampered(token: str) -> list[str]:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    out = []
    for position in (1, 20, len(raw) // 2, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        out.append(base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("="))
    out.append(token[:-2])  # truncated
    out.append(token + "AAAA")  # extended
    out.append("not a token at all!")
    out.append("%%%%")
    return out


async def test_tampered_token_is_invalid(paged: tuple[Any, spb.EventQuery, str]) -> None:
    server, q, token = paged
    for bad in _tampered(token):
        assert bad != token
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_page(server, query=q, page_size=10, page_token=bad)
        _assert_invalid_token(caught.value, "INVALID_TOKEN")


async def test_another_tenants_token_is_useless(paged: tuple[Any, spb.EventQuery, str]) -> None:
    server, q, token = paged
    await server.ingest(events(30, campaign_id="c1"), key=server.other_api_key)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_page(server, key=server.other_api_key, query=q, page_size=10, page_token=token)
    _assert_invalid_token(caught.value, "INVALID_TOKEN")
    # The error tells nothing about acme's events.
    assert "ev-" not in (caught.value.details() or "")


async def test_list_token_does_not_resume_another_tenants_search(
    paged: tuple[Any, spb.EventQuery, str],
) -> None:
    server, q, token = paged
    call = server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(query=q, resume_token=token),
        metadata=server.metadata(server.other_api_key),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    _assert_invalid_token(caught.value, "INVALID_TOKEN", "resume_token")


@pytest.mark.parametrize("order", [spb.ORDER_ID_ASC, spb.ORDER_ID_DESC])
async def test_id_order_is_commit_order_and_pages_by_id(shuffled: Any, order: int) -> None:
    # `shuffled` stores t5, t1, t9, ... in that commit order: id order is not time order.
    commit_order = [f"t{o}" for o in (5, 1, 9, 3, 7, 0, 8, 2, 6, 4)]
    expected = commit_order if order == spb.ORDER_ID_ASC else commit_order[::-1]
    seen: list[str] = []
    token = ""
    while True:
        page = await list_page(
            shuffled, query=spb.EventQuery(order=order), page_size=3, page_token=token
        )
        seen.extend(event_ids(page.events))
        token = page.next_page_token
        if not token:
            break
    assert seen == expected
    searched = [
        ev.event_id for ev in await search_all(shuffled, spb.EventQuery(order=order), batch_size=4)
    ]
    assert searched == expected
