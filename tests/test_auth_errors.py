"""Authentication, tenant isolation, the rich INVALID_ARGUMENT errors, health and reflection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    mask,
    query,
    search_all,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

SERVICE = spb.DESCRIPTOR.services_by_name["MessageEventService"]

Metadata = tuple[tuple[str, str], ...]


async def _search(server: Any, md: Metadata) -> Any:
    call = server.stub.SearchMessageEvents(spb.SearchMessageEventsRequest(), metadata=md)
    return [r async for r in call]


async def _list(server: Any, md: Metadata) -> Any:
    return await server.stub.ListMessageEvents(spb.ListMessageEventsRequest(), metadata=md)


async def _get(server: Any, md: Metadata) -> Any:
    return await server.stub.GetMessageEvent(spb.GetMessageEventRequest(event_id="a"), metadata=md)


async def _count(server: Any, md: Metadata) -> Any:
    return await server.stub.CountMessageEvents(spb.CountMessageEventsRequest(), metadata=md)


async def _ingest(server: Any, md: Metadata) -> Any:
    return await server.stub.IngestMessageEvents(
        spb.IngestMessageEventsRequest(events=[event("new")]), metadata=md
    )


async def _ingest_stream(server: Any, md: Metadata) -> Any:
    batches = iter([spb.IngestMessageEventsStreamRequest(events=[event("new")], batch_id="b")])
    call = server.stub.IngestMessageEventsStream(batches, metadata=md)
    try:
        return [r async for r in call]
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.INTERNAL:
            raise
        # The batch was still being sent when the server refused the call, and
        # the client reports its failed send; the call's own status is the
        # server's answer.
        raise grpc.aio.AioRpcError(
            await call.code(),
            await call.initial_metadata(),
            await call.trailing_metadata(),
            await call.details(),
        ) from err


async def _watch(server: Any, md: Metadata) -> Any:
    call = server.stub.WatchMessageEvents(spb.WatchMessageEventsRequest(max_events=1), metadata=md)
    return [r async for r in call]


RPCS: dict[str, Callable[[Any, Metadata], Awaitable[Any]]] = {
    "SearchMessageEvents": _search,
    "ListMessageEvents": _list,
    "GetMessageEvent": _get,
    "CountMessageEvents": _count,
    "IngestMessageEvents": _ingest,
    "IngestMessageEventsStream": _ingest_stream,
    "WatchMessageEvents": _watch,
}


def test_every_rpc_is_covered_here() -> None:
    assert set(RPCS) == {m.name for m in SERVICE.methods}


# -- authentication -----------------------------------------------------------

BAD_METADATA: dict[str, Metadata] = {
    "none": (),
    "wrong key": (("authorization", "Bearer mek_not-a-real-key"),),
    "empty bearer": (("authorization", "Bearer "),),
    "scheme only": (("authorization", "Bearer"),),
    "basic": (("authorization", "Basic dXNlcjpwYXNz"),),
    "no scheme": (("authorization", "mek_abc"),),
    "empty": (("authorization", ""),),
    "other header": (("x-api-key", "mek_abc"),),
}


@pytest.mark.parametrize("rpc", sorted(RPCS))
@pytest.mark.parametrize("case", sorted(BAD_METADATA))
async def test_unauthenticated(server: Any, rpc: str, case: str) -> None:
    await server.ingest([event("a")])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await RPCS[rpc](server, BAD_METADATA[case])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info, _ = error_details(caught.value)
    assert info.reason in ("API_KEY_MISSING", "API_KEY_INVALID")
    # Nothing was written by a rejected ingest.
    assert event_ids(await search_all(server)) == ["a"]


async def test_key_of_the_right_form_but_a_revoked_tenant_is_unauthenticated(server: Any) -> None:
    # A key that differs in one character is simply another, unknown key.
    key = server.api_key[:-1] + ("A" if server.api_key[-1] != "A" else "B")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _list(server, server.metadata(key))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(caught.value)[0].reason == "API_KEY_INVALID"


async def test_bearer_scheme_is_case_insensitive(server: Any) -> None:
    md = (("authorization", f"bearer {server.api_key}"),)
    assert (await _count(server, md)).total == 0


# -- tenant isolation ---------------------------------------------------------


async def test_other_tenant_sees_nothing(server: Any) -> None:
    response = await server.ingest(events(20, campaign_id="c"))
    other = server.other_api_key
    assert await search_all(server, key=other) == []
    assert await list_all(server, key=other) == []
    q = query(cond("campaign_id", spb.OPERATOR_EXACT, "c"))
    assert await search_all(server, q, key=other) == []
    counted = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(group_by=[spb.GROUP_BY_CAMPAIGN]),
        metadata=server.metadata(other),
    )
    assert counted.total == 0 and list(counted.groups[0].buckets) == []
    for lookup in ({"id": response.results[0].id}, {"event_id": "ev-00000"}):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await server.stub.GetMessageEvent(
                spb.GetMessageEventRequest(**lookup), metadata=server.metadata(other)
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        error_details(caught.value)
    # Still all there for acme.
    assert len(await search_all(server)) == 20


async def test_same_event_id_in_two_tenants_is_two_events(server: Any) -> None:
    acme = await server.ingest([event("shared", campaign_id="acme")])
    other = await server.ingest([event("shared", campaign_id="other")], key=server.other_api_key)
    assert acme.results[0].status == spb.INGEST_STATUS_STORED
    assert other.results[0].status == spb.INGEST_STATUS_STORED
    assert acme.results[0].id != other.results[0].id
    [mine] = await search_all(server)
    [theirs] = await search_all(server, key=server.other_api_key)
    assert mine.campaign_id == "acme" and theirs.campaign_id == "other"
    # Getting the other tenant's store id by id is NOT_FOUND.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.GetMessageEvent(
            spb.GetMessageEventRequest(id=other.results[0].id), metadata=server.metadata()
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Re-ingesting in one tenant does not touch the other.
    again = await server.ingest([event("shared")], key=server.other_api_key)
    assert again.results[0].status == spb.INGEST_STATUS_DUPLICATE
    assert again.results[0].id == other.results[0].id


# -- INVALID_ARGUMENT with field violations -----------------------------------

C0 = "query.conditions[0]"
C1 = "query.conditions[1]"
EXACT, IN, GT = spb.OPERATOR_EXACT, spb.OPERATOR_IN, spb.OPERATOR_GT
DAY = spb.DATE_PART_DAY


def _q(*conditions: spb.Condition, **kw: Any) -> spb.EventQuery:
    return query(*conditions, **kw)


BAD_QUERIES: dict[str, tuple[spb.EventQuery, list[str]]] = {
    "unknown field": (_q(cond("subject", EXACT, "x")), [f"{C0}.field"]),
    "empty field": (_q(cond("", EXACT, "x")), [f"{C0}.field"]),
    "unmodelled field": (_q(cond("extra_json", EXACT, "x")), [f"{C0}.field"]),
    "unspecified operator": (
        _q(cond("campaign_id", spb.OPERATOR_UNSPECIFIED, "x")),
        [f"{C0}.operator"],
    ),
    "unknown operator": (_q(cond("campaign_id", 99, "x")), [f"{C0}.operator"]),
    "unknown field and operator": (_q(cond("nope", 0, "x")), [f"{C0}.field", f"{C0}.operator"]),
    "contains on int": (_q(cond("bulk_email_id", spb.OPERATOR_CONTAINS, "1")), [f"{C0}.operator"]),
    "iexact on int": (_q(cond("bulk_email_id", spb.OPERATOR_IEXACT, "1")), [f"{C0}.operator"]),
    "gt on enum": (_q(cond("type", GT, "bounce")), [f"{C0}.operator"]),
    "is_null on enum": (_q(cond("type", spb.OPERATOR_IS_NULL)), [f"{C0}.operator"]),
    "icontains on enum": (_q(cond("type", spb.OPERATOR_ICONTAINS, "bou")), [f"{C0}.operator"]),
    "gt on bool": (_q(cond("archived", GT, "false")), [f"{C0}.operator"]),
    "contains on tags": (_q(cond("tags", spb.OPERATOR_CONTAINS, "v")), [f"{C0}.operator"]),
    "starts_with on timestamp": (
        _q(cond("timestamp", spb.OPERATOR_STARTS_WITH, "2024")),
        [f"{C0}.operator"],
    ),
    "exact with two values": (_q(cond("campaign_id", EXACT, "a", "b")), [f"{C0}.values"]),
    "exact with no value": (_q(cond("campaign_id", EXACT)), [f"{C0}.values"]),
    "gt with no value": (_q(cond("bulk_email_id", GT)), [f"{C0}.values"]),
    "contains with two values": (
        _q(cond("reason", spb.OPERATOR_CONTAINS, "a", "b")),
        [f"{C0}.values"],
    ),
    "is_null with two values": (
        _q(cond("reason", spb.OPERATOR_IS_NULL, "true", "true")),
        [f"{C0}.values"],
    ),
    "is_null not a bool": (_q(cond("reason", spb.OPERATOR_IS_NULL, "maybe")), [f"{C0}.values[0]"]),
    "bad int": (_q(cond("bulk_email_id", EXACT, "abc")), [f"{C0}.values[0]"]),
    "float for int": (_q(cond("bulk_email_id", EXACT, "1.5")), [f"{C0}.values[0]"]),
    "int overflow": (_q(cond("bulk_email_id", EXACT, "9223372036854775808")), [f"{C0}.values[0]"]),
    "huge int": (_q(cond("bulk_email_id", EXACT, "1" * 40)), [f"{C0}.values[0]"]),
    "bad ints in IN": (
        _q(cond("bulk_email_id", IN, "1", "x", "2", "")),
        [f"{C0}.values[1]", f"{C0}.values[3]"],
    ),
    "bad bool": (_q(cond("archived", EXACT, "yes")), [f"{C0}.values[0]"]),
    "bad timestamp": (_q(cond("timestamp", GT, "yesterday")), [f"{C0}.values[0]"]),
    "timestamp without offset": (
        _q(cond("timestamp", GT, "2024-03-10T00:00:00")),
        [f"{C0}.values[0]"],
    ),
    "date for timestamp": (_q(cond("send_time", GT, "2024-03-10")), [f"{C0}.values[0]"]),
    "bad type": (_q(cond("type", EXACT, "bouncy")), [f"{C0}.values[0]"]),
    "bad type in IN": (_q(cond("type", IN, "bounce", "nope")), [f"{C0}.values[1]"]),
    "unspecified type name": (_q(cond("type", EXACT, "unspecified")), [f"{C0}.values[0]"]),
    "bad time zone": (
        _q(cond("timestamp", EXACT, "9", date_part=DAY, time_zone="Mars/Olympus")),
        [f"{C0}.time_zone"],
    ),
    "path as time zone": (
        _q(cond("timestamp", EXACT, "9", date_part=DAY, time_zone="/etc/passwd")),
        [f"{C0}.time_zone"],
    ),
    "time zone without date part": (
        _q(cond("timestamp", EXACT, "2024-03-10T00:00:00Z", time_zone="UTC")),
        [f"{C0}.time_zone"],
    ),
    "date part on text": (_q(cond("campaign_id", EXACT, "9", date_part=DAY)), [f"{C0}.date_part"]),
    "date part on int": (_q(cond("bulk_email_id", EXACT, "9", date_part=DAY)), [f"{C0}.date_part"]),
    "unknown date part": (_q(cond("timestamp", EXACT, "9", date_part=99)), [f"{C0}.date_part"]),
    "date part with contains": (
        _q(cond("timestamp", spb.OPERATOR_CONTAINS, "9", date_part=DAY)),
        [f"{C0}.operator"],
    ),
    "date part with is_null": (
        _q(cond("timestamp", spb.OPERATOR_IS_NULL, date_part=DAY)),
        [f"{C0}.operator"],
    ),
    "date part not an int": (
        _q(cond("timestamp", EXACT, "ninth", date_part=DAY)),
        [f"{C0}.values[0]"],
    ),
    "date part two values": (
        _q(cond("timestamp", EXACT, "1", "2", date_part=DAY)),
        [f"{C0}.values"],
    ),
    "start equals end": (_q(start=BASE_SECONDS, end=BASE_SECONDS), ["query.end_time"]),
    "start after end": (_q(start=BASE_SECONDS + 1, end=BASE_SECONDS), ["query.end_time"]),
    "unknown order": (spb.EventQuery(order=99), ["query.order"]),
    "several problems": (
        _q(
            cond("nope", EXACT, "x"),
            cond("bulk_email_id", EXACT, "x"),
            cond("type", GT, "bounce"),
            start=BASE_SECONDS + 1,
            end=BASE_SECONDS,
        ),
        [f"{C0}.field", f"{C1}.values[0]", "query.conditions[2].operator", "query.end_time"],
    ),
}


def _out_of_range_start() -> spb.EventQuery:
    q = spb.EventQuery()
    q.start_time.seconds = 10**13
    return q


def _bad_nanos_end() -> spb.EventQuery:
    q = spb.EventQuery()
    q.end_time.seconds = BASE_SECONDS
    q.end_time.nanos = -1
    return q


BAD_QUERIES["start out of range"] = (_out_of_range_start(), ["query.start_time"])
BAD_QUERIES["end with negative nanos"] = (_bad_nanos_end(), ["query.end_time"])


async def _query_error(server: Any, rpc: str, q: spb.EventQuery) -> grpc.aio.AioRpcError:
    md = server.metadata()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if rpc == "search":
            await search_all(server, q)
        elif rpc == "list":
            await server.stub.ListMessageEvents(spb.ListMessageEventsRequest(query=q), metadata=md)
        else:
            await server.stub.CountMessageEvents(
                spb.CountMessageEventsRequest(query=q), metadata=md
            )
    return caught.value


@pytest.mark.parametrize("rpc", ["search", "list", "count"])
@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
async def test_bad_query_is_invalid_argument(server: Any, rpc: str, case: str) -> None:
    q, expected = BAD_QUERIES[case]
    err = await _query_error(server, rpc, q)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = error_details(err)
    assert info.reason == "INVALID_QUERY"
    assert [field for field, _ in violations] == expected
    assert all(description for _, description in violations)
    # The message names the first problem.
    assert expected[0] in (err.details() or "")


async def test_violation_descriptions_say_what_is_wrong(server: Any) -> None:
    q = _q(cond("subject", EXACT, "x"), cond("bulk_email_id", spb.OPERATOR_ICONTAINS, "1"))
    err = await _query_error(server, "list", q)
    descriptions = dict(error_details(err)[1])
    assert "subject" in descriptions[f"{C0}.field"]
    assert "campaign_id" in descriptions[f"{C0}.field"]  # lists what is filterable
    assert "icontains" in descriptions[f"{C1}.operator"]
    assert "bulk_email_id" in descriptions[f"{C1}.operator"]


BAD_REQUESTS: dict[str, tuple[str, Any, list[str]]] = {
    "search batch_size": ("search", spb.SearchMessageEventsRequest(batch_size=-5), ["batch_size"]),
    "search max_events": ("search", spb.SearchMessageEventsRequest(max_events=-5), ["max_events"]),
    "search read_mask": (
        "search",
        spb.SearchMessageEventsRequest(read_mask=mask("x")),
        ["read_mask"],
    ),
    "search all at once": (
        "search",
        spb.SearchMessageEventsRequest(
            batch_size=20_000,
            max_events=-1,
            read_mask=mask("x"),
            query=_q(cond("nope", EXACT, "1")),
        ),
        ["batch_size", "max_events", "read_mask", f"{C0}.field"],
    ),
    "list page_size": ("list", spb.ListMessageEventsRequest(page_size=-1), ["page_size"]),
    "list read_mask and query": (
        "list",
        spb.ListMessageEventsRequest(read_mask=mask("x"), query=_q(start=2, end=1)),
        ["read_mask", "query.end_time"],
    ),
    "get nothing": ("get", spb.GetMessageEventRequest(), ["id"]),
    "get read_mask": ("get", spb.GetMessageEventRequest(id=1, read_mask=mask("x")), ["read_mask"]),
    "count time_zone": (
        "count",
        spb.CountMessageEventsRequest(time_zone="Nowhere/City"),
        ["time_zone"],
    ),
    "count group_by": ("count", spb.CountMessageEventsRequest(group_by=[0]), ["group_by[0]"]),
    "count max_buckets": ("count", spb.CountMessageEventsRequest(max_buckets=-1), ["max_buckets"]),
    "ingest empty": ("ingest", spb.IngestMessageEventsRequest(), ["events"]),
    "bad search token": (
        "search",
        spb.SearchMessageEventsRequest(resume_token="abc"),
        ["resume_token"],
    ),
    "bad list token": ("list", spb.ListMessageEventsRequest(page_token="abc"), ["page_token"]),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_bad_request_fields(server: Any, case: str) -> None:
    rpc, request, expected = BAD_REQUESTS[case]
    md = server.metadata()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if rpc == "search":
            [r async for r in server.stub.SearchMessageEvents(request, metadata=md)]
        elif rpc == "list":
            await server.stub.ListMessageEvents(request, metadata=md)
        elif rpc == "get":
            await server.stub.GetMessageEvent(request, metadata=md)
        elif rpc == "count":
            await server.stub.CountMessageEvents(request, metadata=md)
        else:
            await server.stub.IngestMessageEvents(request, metadata=md)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert [field for field, _ in violations] == expected


async def test_most_conditions_allowed(server: Any) -> None:
    await server.ingest([event("a", campaign_id="c", tags=["t"])])
    conditions = [cond("campaign_id", EXACT, "c") for _ in range(50)]
    conditions += [cond("tags", IN, "t", *[f"x{i}" for i in range(100)]) for _ in range(50)]
    assert event_ids(await search_all(server, query(*conditions))) == ["a"]


@pytest.mark.parametrize(
    "q",
    [
        _q(*[cond("campaign_id", EXACT, "c") for _ in range(1500)]),
        _q(*[cond("campaign_id", IN, *[f"v{i}" for i in range(10_000)]) for _ in range(30)]),
    ],
    ids=["too-many-conditions", "too-many-values-in-all"],
)
async def test_oversized_queries_are_invalid_not_internal(server: Any, q: spb.EventQuery) -> None:
    """Past what the store can compile (SQLite: expression depth 1000, 250,000
    parameters) a query is refused up front, not failed as INTERNAL."""
    for rpc in ("search", "list", "count"):
        err = await _query_error(server, rpc, q)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert [f for f, _ in error_details(err)[1]] == ["query.conditions"]


def _rich_status_size(err: grpc.aio.AioRpcError) -> int:
    return sum(len(v) for k, v in err.trailing_metadata() or () if k.endswith("-bin"))


@pytest.mark.parametrize(
    ("q", "first"),
    [
        # Values echoed in descriptions: a huge one must not blow up the status.
        (_q(cond("bulk_email_id", EXACT, "1" * 100_000)), f"{C0}.values[0]"),
        (_q(cond("type", EXACT, "💌" * 50_000)), f"{C0}.values[0]"),
        (_q(cond("nope" * 20_000, EXACT, "1")), f"{C0}.field"),
        (
            _q(cond("timestamp", EXACT, "1", date_part=DAY, time_zone="x" * 50_000)),
            f"{C0}.time_zone",
        ),
        (_q(cond("reason", spb.OPERATOR_IS_NULL, "maybe" * 20_000)), f"{C0}.values[0]"),
        # Thousands of violations in one request.
        (_q(cond("bulk_email_id", IN, *["x"] * 10_000)), f"{C0}.values[0]"),
        (_q(*[cond(f"bad{i}", EXACT, "1") for i in range(100)]), f"{C0}.field"),
    ],
    ids=[
        "long-int",
        "long-type",
        "long-field",
        "long-zone",
        "long-bool",
        "many-values",
        "many-conditions",
    ],
)
async def test_huge_invalid_requests_still_get_invalid_argument(
    server: Any, q: spb.EventQuery, first: str
) -> None:
    """A client's default metadata limit (8 KiB soft, 16 KiB hard) must not turn
    our rich INVALID_ARGUMENT into RESOURCE_EXHAUSTED: the status stays small."""
    for rpc in ("search", "list", "count"):
        err = await _query_error(server, rpc, q)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        _, violations = error_details(err)
        assert violations[0][0] == first
        assert _rich_status_size(err) < 8 * 1024
        assert len((err.details() or "").encode()) < 4 * 1024


ODD_VALUES = [
    "\x00",
    "'; DROP TABLE events; --",
    "%",
    "_",
    "\\",
    "💌",
    "a" * 100_000,
    "\ufffd",
    " ",
]


@pytest.mark.parametrize("operator", sorted(spb.Operator.values()))
@pytest.mark.parametrize(
    "field", ["campaign_id", "bulk_email_id", "archived", "timestamp", "type", "tags"]
)
async def test_no_operator_and_field_combination_breaks_the_server(
    server: Any, operator: int, field: str
) -> None:
    """Every (field, operator) with odd values: an answer or INVALID_ARGUMENT, never a crash."""
    await server.ingest([event("a", campaign_id="x", tags=["t"])])
    for values in ([], *([v] for v in ODD_VALUES), ODD_VALUES):
        q = query(cond(field, operator, *values))
        try:
            await search_all(server, q)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, operator, values, err)
            error_details(err)
    for part in spb.DatePart.values():
        q = query(cond(field, operator, "1", date_part=part, time_zone="Europe/Paris"))
        try:
            await search_all(server, q)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, operator, part, err)
            error_details(err)


async def test_odd_values_are_matched_literally(server: Any) -> None:
    odd = ["'; DROP TABLE events; --", "%", "_", "\\", "💌", "a\x00b"]
    await server.ingest([event(f"e{i}", campaign_id=v) for i, v in enumerate(odd)])
    for i, value in enumerate(odd):
        q = query(cond("campaign_id", EXACT, value))
        assert event_ids(await search_all(server, q)) == [f"e{i}"]
        q = query(cond("campaign_id", spb.OPERATOR_CONTAINS, value))
        assert f"e{i}" in event_ids(await search_all(server, q))
    assert len(await search_all(server)) == len(odd)


# -- health and reflection ----------------------------------------------------


@pytest.mark.parametrize("service", ["", "mailevents.v1.MessageEventService"])
async def test_health_check_serving_without_a_key(server: Any, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_check_unknown_service(server: Any) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_service(server: Any) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = []
    async for response in call:
        names.extend(s.name for s in response.list_services_response.service)
    assert "mailevents.v1.MessageEventService" in names
    assert "grpc.health.v1.Health" in names


async def test_reflection_describes_the_service(server: Any) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    call = stub.ServerReflectionInfo(
        iter(
            [
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="mailevents.v1.MessageEventService"
                )
            ]
        ),
        timeout=10,
    )
    [response] = [r async for r in call]
    assert response.file_descriptor_response.file_descriptor_proto


async def test_no_unknown_status_for_an_unknown_enum_in_an_event(server: Any) -> None:
    ev = event("weird")
    ev.type = 77  # not an EventType
    response = await server.ingest([ev])
    assert response.results[0].status == spb.INGEST_STATUS_REJECTED
    assert "type" in response.results[0].reason


async def test_nested_message_in_event_does_not_break_get(server: Any) -> None:
    await server.ingest([event("geo", geo_ip=pb.GeoIp(country="DE"))])
    got = await server.stub.GetMessageEvent(
        spb.GetMessageEventRequest(event_id="geo"), metadata=server.metadata()
    )
    assert got.event.geo_ip.country == "DE"
