"""The client's pure query helpers: durations, times, conditions and queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailevents.query import (
    conditions_in,
    group_by_value,
    order_value,
    parse_duration,
    parse_time,
    parse_where,
    query,
    where,
)
from mailevents.v1 import message_event_service_pb2 as pb

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 2H ", timedelta(hours=2)),
        ("0s", timedelta()),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-2h", "1.5h", "2h foo", "h2", "1mo"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("now", NOW),
        ("2024-04-30T10:00:00Z", datetime(2024, 4, 30, 10, tzinfo=UTC)),
        ("2024-04-30t10:00:00z", datetime(2024, 4, 30, 10, tzinfo=UTC)),
        ("2024-04-30T12:00:00+02:00", datetime(2024, 4, 30, 10, tzinfo=UTC)),
        ("2024-04-30T10:00:00.250Z", datetime(2024, 4, 30, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2024-04-30", datetime(2024, 4, 30, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_time_defaults_to_the_current_time() -> None:
    before = datetime.now(UTC)
    parsed = parse_time("1h")
    assert before - timedelta(hours=1, seconds=5) < parsed <= datetime.now(UTC) - timedelta(hours=1)


def test_parse_time_refuses_a_time_of_day_without_offset() -> None:
    with pytest.raises(ValueError, match="needs an offset"):
        parse_time("2024-04-30T10:00:00")


@pytest.mark.parametrize("text", ["", "yesterday", "2h ago", "2024-13-01T00:00:00Z"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_time(text, now=NOW)


@pytest.mark.parametrize("operator", ["icontains", "ICONTAINS", "OPERATOR_ICONTAINS"])
def test_where_accepts_operator_names(operator: str) -> None:
    condition = where("reason", operator, "mailbox")
    assert condition == pb.Condition(
        field="reason", operator=pb.OPERATOR_ICONTAINS, values=["mailbox"]
    )


def test_where_accepts_operator_enum_and_symbols() -> None:
    assert where("msg_size", pb.OPERATOR_GT, 10).operator == pb.OPERATOR_GT
    assert where("msg_size", ">=", 10).operator == pb.OPERATOR_GTE
    assert where("campaign_id", "=", "x").operator == pb.OPERATOR_EXACT


def test_where_renders_values_as_the_server_parses_them() -> None:
    assert where("archived", "exact", True).values == ["true"]
    assert where("bulk_email_id", "in", 1, 2).values == ["1", "2"]
    moment = datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert where("timestamp", "gte", moment).values == ["2024-05-01T12:00:00Z"]


def test_where_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        where("timestamp", "gte", datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("reason", "contains"), "exactly one value"),
        (("reason", "exact", "a", "b"), "exactly one value"),
        (("recipient", "is_null", "maybe"), "is_null takes"),
        (("recipient", "is_null", "true", "false"), "is_null takes"),
        (("reason", "like", "x"), "unknown operator 'like'"),
        (("reason", "unspecified", "x"), "must not be unspecified"),
        (("reason", 99, "x"), "unknown operator"),
        (("", "exact", "x"), "invalid field name"),
        (("type=bounce", "exact", "x"), "invalid field name"),
    ],
)
def test_where_rejects(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        where(*args)


def test_where_in_and_is_null_value_counts() -> None:
    assert list(where("type", "in").values) == []
    assert list(where("recipient", "is_null").values) == []
    assert where("recipient", "is_null", "False").values == ["false"]
    assert where("recipient", "is_null", False).values == ["false"]


def test_where_date_part() -> None:
    condition = where("timestamp", "gte", 9, date_part="hour", time_zone="Europe/Amsterdam")
    assert condition.date_part == pb.DATE_PART_HOUR
    assert condition.time_zone == "Europe/Amsterdam"
    with pytest.raises(ValueError, match="unknown date part"):
        where("timestamp", "exact", 1, date_part="fortnight")
    with pytest.raises(ValueError, match="time zone only applies"):
        where("timestamp", "gte", "2024-05-01T00:00:00Z", time_zone="UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "reason icontains mailbox full",
            pb.Condition(field="reason", operator=pb.OPERATOR_ICONTAINS, values=["mailbox full"]),
        ),
        (
            "reason exact 5.1.1, user unknown",
            pb.Condition(
                field="reason", operator=pb.OPERATOR_EXACT, values=["5.1.1, user unknown"]
            ),
        ),
        (
            "bulk_email_id in 1, 2,3",
            pb.Condition(field="bulk_email_id", operator=pb.OPERATOR_IN, values=["1", "2", "3"]),
        ),
        ("recipient is_null", pb.Condition(field="recipient", operator=pb.OPERATOR_IS_NULL)),
        (
            "recipient is_null false",
            pb.Condition(field="recipient", operator=pb.OPERATOR_IS_NULL, values=["false"]),
        ),
        (
            "msg_size > 1000",
            pb.Condition(field="msg_size", operator=pb.OPERATOR_GT, values=["1000"]),
        ),
    ],
)
def test_parse_where(text: str, expected: pb.Condition) -> None:
    assert parse_where(text) == expected


def test_parse_where_date_part_takes_the_time_zone() -> None:
    condition = parse_where("timestamp:week_day in 1,7", time_zone="America/New_York")
    assert condition == pb.Condition(
        field="timestamp",
        operator=pb.OPERATOR_IN,
        values=["1", "7"],
        date_part=pb.DATE_PART_WEEK_DAY,
        time_zone="America/New_York",
    )
    # Without a date part the time zone is not sent: it would mean nothing.
    assert parse_where("reason exact x", time_zone="UTC").time_zone == ""


@pytest.mark.parametrize("text", ["", "reason", "reason like x", "reason contains"])
def test_parse_where_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_where(text)


def test_query() -> None:
    condition = where("type", "exact", "bounce")
    built = query(
        condition,
        since="2024-05-01T00:00:00Z",
        until=datetime(2024, 5, 2, tzinfo=UTC),
        order="asc",
    )
    assert list(built.conditions) == [condition]
    assert built.start_time.ToDatetime(UTC) == datetime(2024, 5, 1, tzinfo=UTC)
    assert built.end_time.ToDatetime(UTC) == datetime(2024, 5, 2, tzinfo=UTC)
    assert built.order == pb.ORDER_TIMESTAMP_ASC


def test_query_defaults() -> None:
    built = query()
    assert not built.HasField("start_time")
    assert not built.HasField("end_time")
    assert built.order == pb.ORDER_TIMESTAMP_DESC


def test_query_relative_bounds_share_one_now() -> None:
    built = query(since="2h", until="1h")
    assert built.end_time.ToDatetime() - built.start_time.ToDatetime() == timedelta(hours=1)


def test_query_rejects_an_empty_window_and_bad_order() -> None:
    with pytest.raises(ValueError, match="must be before"):
        query(since="1h", until="2h")
    with pytest.raises(ValueError, match="unknown order"):
        query(order="sideways")
    with pytest.raises(ValueError, match="no time zone"):
        query(since=datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("type", pb.GROUP_BY_TYPE),
        ("campaign", pb.GROUP_BY_CAMPAIGN),
        ("campaign_id", pb.GROUP_BY_CAMPAIGN),
        ("domain", pb.GROUP_BY_RECIPIENT_DOMAIN),
        ("recipient_domain", pb.GROUP_BY_RECIPIENT_DOMAIN),
        ("HOUR", pb.GROUP_BY_HOUR),
        ("day", pb.GROUP_BY_DAY),
    ],
)
def test_group_by_value(name: str, expected: int) -> None:
    assert group_by_value(name) == expected


def test_order_and_group_by_reject_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown group_by 'week'"):
        group_by_value("week")
    assert order_value("DESC") == pb.ORDER_TIMESTAMP_DESC


def test_conditions_in() -> None:
    assert conditions_in("type", []) is None
    assert conditions_in("type", ["bounce", "bounce"]) == where("type", "exact", "bounce")
    assert conditions_in("type", ["bounce", "", "delay"]) == where("type", "in", "bounce", "delay")
