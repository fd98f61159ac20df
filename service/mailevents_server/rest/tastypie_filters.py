"""Tastypie's `build_filters` and `apply_sorting` for the messageevent resource.

Stock django-tastypie 0.15 reads `?field__lookup=value` in three stages, and
which error a bad request gets depends on the stage, so they are kept apart:

1. build_filters: unknown lookups and fields that do not allow filtering
   (`InvalidFilterError`, 400), and `__in` on a non-string (a TypeError);
2. QuerySet.filter: values Django cannot convert (a ValueError, reported as
   "mismatched type", or a datetime ValidationError), in the sorted order of
   the ORM lookups, as Django's `Q` sorts its keyword arguments;
3. evaluation (the paginator's count): a non-boolean `__isnull` or a year out
   of range, after limit and offset were checked.

What crashes stock Tastypie (a 500 there) is a 400 here, in Tastypie's error
JSON: bad input never gets a 5xx. The checks still run in Tastypie's order.

A filter becomes one typed condition; the server decides what it matches
(case rules, `%` and `_` as literal characters, week_day 1=Sunday..7=Saturday).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

from multidict import MultiMapping

from mailevents.v1 import message_event_service_pb2 as pb

from .client import condition

#: The resource's fields, as a ModelResource exposes them.
FIELDS = frozenset(
    {
        "_extra",
        "archived",
        "bulk_email",
        "event_id",
        "event_json",
        "event_name",
        "event_timestamp",
        "event_type",
        "id",
        "resource_uri",
        "send_email",
    }
)
RELATED = frozenset({"bulk_email", "send_email"})

#: Meta.filtering, from the seed.
FILTERING: Mapping[str, tuple[str, ...]] = {
    "bulk_email": ("exact", "in", "isnull"),
    "send_email": ("exact", "in", "isnull"),
    "event_name": (
        "exact",
        "in",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "iexact",
        "isnull",
    ),
    "event_timestamp": ("exact", "year", "month", "day", "week_day", "hour", "minute", "second"),
}

#: The seed documents the parameters as `bulk_email_id` / `send_email_id`; stock
#: Tastypie would silently ignore those names, so they are read as the fields.
ALIASES: Mapping[str, str] = {"bulk_email_id": "bulk_email", "send_email_id": "send_email"}

#: Meta.ordering.
ORDERING = ("event_timestamp", "id")

#: Resource fields with no model attribute (`get_field` raises FieldDoesNotExist):
#: `_extra` is always `{}` in the seed, a computed field rather than a column.
NO_ATTRIBUTE = frozenset({"resource_uri", "_extra"})

#: The lookups Django (4.2) registers on every model field (`get_lookups()`).
#: Tastypie takes a trailing bit as the lookup type only when it is one of the
#: field's own lookups.
FIELD_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "range",
        "isnull",
        "regex",
        "iregex",
    }
)
#: A DateTimeField's lookups add its transforms.
DATETIME_LOOKUPS = FIELD_LOOKUPS | frozenset(
    {
        "year",
        "iso_year",
        "month",
        "day",
        "week",
        "week_day",
        "iso_week_day",
        "quarter",
        "hour",
        "minute",
        "second",
        "date",
        "time",
    }
)


#: A ForeignKey's own lookups replace the field ones.
RELATED_LOOKUPS = frozenset({"exact", "gt", "gte", "in", "isnull", "lt", "lte"})


def _lookups(name: str) -> frozenset[str]:
    if name in RELATED:
        return RELATED_LOOKUPS
    return DATETIME_LOOKUPS if name == "event_timestamp" else FIELD_LOOKUPS


#: The MessageEvent field behind each filterable resource field.
STORE_FIELD: Mapping[str, str] = {
    "bulk_email": "bulk_email_id",
    "send_email": "send_email_id",
    "event_name": "type_name",
    "event_timestamp": "timestamp",
}

_TEXT_OPERATORS: Mapping[str, int] = {
    "exact": pb.OPERATOR_EXACT,
    "iexact": pb.OPERATOR_IEXACT,
    "contains": pb.OPERATOR_CONTAINS,
    "icontains": pb.OPERATOR_ICONTAINS,
    "startswith": pb.OPERATOR_STARTS_WITH,
    "istartswith": pb.OPERATOR_ISTARTS_WITH,
    "endswith": pb.OPERATOR_ENDS_WITH,
    "iendswith": pb.OPERATOR_IENDS_WITH,
}

_DATE_PARTS: Mapping[str, int] = {
    "year": pb.DATE_PART_YEAR,
    "month": pb.DATE_PART_MONTH,
    "day": pb.DATE_PART_DAY,
    "week_day": pb.DATE_PART_WEEK_DAY,
    "hour": pb.DATE_PART_HOUR,
    "minute": pb.DATE_PART_MINUTE,
    "second": pb.DATE_PART_SECOND,
}

#: settings.TIME_ZONE of the emulated Django project: naive datetimes and date
#: parts are read in it, and datetimes are rendered in it.
TIME_ZONE = "UTC"

MISMATCHED = "Invalid resource lookup data provided (mismatched type)."


class BadRequest(Exception):
    """A 400 with `{"error": message}` (message not yet HTML-escaped)."""


class ServerFault(BadRequest):
    """What would be an unhandled exception in Django (a 500 there); a 400 here."""


@dataclass
class Filters:
    """The outcome of reading the filters: conditions, or the error due at evaluation."""

    conditions: list[pb.Condition] = field(default_factory=list)
    fault_on_evaluation: bool = False


def _to_python(value: str) -> str | bool | None:
    """Tastypie's filter_value_to_python, before the `__in` split."""
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    if value in ("nil", "none", "None"):
        return None
    return value


def _check_filtering(name: str, filter_type: str, bits: list[str]) -> None:
    if name not in FILTERING:
        raise BadRequest(f"The '{name}' field does not allow filtering.")
    if filter_type not in FILTERING[name]:
        raise BadRequest(f"'{filter_type}' is not an allowed filter on the '{name}' field.")
    if bits:
        if name not in RELATED:
            raise BadRequest(f"The '{name}' field does not support relations.")
        raise BadRequest(f"Lookups are not allowed more than one level deep on the '{name}' field.")


def build_filters(params: MultiMapping[str]) -> Filters:
    """Every filter of the request as conditions, or the error Tastypie would give."""
    # Stage 1, in the order the parameters first appear (QueryDict.items()).
    lookups: dict[str, tuple[str, str, Any, str]] = {}
    for key in dict.fromkeys(params.keys()):
        bits = key.split("__")
        name = ALIASES.get(bits[0], bits[0])
        bits = bits[1:]
        if name not in FIELDS:
            continue  # "It's not a field we know about. Move along citizen."
        if name in NO_ATTRIBUTE:
            raise BadRequest(f"The '{name}' field is not a valid field name")
        filter_type = bits.pop() if bits and bits[-1] in _lookups(name) else "exact"
        _check_filtering(name, filter_type, bits)
        value: Any = _to_python(params.getall(key)[-1])
        if filter_type == "in":
            if not isinstance(value, str):
                raise ServerFault(f"'{key}' takes a comma-separated list of values.")
            if value:
                value = [part for item in params.getall(key) for part in item.split(",")]
        # Django's lookup key; a later parameter for the same lookup replaces it.
        lookups[f"{name}__{filter_type}"] = (name, filter_type, value, key)
    # Stage 2: Q(**filters) sorts its keyword arguments.
    out = Filters()
    for lookup in sorted(lookups):
        name, filter_type, value, _key = lookups[lookup]
        made = _condition(name, filter_type, value)
        if made is None:
            out.fault_on_evaluation = True
        else:
            out.conditions.append(made)
    return out


def _condition(name: str, filter_type: str, value: Any) -> pb.Condition | None:
    """The condition for one lookup; None when Django would fail only on evaluation."""
    store = STORE_FIELD[name]
    if filter_type == "isnull":
        if not isinstance(value, bool):
            # Django >= 4: "The QuerySet value for an isnull lookup must be True or False."
            return None
        return condition(store, pb.OPERATOR_IS_NULL, ["true" if value else "false"])
    if value is None and filter_type in ("exact", "iexact"):
        # Django reads `__exact=None` as IS NULL.
        return condition(store, pb.OPERATOR_IS_NULL, ["true"])
    if value is None:
        raise BadRequest(MISMATCHED)  # "Cannot use None as a query value"
    if name in RELATED:
        return _integer_condition(store, filter_type, value)
    if name == "event_name":
        return _text_condition(store, filter_type, value)
    return _timestamp_condition(filter_type, value)


def _as_int(value: Any) -> int:
    """Django's IntegerField.get_prep_value: Python's int(), ValueError -> mismatched."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(MISMATCHED) from None


def _integer_condition(store: str, filter_type: str, value: Any) -> pb.Condition:
    if filter_type == "in":
        values = [str(_as_int(item)) for item in value] if value else []
        return condition(store, pb.OPERATOR_IN, values)
    return condition(store, pb.OPERATOR_EXACT, [str(_as_int(value))])


def _text_condition(store: str, filter_type: str, value: Any) -> pb.Condition:
    if filter_type == "in":
        return condition(store, pb.OPERATOR_IN, list(value) if value else [])
    # CharField.get_prep_value is str(): `true` compares as "True".
    return condition(store, _TEXT_OPERATORS[filter_type], [str(value)])


def _timestamp_condition(filter_type: str, value: Any) -> pb.Condition | None:
    if filter_type == "exact":
        if isinstance(value, bool):
            raise ServerFault(MISMATCHED)
        moment = parse_django_datetime(value)
        if moment is None:  # a real time, but not in UTC's years 1-9999: no event's
            return condition("timestamp", pb.OPERATOR_IN, [])
        return condition("timestamp", pb.OPERATOR_EXACT, [moment.isoformat()])
    part = _as_int(value)
    if filter_type == "year" and not 1 <= part <= 9999:
        return None  # year_lookup_bounds(): "year is out of range", on evaluation
    return condition(
        "timestamp",
        pb.OPERATOR_EXACT,
        [str(part)],
        date_part=_DATE_PARTS[filter_type],
        time_zone=TIME_ZONE,
    )


_DATETIME_RE = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"[T ](?P<hour>\d{1,2}):(?P<minute>\d{1,2})"
    r"(?::(?P<second>\d{1,2})(?:[.,](?P<microsecond>\d{1,6})\d{0,6})?)?"
    r"\s*(?P<tzinfo>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DATE_RE = re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})$")
_DATETIME_FORMAT = "YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ]"


def parse_django_datetime(text: str) -> datetime | None:
    """DateTimeField.to_python for a query value: a datetime, else a date at midnight,
    in UTC; None for a valid time whose UTC is past year 9999 or before year 1
    (`9999-12-31T20:00-10:00`), which Django on PostgreSQL compares without error.

    Django (>= 4) tries `fromisoformat` and then its own patterns; a value that
    matches a pattern but names no real date gets its own message. Naive values
    are read in TIME_ZONE. The messages are Django's, in the list repr Tastypie
    puts in its `error`.
    """
    try:
        moment = _parse_datetime(text)
    except ValueError:
        raise BadRequest(
            str(
                [
                    f"“{text}” value has the correct format ({_DATETIME_FORMAT}) "
                    "but it is an invalid date/time."
                ]
            )
        ) from None
    if moment is None:
        try:
            day = _parse_date(text)
        except ValueError:
            raise BadRequest(
                str(
                    [
                        f"“{text}” value has the correct format (YYYY-MM-DD) "
                        "but it is an invalid date."
                    ]
                )
            ) from None
        if day is None:
            raise BadRequest(
                str(
                    [
                        f"“{text}” value has an invalid format. It must be in "
                        f"{_DATETIME_FORMAT} format."
                    ]
                )
            )
        moment = datetime(day.year, day.month, day.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def _parse_datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        match = _DATETIME_RE.match(text)
        if match is None:
            return None
    parts = match.groupdict()
    zone_text = parts.pop("tzinfo")
    micro = parts.pop("microsecond")
    numbers = {key: int(value) for key, value in parts.items() if value is not None}
    numbers["microsecond"] = int(micro.ljust(6, "0")) if micro else 0
    zone: tzinfo | None = None
    if zone_text == "Z":
        zone = UTC
    elif zone_text:
        minutes = int(zone_text[1:3]) * 60 + (int(zone_text[-2:]) if len(zone_text) > 3 else 0)
        zone = timezone(timedelta(minutes=-minutes if zone_text[0] == "-" else minutes))
    return datetime(**numbers, tzinfo=zone)


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        match = _DATE_RE.match(text)
        if match is None:
            return None
    return date(*(int(value) for value in match.groups()))


def apply_sorting(params: MultiMapping[str]) -> int:
    """The service order for `order_by` (or the deprecated `sort_by`).

    Without it: ascending id, the messageevent resource's natural order.
    Several `order_by` sort by each in turn, as Django's `order_by(*fields)`:
    `-event_timestamp&id` breaks timestamp ties by ascending id. Since ids are
    unique, nothing after an `id` key changes the order, and a repeated
    timestamp key changes nothing either; ties left open (a lone timestamp
    key) go by id in the same direction.
    """
    name = "order_by" if "order_by" in params else "sort_by" if "sort_by" in params else None
    if name is None:
        return ORDER_ID_ASC
    keys: list[tuple[str, bool]] = []
    transformed = False
    for item in params.getall(name):
        bits = item.split("__")
        descending = bits[0].startswith("-")
        field_name = bits[0][1:] if descending else bits[0]
        if field_name not in FIELDS:
            raise BadRequest(f"No matching '{field_name}' field for ordering on.")
        if field_name not in ORDERING:
            raise BadRequest(f"The '{field_name}' field does not allow ordering.")
        # Tastypie passes `field__x` on to Django, which fails only on evaluation.
        transformed = transformed or len(bits) > 1
        keys.append((field_name, descending))
    if transformed:
        raise ServerFault("Ordering by a part of a field (field__part) is not supported.")
    return _order(keys)


def _order(keys: list[tuple[str, bool]]) -> int:
    """The keyset order that sorts as Django would by these (field, descending) keys."""
    if not keys:
        return ORDER_ID_ASC
    first, descending = keys[0]
    if first == "id":
        return ORDER_ID_DESC if descending else ORDER_ID_ASC
    ties = next((desc for field_name, desc in keys[1:] if field_name == "id"), descending)
    if ties == descending:
        return pb.ORDER_TIMESTAMP_DESC if descending else pb.ORDER_TIMESTAMP_ASC
    return pb.ORDER_TIMESTAMP_DESC_ID_ASC if descending else pb.ORDER_TIMESTAMP_ASC_ID_DESC


ORDER_ID_ASC: int = pb.ORDER_ID_ASC
ORDER_ID_DESC: int = pb.ORDER_ID_DESC
