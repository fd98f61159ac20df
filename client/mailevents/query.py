"""Build `EventQuery` messages from short, readable Python (and from CLI text).

The server is the authority on which fields exist and which operators each
field allows; this module only catches what can be known without it (an
operator name that does not exist, a wrong number of values, a time that does
not parse), so that typos fail before a round trip, with a message that says
what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import cast

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from mailevents.v1 import message_event_service_pb2 as pb

__all__ = [
    "Value",
    "conditions_in",
    "date_part_value",
    "group_by_value",
    "operator_value",
    "order_value",
    "parse_duration",
    "parse_time",
    "parse_where",
    "query",
    "where",
]

#: What a condition value may be given as; it is sent as text.
Value = str | int | bool | datetime

# Shorthands people type out of habit; each maps to an operator name.
_OPERATOR_SYMBOLS = {"=": "exact", "==": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}

# Operators that compare with exactly one value. IN takes any number (none
# matches nothing) and IS_NULL takes an optional "true"/"false".
_SINGLE_VALUE = frozenset(
    {
        pb.OPERATOR_EXACT,
        pb.OPERATOR_IEXACT,
        pb.OPERATOR_CONTAINS,
        pb.OPERATOR_ICONTAINS,
        pb.OPERATOR_STARTS_WITH,
        pb.OPERATOR_ISTARTS_WITH,
        pb.OPERATOR_ENDS_WITH,
        pb.OPERATOR_IENDS_WITH,
        pb.OPERATOR_GT,
        pb.OPERATOR_GTE,
        pb.OPERATOR_LT,
        pb.OPERATOR_LTE,
    }
)

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_GROUP_BY_ALIASES = {"campaign_id": "campaign", "domain": "recipient_domain"}


def _enum_value(enum: EnumTypeWrapper, prefix: str, value: str | int, what: str) -> int:
    """Resolve "icontains", "ICONTAINS", "OPERATOR_ICONTAINS" or a number to an enum value.

    The short lowercase name is what people write; the full name is accepted
    because it is what the generated code and the proto show.
    """
    if isinstance(value, int):
        if value not in enum.values() or value == 0:
            raise ValueError(f"unknown {what}: {value}")
        return value
    key = value.strip().upper()
    if not key.startswith(prefix):
        key = prefix + key
    try:
        number: int = enum.Value(key)
    except ValueError:
        choices = ", ".join(n[len(prefix) :].lower() for n in enum.keys() if n != enum.Name(0))
        raise ValueError(f"unknown {what} {value!r} (expected one of: {choices})") from None
    if number == 0:
        raise ValueError(f"{what} must not be unspecified")
    return number


# The generated .pyi types enum fields as their wrapper class while values are
# plain ints at runtime; the casts below are where the two meet.


def operator_value(operator: str | int) -> pb.Operator:
    """The `Operator` for a name such as "icontains", a symbol such as ">=", or an enum value."""
    if isinstance(operator, str):
        operator = _OPERATOR_SYMBOLS.get(operator.strip(), operator)
    return cast("pb.Operator", _enum_value(pb.Operator, "OPERATOR_", operator, "operator"))


def date_part_value(date_part: str | int) -> pb.DatePart:
    """The `DatePart` for "hour", "week_day", ... or an enum value."""
    return cast("pb.DatePart", _enum_value(pb.DatePart, "DATE_PART_", date_part, "date part"))


def order_value(order: str | int) -> pb.Order:
    """The `Order` for "desc"/"asc" (newest or oldest first) or an enum value."""
    if isinstance(order, str) and order.strip().lower() in ("asc", "desc"):
        order = "timestamp_" + order.strip().lower()
    return cast("pb.Order", _enum_value(pb.Order, "ORDER_", order, "order"))


def group_by_value(group_by: str | int) -> pb.GroupBy:
    """The `GroupBy` for "type", "campaign", "domain", "hour", "day" or an enum value."""
    if isinstance(group_by, str):
        key = group_by.strip().lower()
        group_by = _GROUP_BY_ALIASES.get(key, key)
    return cast("pb.GroupBy", _enum_value(pb.GroupBy, "GROUP_BY_", group_by, "group_by"))


def _text(value: Value) -> str:
    """Render a value the way the server parses it for the field's type."""
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _rfc3339(value)
    return str(value)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        # A naive time would silently mean "whatever zone this machine is in".
        raise ValueError(f"time {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def where(
    field: str,
    operator: str | int,
    *values: Value,
    date_part: str | int | None = None,
    time_zone: str = "",
) -> pb.Condition:
    """One condition: `field operator values`, e.g. `where("reason", "icontains", "mailbox")`.

    Raises ValueError for an unknown operator or date part, or a number of
    values the operator cannot take. Whether the field exists and allows the
    operator is the server's to say (INVALID_ARGUMENT with a field violation).
    """
    field = field.strip()
    if not _FIELD_NAME.match(field):
        raise ValueError(f"invalid field name {field!r}")
    op = operator_value(operator)
    texts = [_text(v) for v in values]
    op_name = pb.Operator.Name(op)[len("OPERATOR_") :].lower()
    if op in _SINGLE_VALUE and len(texts) != 1:
        raise ValueError(f"{field} {op_name} takes exactly one value, got {len(texts)}")
    if op == pb.OPERATOR_IS_NULL:
        texts = [t.strip().lower() for t in texts]
        if len(texts) > 1 or (texts and texts[0] not in ("true", "false")):
            raise ValueError(f"{field} is_null takes no value, or one of true/false")
    part = pb.DATE_PART_UNSPECIFIED if date_part is None else date_part_value(date_part)
    if time_zone and not part:
        raise ValueError(f"{field}: a time zone only applies together with a date part")
    return pb.Condition(field=field, operator=op, values=texts, date_part=part, time_zone=time_zone)


def parse_where(text: str, *, time_zone: str = "") -> pb.Condition:
    """A condition from CLI text: "FIELD[:PART] OPERATOR [VALUE]".

    Examples: "reason icontains mailbox full", "bulk_email_id in 1,2",
    "recipient is_null", "timestamp:hour gte 9". Only `in` splits its value on
    commas; every other operator takes the rest of the text as one value, so
    values may contain spaces and commas. `time_zone` applies to a date part.
    """
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise ValueError(f"expected 'FIELD OPERATOR [VALUE]', got {text!r}")
    field, _, part = parts[0].partition(":")
    op = operator_value(parts[1])
    rest = parts[2] if len(parts) > 2 else ""
    if op == pb.OPERATOR_IN:
        values = [v.strip() for v in rest.split(",") if v.strip()]
    else:
        values = [rest] if rest else []
    return where(
        field,
        op,
        *values,
        date_part=part or None,
        time_zone=time_zone if part else "",
    )


def query(
    *conditions: pb.Condition,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    order: str | int = "desc",
) -> pb.EventQuery:
    """An `EventQuery` matching all `conditions`, in `[since, until)`, newest first by default.

    `since` and `until` take a datetime with a time zone, or text for
    `parse_time` ("2h" means two hours ago, or an RFC 3339 time).
    """
    now = datetime.now(UTC)  # one "now" for both, so "2h" .. "1h" is exactly an hour
    start = _moment(since, "since", now)
    end = _moment(until, "until", now)
    if start is not None and end is not None and start >= end:
        raise ValueError(f"since ({_rfc3339(start)}) must be before until ({_rfc3339(end)})")
    return pb.EventQuery(
        conditions=conditions, start_time=start, end_time=end, order=order_value(order)
    )


def _moment(value: datetime | str | None, what: str, now: datetime) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_time(value, now=now)
    if value.tzinfo is None:
        raise ValueError(f"{what}: time {value.isoformat()} has no time zone")
    return value


def parse_duration(text: str) -> timedelta:
    """A duration such as "45s", "30m", "2h", "7d", "1w" or "1h30m".

    Units are s, m, h, d (24 hours) and w; months and years are left out
    because their length depends on the calendar.
    """
    compact = text.strip().lower().replace(" ", "")
    pos, total = 0, timedelta()
    for match in _DURATION_PART.finditer(compact):
        if match.start() != pos:
            break
        total += timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
        pos = match.end()
    if not compact or pos != len(compact):
        raise ValueError(f"invalid duration {text!r} (expected e.g. 45s, 30m, 2h, 7d, 1h30m)")
    return total


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: a duration ago ("2h"), "now", or RFC 3339 ("2024-05-01T12:00:00Z").

    A bare date ("2024-05-01") means its midnight in UTC. A date and time
    without an offset is refused rather than guessed. The result is in UTC.
    """
    current = now if now is not None else datetime.now(UTC)
    stripped = text.strip()
    if stripped.lower() == "now":
        return current.astimezone(UTC)
    if stripped[:1].isdigit() and stripped[-1:].lower() in _DURATION_UNITS:
        try:
            return (current - parse_duration(stripped)).astimezone(UTC)
        except ValueError:
            pass  # not a duration; it may still be a time
    try:
        moment = datetime.fromisoformat(stripped.upper())
    except ValueError:
        raise ValueError(
            f"invalid time {text!r} (expected a duration ago such as 2h or 7d, "
            "or RFC 3339 such as 2024-05-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        if len(stripped) > 10:  # it has a time of day but no offset
            raise ValueError(f"time {text!r} needs an offset, e.g. {stripped}Z")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def conditions_in(field: str, values: Iterable[str]) -> pb.Condition | None:
    """`field exact v` for one value, `field in v1,v2,...` for several, None for none.

    The CLI's repeatable filter flags (--type, --campaign, ...) go through here.
    """
    unique = list(dict.fromkeys(v for v in values if v))
    if not unique:
        return None
    if len(unique) == 1:
        return where(field, "exact", unique[0])
    return where(field, "in", *unique)
