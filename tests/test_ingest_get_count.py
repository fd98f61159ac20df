"""IngestMessageEvents, GetMessageEvent and CountMessageEvents through the real server."""

from __future__ import annotations

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
    query,
    search_all,
)

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

STORED = spb.INGEST_STATUS_STORED
DUPLICATE = spb.INGEST_STATUS_DUPLICATE
REJECTED = spb.INGEST_STATUS_REJECTED


async def total(server: Any, q: spb.EventQuery | None = None, key: str | None = None) -> int:
    response = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(query=q), metadata=server.metadata(key)
    )
    return int(response.total)


async def get(server: Any, key: str | None = None, **request: Any) -> pb.MessageEvent:
    response = await server.stub.GetMessageEvent(
        spb.GetMessageEventRequest(**request), metadata=server.metadata(key)
    )
    return response.event


async def ingest_raw(server: Any, evs: list[pb.MessageEvent]) -> spb.IngestMessageEventsResponse:
    response: spb.IngestMessageEventsResponse = await server.stub.IngestMessageEvents(
        spb.IngestMessageEventsRequest(events=evs), metadata=server.metadata(), timeout=60
    )
    return response


# -- ingest -------------------------------------------------------------------


async def test_ingest_stores_and_assigns_increasing_ids(server: Any) -> None:
    response = await server.ingest(events(5))
    assert response.stored == 5 and response.duplicates == 0 and response.rejected == 0
    assert [r.index for r in response.results] == [0, 1, 2, 3, 4]
    assert [r.event_id for r in response.results] == [f"ev-{i:05d}" for i in range(5)]
    assert {r.status for r in response.results} == {STORED}
    ids = [r.id for r in response.results]
    assert ids == sorted(ids) and len(set(ids)) == 5 and ids[0] > 0
    assert await total(server) == 5


async def test_ingest_is_idempotent(server: Any) -> None:
    batch = events(20)
    first = await server.ingest(batch)
    second = await server.ingest(batch)
    assert second.stored == 0 and second.duplicates == 20 and second.rejected == 0
    assert {r.status for r in second.results} == {DUPLICATE}
    assert [r.id for r in second.results] == [r.id for r in first.results]
    assert await total(server) == 20
    assert len(await search_all(server)) == 20


async def test_duplicate_keeps_the_first_version(server: Any) -> None:
    await server.ingest([event("x", campaign_id="first")])
    again = await server.ingest([event("x", campaign_id="second")])
    assert again.results[0].status == DUPLICATE
    assert (await get(server, event_id="x")).campaign_id == "first"


async def test_duplicates_within_one_batch(server: Any) -> None:
    batch = [event("a"), event("b"), event("a", campaign_id="other"), event("c"), event("b")]
    response = await server.ingest(batch)
    assert [r.status for r in response.results] == [STORED, STORED, DUPLICATE, STORED, DUPLICATE]
    ids = [r.id for r in response.results]
    assert ids[2] == ids[0] and ids[4] == ids[1]
    assert response.stored == 3 and response.duplicates == 2
    assert await total(server) == 3


async def test_mixed_new_and_known_events(server: Any) -> None:
    await server.ingest(events(3))
    response = await server.ingest(events(5))
    assert [r.status for r in response.results] == [DUPLICATE] * 3 + [STORED] * 2
    assert await total(server) == 5


async def test_invalid_events_rejected_one_by_one(server: Any) -> None:
    no_timestamp = pb.MessageEvent(event_id="no-ts", type=pb.EVENT_TYPE_BOUNCE)
    batch = [
        event("good-1"),
        event(""),  # no event_id
        no_timestamp,
        event("no-type", type=pb.EVENT_TYPE_UNSPECIFIED),
        event("   "),  # blank event_id
        event("bad-json", extra_json="[1, 2]"),
        event("x" * 300),  # event_id too long
        event("bad-tag", tags=["a\x1fb"]),
        event("good-2", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="bounce"),
    ]
    response = await server.ingest(batch)
    statuses = [r.status for r in response.results]
    assert statuses == [STORED] + [REJECTED] * 7 + [STORED]
    assert [r.index for r in response.results] == list(range(9))
    reasons = {r.index: r.reason for r in response.results}
    assert "event_id" in reasons[1] and "event_id" in reasons[4]
    assert "timestamp" in reasons[2]
    assert "type" in reasons[3]
    assert "extra_json" in reasons[5]
    assert "event_id" in reasons[6]
    assert "tags" in reasons[7]
    assert all(r.id == 0 for r in response.results if r.status == REJECTED)
    assert response.results[2].event_id == "no-ts"
    assert response.stored == 2 and response.rejected == 7
    assert sorted(event_ids(await search_all(server))) == ["good-1", "good-2"]


def _with(ev: pb.MessageEvent, change: Any) -> pb.MessageEvent:
    change(ev)
    return ev


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (event(""), "event_id is required"),
        (event(" \t"), "event_id is required"),
        (event("x" * 257), "event_id longer than 256 characters"),
        (event("t", type=pb.EVENT_TYPE_UNSPECIFIED), "type or type_name is required"),
        (
            event("t", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="  "),
            "type or type_name is required",
        ),
        (event("t", type=9999), "unknown type value 9999"),
        (pb.MessageEvent(event_id="t", type=pb.EVENT_TYPE_BOUNCE), "timestamp is required"),
        (
            _with(event("t"), lambda ev: setattr(ev.timestamp, "seconds", 253402300800)),
            "timestamp is out of range",
        ),
        (
            _with(event("t"), lambda ev: setattr(ev.timestamp, "nanos", -1)),
            "timestamp is out of range",
        ),
        (
            _with(event("t"), lambda ev: setattr(ev.send_time, "seconds", -62135596801)),
            "send_time is out of range",
        ),
        (event("t", tags=["ok", "a\x1fb"]), "tags must not contain the U+001F separator"),
        (event("t", extra_json="[1]"), "extra_json must be the text of a JSON object"),
        (event("t", extra_json="{oops"), "extra_json must be the text of a JSON object"),
        (
            event("t", substitutions_json='"text"'),
            "substitutions_json must be the text of a JSON object",
        ),
        (event("t", reason="r" * 300_000), "event larger than 262144 bytes"),
    ],
)
async def test_each_rule_rejects_with_its_reason(
    server: Any, bad: pb.MessageEvent, reason: str
) -> None:
    # In a batch large enough for a worker process to prepare, and alone (in the event loop).
    batch = [*events(300, prefix="fine"), bad]
    for sent in (batch, [bad]):
        response = await server.ingest(sent)
        rejected = [r for r in response.results if r.status == REJECTED]
        assert [(r.index, r.reason) for r in rejected] == [(len(sent) - 1, reason)]
    assert await total(server) == 300


async def test_the_edges_of_each_rule_are_accepted(server: Any) -> None:
    batch = [
        event("x" * 256),
        event("t1", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="bounce"),
        event("t2", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="a-type-we-do-not-know"),
        _with(event("t3"), lambda ev: ev.timestamp.FromSeconds(253402300799)),
        _with(event("t4"), lambda ev: ev.send_time.FromSeconds(-62135596800)),
        event("t5", tags=["a", "", "b"], extra_json="{}", substitutions_json='{"a": [1]}'),
    ]
    response = await server.ingest(batch)
    assert [r.status for r in response.results] == [STORED] * len(batch)
    stored = {ev.event_id: ev for ev in await search_all(server)}
    assert list(stored["t5"].tags) == ["a", "", "b"]
    assert stored["t1"].type == pb.EVENT_TYPE_BOUNCE


async def test_store_assigned_id_on_ingest_is_ignored(server: Any) -> None:
    ev = event("with-id")
    ev.id = 999_999
    response = await server.ingest([ev])
    assert response.results[0].id != 999_999
    assert (await get(server, event_id="with-id")).id == response.results[0].id


@pytest.mark.parametrize("count", [0, 10_001])
async def test_ingest_batch_size_limits(server: Any, count: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest_raw(server, events(count))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(caught.value)[1]] == ["events"]
    assert await total(server) == 0


async def test_ingest_accepts_exactly_10000(server: Any) -> None:
    response = await ingest_raw(server, events(10_000))
    assert response.stored == 10_000
    assert await total(server) == 10_000


async def test_ingested_event_round_trips(server: Any) -> None:
    ev = event(
        "full",
        type=pb.EVENT_TYPE_CLICK,
        send_time=BASE_SECONDS - 60,
        message_id="m1",
        transmission_id="t1",
        campaign_id="c1",
        template_id="tpl",
        bulk_email_id=7,
        send_email_id=8,
        contact_id=9,
        recipient="Someone@Example.com",
        tags=["a", "b"],
        metadata={"k": "v"},
        substitutions_json='{"x": 1}',
        msg_size=1234,
        num_retries=2,
        bounce_class=10,
        target_link_url="https://example.com/?a=1&b=%20",
        geo_ip=pb.GeoIp(country="US", latitude=1.5),
        archived=True,
        extra_json='{"unmodelled": {"nested": [1, 2]}}',
    )
    response = await server.ingest([ev])
    got = await get(server, event_id="full")
    expected = pb.MessageEvent()
    expected.CopyFrom(ev)
    expected.id = response.results[0].id
    expected.type_name = "click"
    expected.event_category = "track_event"
    assert got == expected


async def test_a_batch_prepared_in_a_worker_process_answers_like_a_small_one(
    server: Any,
) -> None:
    # Over 256 events: prepared in the ingest worker processes, whose results
    # come back pickled; statuses, indexes, columns and bodies must all hold.
    batch = [event(f"big-{i}", campaign_id="bulk") for i in range(600)]
    batch[0] = event("")
    batch[299] = event("bad-json", extra_json="[1]")
    batch[300] = event(
        "full",
        type=pb.EVENT_TYPE_UNSPECIFIED,
        type_name="click",
        campaign_id="special",
        recipient="Someone@Example.COM",
        tags=["a", "b"],
        metadata={"k": "v"},
        bulk_email_id=7,
        archived=True,
    )
    batch[599] = event("big-1", campaign_id="bulk")  # a duplicate within the batch
    response = await server.ingest(batch)
    assert [r.index for r in response.results] == list(range(600))
    statuses = [r.status for r in response.results]
    assert statuses[0] == statuses[299] == REJECTED
    assert statuses[599] == DUPLICATE and response.results[599].id == response.results[1].id
    assert (response.stored, response.duplicates, response.rejected) == (597, 1, 2)
    assert "extra_json" in response.results[299].reason

    got = await get(server, event_id="full")
    assert got.id == response.results[300].id
    assert (got.type, got.event_category) == (pb.EVENT_TYPE_CLICK, "track_event")
    assert list(got.tags) == ["a", "b"] and dict(got.metadata) == {"k": "v"}
    # The typed columns came from the worker too: filters find the event.
    for condition in (
        cond("campaign_id", spb.OPERATOR_EXACT, "special"),
        cond("recipient_domain", spb.OPERATOR_EXACT, "example.com"),
        cond("tags", spb.OPERATOR_EXACT, "b"),
        cond("bulk_email_id", spb.OPERATOR_EXACT, "7"),
        cond("archived", spb.OPERATOR_EXACT, "true"),
    ):
        assert event_ids(await search_all(server, query(condition))) == ["full"]
    assert (
        len(await search_all(server, query(cond("campaign_id", spb.OPERATOR_EXACT, "bulk")))) == 596
    )


# -- get ----------------------------------------------------------------------


async def test_get_by_id_and_by_event_id(server: Any) -> None:
    response = await server.ingest([event("a", campaign_id="ca"), event("b", campaign_id="cb")])
    id_b = response.results[1].id
    by_id = await get(server, id=id_b)
    by_event_id = await get(server, event_id="b")
    assert by_id == by_event_id
    assert by_id.id == id_b and by_id.event_id == "b" and by_id.campaign_id == "cb"


@pytest.mark.parametrize("lookup", [{"id": 999_999}, {"event_id": "missing"}])
async def test_get_missing_is_not_found(server: Any, lookup: dict[str, Any]) -> None:
    await server.ingest([event("a")])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(server, **lookup)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    info, violations = error_details(caught.value)
    assert info.reason == "EVENT_NOT_FOUND" and violations == []


@pytest.mark.parametrize(
    ("lookup", "field"),
    [({}, "id"), ({"id": -3}, "id"), ({"id": 0}, "id"), ({"event_id": ""}, "event_id")],
)
async def test_get_without_a_usable_lookup_is_invalid(
    server: Any, lookup: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(server, **lookup)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(caught.value)[1]] == [field]


# -- count --------------------------------------------------------------------


@pytest.fixture
async def counted(server: Any) -> Any:
    await server.ingest(
        [
            event(
                "b1",
                ts="2024-03-10T02:30:00Z",
                type=pb.EVENT_TYPE_BOUNCE,
                campaign_id="spring",
                recipient="a@Example.com",
            ),
            event(
                "b2",
                ts="2024-03-10T02:45:00Z",
                type=pb.EVENT_TYPE_BOUNCE,
                campaign_id="spring",
                recipient="b@example.com",
            ),
            event(
                "b3",
                ts="2024-03-10T05:10:00Z",
                type=pb.EVENT_TYPE_BOUNCE,
                campaign_id="summer",
                recipient="c@example.org",
            ),
            event(
                "d1",
                ts="2024-03-09T23:00:00Z",
                type=pb.EVENT_TYPE_DELIVERY,
                campaign_id="spring",
                recipient="d@example.com",
            ),
            event("d2", ts="2024-03-11T04:59:59Z", type=pb.EVENT_TYPE_DELIVERY),
            event(
                "u1",
                ts="2024-03-11T05:00:00Z",
                type=pb.EVENT_TYPE_UNSPECIFIED,
                type_name="amp_open",
                campaign_id="summer",
                recipient="e@EXAMPLE.ORG",
            ),
        ]
    )
    return server


async def count(server: Any, *group_by: int, **request: Any) -> spb.CountMessageEventsResponse:
    response: spb.CountMessageEventsResponse = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(group_by=list(group_by), **request),
        metadata=server.metadata(),
    )
    return response


def buckets(response: spb.CountMessageEventsResponse, index: int = 0) -> list[tuple[str, int]]:
    return [(b.key, b.count) for b in response.groups[index].buckets]


async def test_count_total(counted: Any) -> None:
    assert (await count(counted)).total == 6
    q = query(cond("type", spb.OPERATOR_EXACT, "bounce"))
    response = await count(counted, query=q)
    assert response.total == 3 and list(response.groups) == []
    assert (await count(counted, query=query(start="2024-03-10T00:00:00Z"))).total == 5


async def test_count_by_type(counted: Any) -> None:
    response = await count(counted, spb.GROUP_BY_TYPE)
    assert response.total == 6
    assert response.groups[0].group_by == spb.GROUP_BY_TYPE
    assert buckets(response) == [("bounce", 3), ("delivery", 2), ("amp_open", 1)]


async def test_count_by_campaign_with_missing_values(counted: Any) -> None:
    response = await count(counted, spb.GROUP_BY_CAMPAIGN)
    assert buckets(response) == [("spring", 3), ("summer", 2), ("", 1)]


async def test_count_by_recipient_domain_is_case_insensitive(counted: Any) -> None:
    response = await count(counted, spb.GROUP_BY_RECIPIENT_DOMAIN)
    assert buckets(response) == [("example.com", 3), ("example.org", 2), ("", 1)]


async def test_count_by_hour_and_day_in_utc(counted: Any) -> None:
    response = await count(counted, spb.GROUP_BY_HOUR, spb.GROUP_BY_DAY)
    assert buckets(response, 0) == [
        ("2024-03-09T23:00", 1),
        ("2024-03-10T02:00", 2),
        ("2024-03-10T05:00", 1),
        ("2024-03-11T04:00", 1),
        ("2024-03-11T05:00", 1),
    ]
    assert buckets(response, 1) == [("2024-03-09", 1), ("2024-03-10", 3), ("2024-03-11", 2)]
    assert response.groups[1].group_by == spb.GROUP_BY_DAY


async def test_count_by_hour_and_day_in_a_time_zone(counted: Any) -> None:
    # New York: EST (-05:00) until 2024-03-10T07:00Z, EDT (-04:00) after.
    response = await count(
        counted, spb.GROUP_BY_HOUR, spb.GROUP_BY_DAY, time_zone="America/New_York"
    )
    assert buckets(response, 0) == [
        ("2024-03-09T18:00", 1),
        ("2024-03-09T21:00", 2),
        ("2024-03-10T00:00", 1),
        ("2024-03-11T00:00", 1),
        ("2024-03-11T01:00", 1),
    ]
    assert buckets(response, 1) == [("2024-03-09", 3), ("2024-03-10", 1), ("2024-03-11", 2)]


async def test_count_groups_respect_filters_and_max_buckets(counted: Any) -> None:
    q = query(cond("campaign_id", spb.OPERATOR_EXACT, "spring"))
    response = await count(counted, spb.GROUP_BY_TYPE, query=q)
    assert response.total == 3
    assert buckets(response) == [("bounce", 2), ("delivery", 1)]
    response = await count(counted, spb.GROUP_BY_TYPE, spb.GROUP_BY_DAY, max_buckets=1)
    assert buckets(response, 0) == [("bounce", 3)]
    assert buckets(response, 1) == [("2024-03-09", 1)]


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "America", "../UTC", "/etc/localtime", "EST5EDT "]
)
async def test_count_bad_time_zone(counted: Any, zone: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await count(counted, spb.GROUP_BY_DAY, time_zone=zone)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(caught.value)[1]] == ["time_zone"]


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        ({"group_by": [spb.GROUP_BY_UNSPECIFIED]}, ["group_by[0]"]),
        ({"group_by": [spb.GROUP_BY_TYPE, 99]}, ["group_by[1]"]),
        ({"max_buckets": -1}, ["max_buckets"]),
    ],
)
async def test_count_bad_request(counted: Any, request_: dict[str, Any], fields: list[str]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await counted.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(**request_), metadata=counted.metadata()
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(caught.value)[1]] == fields


# -- unknown types ------------------------------------------------------------


async def test_unknown_type_round_trips(server: Any) -> None:
    await server.ingest(
        [
            event("amp", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="amp_open"),
            event("known", type=pb.EVENT_TYPE_OPEN),
        ]
    )
    got = await get(server, event_id="amp")
    assert got.type == pb.EVENT_TYPE_UNSPECIFIED
    assert got.type_name == "amp_open"
    assert not got.HasField("event_category")
    found = await search_all(server, query(cond("type_name", spb.OPERATOR_EXACT, "amp_open")))
    assert event_ids(found) == ["amp"]
    found = await search_all(server, query(cond("type_name", spb.OPERATOR_EXACT, "open")))
    assert event_ids(found) == ["known"]
    # "amp_open" is not a type we know, so filtering `type` by it is an error, not "nothing".
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await search_all(server, query(cond("type", spb.OPERATOR_EXACT, "amp_open")))
    assert [f for f, _ in error_details(caught.value)[1]] == ["query.conditions[0].values[0]"]


async def test_provider_type_name_is_kept_alongside_a_known_type(server: Any) -> None:
    await server.ingest([event("named", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="Bounce")])
    got = await get(server, event_id="named")
    assert got.type == pb.EVENT_TYPE_BOUNCE
    assert got.type_name == "Bounce"
    assert got.event_category == "message_event"
