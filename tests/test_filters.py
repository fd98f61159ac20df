"""Every filter operator on every kind of field, through the real server.

Each test stores a few events with known fields and checks exactly which of
them a condition matches, through both SearchMessageEvents and
ListMessageEvents (the two must agree) and CountMessageEvents.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import cond, event, event_ids, list_all, mask, query, search_all, seconds

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

EXACT = spb.OPERATOR_EXACT
IEXACT = spb.OPERATOR_IEXACT
IN = spb.OPERATOR_IN
CONTAINS = spb.OPERATOR_CONTAINS
ICONTAINS = spb.OPERATOR_ICONTAINS
STARTS = spb.OPERATOR_STARTS_WITH
ISTARTS = spb.OPERATOR_ISTARTS_WITH
ENDS = spb.OPERATOR_ENDS_WITH
IENDS = spb.OPERATOR_IENDS_WITH
IS_NULL = spb.OPERATOR_IS_NULL
GT, GTE, LT, LTE = spb.OPERATOR_GT, spb.OPERATOR_GTE, spb.OPERATOR_LT, spb.OPERATOR_LTE


async def matching(server: Any, *conditions: spb.Condition, **bounds: Any) -> set[str]:
    """The event_ids matching the conditions; search, list and count must agree."""
    q = query(*conditions, **bounds)
    streamed = event_ids(await search_all(server, q, read_mask=mask("event_id")))
    listed = event_ids(await list_all(server, q, page_size=2))
    assert streamed == listed
    assert len(set(streamed)) == len(streamed)
    counted = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(query=q), metadata=server.metadata()
    )
    assert counted.total == len(streamed)
    return set(streamed)


async def store(server: Any, *evs: pb.MessageEvent) -> None:
    response = await server.ingest(list(evs))
    assert response.stored == len(evs), response


# -- text ---------------------------------------------------------------------

TEXT_EVENTS = {
    "upper": "Spring Sale",
    "lower": "spring sale",
    "percent": "50% off",
    "fifty": "5000 off",
    "under": "a_b",
    "nounder": "axb",
    "ecole_upper": "ÉCOLE Paris",
    "ecole_lower": "école paris",
    "empty": "",
}


@pytest.fixture
async def text_server(server: Any) -> Any:
    await store(
        server,
        *(event(k, campaign_id=v) for k, v in TEXT_EVENTS.items()),
        event("absent"),
    )
    return server


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        (EXACT, "Spring Sale", {"upper"}),
        (EXACT, "spring sale", {"lower"}),
        (EXACT, "Spring", set()),
        (EXACT, "", {"empty"}),
        (IEXACT, "SPRING SALE", {"upper", "lower"}),
        (IEXACT, "école paris", {"ecole_upper", "ecole_lower"}),
        (IEXACT, "ÉCOLE PARIS", {"ecole_upper", "ecole_lower"}),
        # case-sensitive contains, case-insensitive icontains
        (CONTAINS, "Sale", {"upper"}),
        (CONTAINS, "sale", {"lower"}),
        (ICONTAINS, "SALE", {"upper", "lower"}),
        (CONTAINS, "ÉCOLE", {"ecole_upper"}),
        (ICONTAINS, "ÉCOLE", {"ecole_upper", "ecole_lower"}),
        (ICONTAINS, "éCoLe", {"ecole_upper", "ecole_lower"}),
        # % and _ are literal characters, never wildcards
        (CONTAINS, "0%", {"percent"}),
        (CONTAINS, "%", {"percent"}),
        (ICONTAINS, "%", {"percent"}),
        (CONTAINS, "_", {"under"}),
        (STARTS, "a_", {"under"}),
        (ISTARTS, "A_", {"under"}),
        (ENDS, "_b", {"under"}),
        (STARTS, "5%", set()),
        (STARTS, "50%", {"percent"}),
        (ENDS, "% off", {"percent"}),
        (IENDS, "% OFF", {"percent"}),
        (STARTS, "Spring", {"upper"}),
        (ISTARTS, "SPRING", {"upper", "lower"}),
        (STARTS, "spring s", {"lower"}),
        (ISTARTS, "éco", {"ecole_upper", "ecole_lower"}),
        (ENDS, "Sale", {"upper"}),
        (IENDS, "SALE", {"upper", "lower"}),
        (IENDS, "PARIS", {"ecole_upper", "ecole_lower"}),
        (ENDS, "Paris", {"ecole_upper"}),
        # a needle longer than the value matches nothing
        (ENDS, "a much longer text than any 50% off", set()),
        (STARTS, "Spring Sale and more", set()),
        # lexicographic comparisons
        (GT, "s", {"lower", "ecole_upper", "ecole_lower"}),
        (LT, "5001", {"percent", "fifty", "empty"}),
        (LTE, "5000 off", {"percent", "fifty", "empty"}),
        (GTE, "axb", {"nounder", "lower", "ecole_upper", "ecole_lower"}),
    ],
)
async def test_text_operators(
    text_server: Any, operator: int, value: str, expected: set[str]
) -> None:
    assert await matching(text_server, cond("campaign_id", operator, value)) == expected


async def test_text_in(text_server: Any) -> None:
    found = await matching(text_server, cond("campaign_id", IN, "a_b", "axb", "nope"))
    assert found == {"under", "nounder"}


async def test_text_in_is_case_sensitive(text_server: Any) -> None:
    assert await matching(text_server, cond("campaign_id", IN, "SPRING SALE")) == set()


async def test_empty_in_matches_nothing(text_server: Any) -> None:
    assert await matching(text_server, cond("campaign_id", IN)) == set()


async def test_is_null_tells_absent_from_empty(text_server: Any) -> None:
    assert await matching(text_server, cond("campaign_id", IS_NULL)) == {"absent"}
    assert await matching(text_server, cond("campaign_id", IS_NULL, "true")) == {"absent"}
    assert await matching(text_server, cond("campaign_id", IS_NULL, "TRUE")) == {"absent"}
    assert await matching(text_server, cond("campaign_id", IS_NULL, "false")) == set(TEXT_EVENTS)


async def test_empty_string_is_a_value_not_null(text_server: Any) -> None:
    # An explicitly empty campaign_id is stored as "" and comes back as set.
    [empty] = [ev for ev in await search_all(text_server) if ev.event_id == "empty"]
    assert empty.HasField("campaign_id") and empty.campaign_id == ""
    [absent] = [ev for ev in await search_all(text_server) if ev.event_id == "absent"]
    assert not absent.HasField("campaign_id")


async def test_recipient_domain_is_derived_lowercased(server: Any) -> None:
    await store(
        server,
        event("a", recipient="Alice@Example.COM"),
        event("b", recipient="bob@example.org"),
        event("c", recipient="not-an-address"),
        event("d"),
    )
    assert await matching(server, cond("recipient_domain", EXACT, "example.com")) == {"a"}
    assert await matching(server, cond("recipient_domain", IS_NULL)) == {"c", "d"}
    assert await matching(server, cond("recipient", IEXACT, "alice@example.com")) == {"a"}
    assert await matching(server, cond("recipient", ENDS, "@example.org")) == {"b"}


# -- int ----------------------------------------------------------------------


@pytest.fixture
async def int_server(server: Any) -> Any:
    await store(
        server,
        event("neg", bulk_email_id=-5),
        event("zero", bulk_email_id=0),
        event("ten", bulk_email_id=10),
        event("big", bulk_email_id=2**62),
        event("none"),
    )
    return server


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        (EXACT, ["10"], {"ten"}),
        (EXACT, [" 10 "], {"ten"}),
        (EXACT, ["+10"], {"ten"}),
        (EXACT, ["0"], {"zero"}),
        (EXACT, ["-5"], {"neg"}),
        (EXACT, [str(2**62)], {"big"}),
        (IN, ["-5", "10", "11"], {"neg", "ten"}),
        (IN, [], set()),
        (GT, ["0"], {"ten", "big"}),
        (GTE, ["0"], {"zero", "ten", "big"}),
        (LT, ["10"], {"neg", "zero"}),
        (LTE, ["10"], {"neg", "zero", "ten"}),
        (IS_NULL, [], {"none"}),
        (IS_NULL, ["false"], {"neg", "zero", "ten", "big"}),
    ],
)
async def test_int_operators(
    int_server: Any, operator: int, values: list[str], expected: set[str]
) -> None:
    assert await matching(int_server, cond("bulk_email_id", operator, *values)) == expected


async def test_int_compares_numerically_not_as_text(server: Any) -> None:
    await store(server, event("nine", msg_size=9), event("hundred", msg_size=100))
    assert await matching(server, cond("msg_size", GT, "10")) == {"hundred"}


async def test_id_is_filterable(server: Any) -> None:
    response = await server.ingest([event("a"), event("b"), event("c")])
    ids = {r.event_id: r.id for r in response.results}
    assert await matching(server, cond("id", EXACT, str(ids["b"]))) == {"b"}
    assert await matching(server, cond("id", GT, str(ids["a"]))) == {"b", "c"}


# -- bool ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        (EXACT, ["true"], {"yes"}),
        (EXACT, ["TRUE"], {"yes"}),
        (EXACT, ["1"], {"yes"}),
        (EXACT, ["false"], {"no", "default"}),
        (EXACT, ["0"], {"no", "default"}),
        (IN, ["true", "false"], {"yes", "no", "default"}),
        (IN, [], set()),
        # archived is a plain bool: never absent
        (IS_NULL, ["true"], set()),
        (IS_NULL, ["false"], {"yes", "no", "default"}),
    ],
)
async def test_bool_operators(
    server: Any, operator: int, values: list[str], expected: set[str]
) -> None:
    await store(server, event("yes", archived=True), event("no", archived=False), event("default"))
    assert await matching(server, cond("archived", operator, *values)) == expected


# -- timestamp ----------------------------------------------------------------

T = seconds("2024-03-10T12:00:00Z")


@pytest.fixture
async def time_server(server: Any) -> Any:
    await store(
        server,
        event("before", ts=T - 1, send_time=T - 100),
        event("at", ts=T),
        event("after", ts=T + 1, send_time=T + 100),
    )
    return server


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        (EXACT, ["2024-03-10T12:00:00Z"], {"at"}),
        (EXACT, ["2024-03-10T14:00:00+02:00"], {"at"}),
        (EXACT, ["2024-03-10T07:00:00-05:00"], {"at"}),
        (EXACT, ["2024-03-10T12:00:00.000000Z"], {"at"}),
        (IN, ["2024-03-10T11:59:59Z", "2024-03-10T12:00:01Z"], {"before", "after"}),
        (IN, [], set()),
        (GT, ["2024-03-10T12:00:00Z"], {"after"}),
        (GTE, ["2024-03-10T12:00:00Z"], {"at", "after"}),
        (LT, ["2024-03-10T12:00:00Z"], {"before"}),
        (LTE, ["2024-03-10T12:00:00Z"], {"before", "at"}),
        (LT, ["2024-03-10T11:59:59.500Z"], {"before"}),
    ],
)
async def test_timestamp_operators(
    time_server: Any, operator: int, values: list[str], expected: set[str]
) -> None:
    assert await matching(time_server, cond("timestamp", operator, *values)) == expected


async def test_optional_timestamp_is_null(time_server: Any) -> None:
    assert await matching(time_server, cond("send_time", IS_NULL)) == {"at"}
    assert await matching(time_server, cond("send_time", IS_NULL, "false")) == {"before", "after"}
    found = await matching(time_server, cond("send_time", GT, "2024-03-10T12:00:00Z"))
    assert found == {"after"}


# -- time range ---------------------------------------------------------------


async def test_time_range_start_inclusive_end_exclusive(time_server: Any) -> None:
    assert await matching(time_server, start=T - 1, end=T + 1) == {"before", "at"}
    assert await matching(time_server, start=T) == {"at", "after"}
    assert await matching(time_server, end=T) == {"before"}
    assert await matching(time_server, start=T, end=T + 1) == {"at"}


async def test_time_range_with_sub_second_bounds(time_server: Any) -> None:
    q = query()
    q.start_time.FromNanoseconds(T * 10**9 - 1000)  # one microsecond before "at"
    q.end_time.FromNanoseconds(T * 10**9 + 1000)
    assert event_ids(await search_all(time_server, q)) == ["at"]


# -- enum: type ---------------------------------------------------------------


@pytest.fixture
async def type_server(server: Any) -> Any:
    await store(
        server,
        event("bounce", type=pb.EVENT_TYPE_BOUNCE),
        event("delivery", type=pb.EVENT_TYPE_DELIVERY),
        event("open", type=pb.EVENT_TYPE_OPEN),
        event("named", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="bounce"),
        event("unknown", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="amp_open"),
    )
    return server


@pytest.mark.parametrize(
    "name", ["bounce", "BOUNCE", "EVENT_TYPE_BOUNCE", "event_type_bounce", " bounce "]
)
async def test_type_by_any_spelling(type_server: Any, name: str) -> None:
    # "named" was ingested with only type_name "bounce": it is a bounce too.
    assert await matching(type_server, cond("type", EXACT, name)) == {"bounce", "named"}


async def test_type_in(type_server: Any) -> None:
    found = await matching(type_server, cond("type", IN, "open", "EVENT_TYPE_DELIVERY"))
    assert found == {"open", "delivery"}
    assert await matching(type_server, cond("type", IN)) == set()


async def test_unknown_type_matched_by_type_name(type_server: Any) -> None:
    assert await matching(type_server, cond("type_name", EXACT, "amp_open")) == {"unknown"}
    found = await matching(type_server, cond("type_name", STARTS, "amp_"))
    assert found == {"unknown"}


# -- tags ---------------------------------------------------------------------


@pytest.fixture
async def tag_server(server: Any) -> Any:
    await store(
        server,
        event("vip_eu", tags=["vip", "eu"]),
        event("eu", tags=["eu"]),
        event("vipx", tags=["vipx", "a%b"]),
        event("none"),
    )
    return server


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        (EXACT, ["vip"], {"vip_eu"}),  # whole tags only: "vipx" is another tag
        (EXACT, ["eu"], {"vip_eu", "eu"}),
        (EXACT, ["vi"], set()),
        (EXACT, ["VIP"], set()),
        (EXACT, ["a%b"], {"vipx"}),
        (EXACT, ["a_b"], set()),
        (IN, ["vip", "vipx"], {"vip_eu", "vipx"}),
        (IN, ["nope"], set()),
        (IN, [], set()),
        (IS_NULL, [], {"none"}),
        (IS_NULL, ["false"], {"vip_eu", "eu", "vipx"}),
    ],
)
async def test_tag_operators(
    tag_server: Any, operator: int, values: list[str], expected: set[str]
) -> None:
    assert await matching(tag_server, cond("tags", operator, *values)) == expected


async def test_tag_in_with_the_most_values_allowed(tag_server: Any) -> None:
    many = [f"tag{i}" for i in range(9_998)]
    found = await matching(tag_server, cond("tags", IN, *many, "vipx", "eu"))
    assert found == {"vip_eu", "eu", "vipx"}


async def test_tags_round_trip_in_order(tag_server: Any) -> None:
    [ev] = [e for e in await search_all(tag_server) if e.event_id == "vip_eu"]
    assert list(ev.tags) == ["vip", "eu"]


# -- date parts ---------------------------------------------------------------

Y, MO, D, WD = spb.DATE_PART_YEAR, spb.DATE_PART_MONTH, spb.DATE_PART_DAY, spb.DATE_PART_WEEK_DAY
H, MI, S = spb.DATE_PART_HOUR, spb.DATE_PART_MINUTE, spb.DATE_PART_SECOND


@pytest.fixture
async def part_server(server: Any) -> Any:
    await store(
        server,
        # Sunday in UTC; Saturday 2024-03-09 21:30:45 EST in New York (DST
        # starts at 07:00Z that day); Sunday 08:00:45 IST in Kolkata (+05:30).
        event("sun", ts="2024-03-10T02:30:45Z"),
        # New Year in UTC, still 2023-12-31 19:15:05 in New York.
        event("newyear", ts="2024-01-01T00:15:05Z"),
        # Wednesday in UTC, Thursday 2024-07-04 05:59:59 in Tokyo (+09:00).
        event("july", ts="2024-07-03T20:59:59Z"),
    )
    return server


@pytest.mark.parametrize(
    ("part", "zone", "operator", "values", "expected"),
    [
        (Y, "", EXACT, ["2024"], {"sun", "newyear", "july"}),
        (Y, "America/New_York", EXACT, ["2023"], {"newyear"}),
        (Y, "America/New_York", EXACT, ["2024"], {"sun", "july"}),
        (MO, "UTC", EXACT, ["1"], {"newyear"}),
        (MO, "America/New_York", EXACT, ["12"], {"newyear"}),
        (MO, "", IN, ["3", "7"], {"sun", "july"}),
        (D, "", EXACT, ["10"], {"sun"}),
        (D, "America/New_York", EXACT, ["9"], {"sun"}),
        (D, "America/New_York", EXACT, ["10"], set()),
        (D, "America/New_York", EXACT, ["31"], {"newyear"}),
        (D, "Asia/Tokyo", EXACT, ["4"], {"july"}),
        (D, "", EXACT, ["3"], {"july"}),
        # week_day: 1 = Sunday .. 7 = Saturday
        (WD, "", EXACT, ["1"], {"sun"}),
        (WD, "America/New_York", EXACT, ["7"], {"sun"}),
        (WD, "", EXACT, ["2"], {"newyear"}),  # 2024-01-01 is a Monday
        (WD, "America/New_York", EXACT, ["1"], {"newyear"}),  # 2023-12-31 is a Sunday
        (WD, "", EXACT, ["4"], {"july"}),  # Wednesday
        (WD, "Asia/Tokyo", EXACT, ["5"], {"july"}),  # Thursday
        (WD, "", IN, ["1", "7"], {"sun"}),
        (H, "", EXACT, ["2"], {"sun"}),
        (H, "America/New_York", EXACT, ["21"], {"sun"}),
        (H, "America/New_York", GTE, ["19"], {"sun", "newyear"}),
        (H, "", LT, ["3"], {"sun", "newyear"}),
        (H, "Asia/Kolkata", EXACT, ["8"], {"sun"}),
        (MI, "", EXACT, ["30"], {"sun"}),
        (MI, "Asia/Kolkata", EXACT, ["0"], {"sun"}),  # +05:30 shifts minutes
        (MI, "", GT, ["15"], {"sun", "july"}),
        (MI, "", LTE, ["15"], {"newyear"}),
        (S, "", EXACT, ["45"], {"sun"}),
        (S, "", IN, ["5", "59"], {"newyear", "july"}),
        (S, "America/New_York", EXACT, ["45"], {"sun"}),
        (S, "", IN, [], set()),
    ],
)
async def test_date_parts(
    part_server: Any, part: int, zone: str, operator: int, values: list[str], expected: set[str]
) -> None:
    condition = cond("timestamp", operator, *values, date_part=part, time_zone=zone)
    assert await matching(part_server, condition) == expected


async def test_date_part_on_optional_timestamp_skips_absent(server: Any) -> None:
    await store(
        server,
        event("sent", send_time="2024-03-10T02:30:00Z"),
        event("unsent"),
    )
    found = await matching(
        server, cond("send_time", EXACT, "9", date_part=D, time_zone="America/New_York")
    )
    assert found == {"sent"}
    assert await matching(server, cond("send_time", LT, "100", date_part=D)) == {"sent"}


# -- combining ----------------------------------------------------------------


async def test_conditions_are_anded(server: Any) -> None:
    await store(
        server,
        event("a", ts=T, type=pb.EVENT_TYPE_BOUNCE, campaign_id="x"),
        event("b", ts=T, type=pb.EVENT_TYPE_BOUNCE, campaign_id="y"),
        event("c", ts=T, type=pb.EVENT_TYPE_DELIVERY, campaign_id="x"),
        event("d", ts=T + 10, type=pb.EVENT_TYPE_BOUNCE, campaign_id="x"),
    )
    bounce = cond("type", EXACT, "bounce")
    x = cond("campaign_id", EXACT, "x")
    assert await matching(server, bounce) == {"a", "b", "d"}
    assert await matching(server, x) == {"a", "c", "d"}
    assert await matching(server, bounce, x) == {"a", "d"}
    assert await matching(server, bounce, x, end=T + 10) == {"a"}
    assert await matching(server, bounce, x, cond("campaign_id", EXACT, "y")) == set()
    # Two conditions on one field: both must hold.
    assert await matching(
        server,
        cond("timestamp", GTE, "2024-03-10T12:00:00Z"),
        cond("timestamp", LT, "2024-03-10T12:00:05Z"),
    ) == {"a", "b", "c"}
