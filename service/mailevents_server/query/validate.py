"""Request protos -> `model.Query`, with every problem reported as a field violation.

All violations of a request are collected and raised together, so a caller
fixes everything in one round trip.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from google.protobuf import timestamp_pb2

from mailevents.event_types import parse_type
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.errors import InvalidArgument, Violation
from mailevents_server.query.fields import (
    BY_NAME,
    DATE_PART_OPERATORS,
    OPERATORS,
    Kind,
)
from mailevents_server.query.model import Predicate, Query, Value
from mailevents_server.query.operators import SINGLE_VALUE

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INT_RE = re.compile(r"[+-]?\d{1,19}\Z")
_MAX_VALUES = 10_000
_MAX_CONDITIONS = 100
#: A value longer than any stored field is useless, and a pattern that long
#: makes every LIKE comparison slow.
MAX_VALUE_CHARS = 4096
#: One per date part and one to spare: enough for any dialect's filters.
MAX_DATE_PART_CONDITIONS = 8
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Timestamps we can represent as int64 microseconds and format as RFC 3339.
_MIN_SECONDS = -62135596800  # 0001-01-01
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59


def operator_name(operator: int) -> str:
    """`OPERATOR_ICONTAINS` -> "icontains", for messages people read."""
    return spb.Operator.Name(operator).removeprefix("OPERATOR_").lower()


def valid_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone we can use (tzdata ships them all)."""
    if not name or len(name) > 255 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        return False
    return True


def timestamp_us(ts: timestamp_pb2.Timestamp) -> int | None:
    """Microseconds of a valid Timestamp; None when out of range."""
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS) or not (0 <= ts.nanos < 1_000_000_000):
        return None
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def parse_rfc3339_us(text: str) -> int | None:
    """Microseconds for an RFC 3339 time with an offset or Z; None if it is not one."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return (dt - _EPOCH) // _MICROSECOND


def compile_query(
    request: spb.EventQuery,
    tenant_id: int,
    path: str = "query",
    *,
    extra: list[Violation] | None = None,
) -> Query:
    """Validate an EventQuery and bind it to a tenant. Raises InvalidArgument."""
    violations: list[Violation] = list(extra or ())
    predicates: list[Predicate] = []
    # Bounds that keep every query compilable (SQLite: expression depth 1000,
    # 250,000 parameters); past them the request is refused, not failed.
    total_values = sum(len(c.values) for c in request.conditions)
    date_parts = sum(1 for c in request.conditions if c.date_part != spb.DATE_PART_UNSPECIFIED)
    if len(request.conditions) > _MAX_CONDITIONS:
        violations.append(Violation(f"{path}.conditions", f"at most {_MAX_CONDITIONS} conditions"))
    elif date_parts > MAX_DATE_PART_CONDITIONS:
        # Each converts every candidate row's time in a time zone: the costly kind.
        violations.append(
            Violation(
                f"{path}.conditions",
                f"at most {MAX_DATE_PART_CONDITIONS} conditions with a date_part",
            )
        )
    elif total_values > _MAX_VALUES:
        violations.append(
            Violation(f"{path}.conditions", f"at most {_MAX_VALUES} values in all conditions")
        )
    else:
        for i, cond in enumerate(request.conditions):
            pred = _condition(cond, f"{path}.conditions[{i}]", violations)
            if pred is not None:
                predicates.append(pred)

    start_us = end_us = None
    if request.HasField("start_time"):
        start_us = timestamp_us(request.start_time)
        if start_us is None:
            violations.append(Violation(f"{path}.start_time", "not a valid timestamp"))
    if request.HasField("end_time"):
        end_us = timestamp_us(request.end_time)
        if end_us is None:
            violations.append(Violation(f"{path}.end_time", "not a valid timestamp"))
    if start_us is not None and end_us is not None and start_us >= end_us:
        violations.append(Violation(f"{path}.end_time", "must be after start_time"))
    if request.order not in spb.Order.values():
        violations.append(Violation(f"{path}.order", f"unknown order {request.order}"))

    if violations:
        raise InvalidArgument.of(violations, "INVALID_QUERY")
    return Query(
        tenant_id=tenant_id,
        predicates=tuple(predicates),
        start_us=start_us,
        end_us=end_us,
        descending=request.order
        not in (spb.ORDER_TIMESTAMP_ASC, spb.ORDER_ID_ASC, spb.ORDER_TIMESTAMP_ASC_ID_DESC),
        by_id=request.order in (spb.ORDER_ID_ASC, spb.ORDER_ID_DESC),
        mixed=request.order in (spb.ORDER_TIMESTAMP_DESC_ID_ASC, spb.ORDER_TIMESTAMP_ASC_ID_DESC),
    )


def check_skip(skip: int, out: list[Violation], field: str = "skip") -> int:
    """A request's `skip`, or a violation when it is negative."""
    if skip < 0:
        out.append(Violation(field, "must not be negative"))
        return 0
    return skip


def _condition(cond: spb.Condition, path: str, out: list[Violation]) -> Predicate | None:
    before = len(out)
    field = BY_NAME.get(cond.field)
    if not cond.field:
        out.append(Violation(f"{path}.field", "required"))
    elif field is None:
        out.append(
            Violation(
                f"{path}.field", f"unknown field {cond.field!r}; filterable: {', '.join(BY_NAME)}"
            )
        )
    op = cond.operator
    if op == spb.OPERATOR_UNSPECIFIED:
        out.append(Violation(f"{path}.operator", "required"))
    elif op not in spb.Operator.values():
        out.append(Violation(f"{path}.operator", f"unknown operator {op}"))
    if len(cond.values) > _MAX_VALUES:
        out.append(Violation(f"{path}.values", f"at most {_MAX_VALUES} values"))
    for j, v in enumerate(cond.values):
        if len(v) > MAX_VALUE_CHARS:
            out.append(
                Violation(f"{path}.values[{j}]", f"at most {MAX_VALUE_CHARS} characters per value")
            )
            break
    if len(out) > before or field is None:
        return None

    if cond.date_part != spb.DATE_PART_UNSPECIFIED:
        if not _date_part_condition(cond, field.name, field.kind, path, out):
            return None
        parts = tuple(dict.fromkeys(int(v) for v in cond.values))
        return Predicate(field, op, parts, cond.date_part, cond.time_zone or "UTC")
    if cond.time_zone:
        out.append(Violation(f"{path}.time_zone", "only used together with date_part"))
        return None
    if op not in OPERATORS[field.kind]:
        out.append(
            Violation(
                f"{path}.operator",
                f"{operator_name(op)} is not allowed on {field.kind.value} field {field.name!r}",
            )
        )
        return None
    values = _values(cond, field.kind, path, out)
    if values is None:
        return None
    return Predicate(field, op, values)


def _count_ok(op: int, n: int, path: str, out: list[Violation]) -> bool:
    if op in SINGLE_VALUE and n != 1:
        out.append(
            Violation(f"{path}.values", f"{operator_name(op)} takes exactly one value, got {n}")
        )
        return False
    if op == spb.OPERATOR_IS_NULL and n > 1:
        out.append(Violation(f"{path}.values", "is_null takes at most one value: true or false"))
        return False
    return True


def _date_part_condition(
    cond: spb.Condition, name: str, kind: Kind, path: str, out: list[Violation]
) -> bool:
    ok = True
    if kind is not Kind.TIMESTAMP:
        out.append(Violation(f"{path}.date_part", f"only for timestamp fields, not {name!r}"))
        ok = False
    if cond.date_part not in spb.DatePart.values():
        out.append(Violation(f"{path}.date_part", f"unknown date part {cond.date_part}"))
        ok = False
    if cond.operator not in DATE_PART_OPERATORS:
        out.append(
            Violation(
                f"{path}.operator", f"{operator_name(cond.operator)} is not allowed with date_part"
            )
        )
        ok = False
    if cond.time_zone and not valid_time_zone(cond.time_zone):
        out.append(Violation(f"{path}.time_zone", f"unknown time zone {cond.time_zone!r}"))
        ok = False
    if not _count_ok(cond.operator, len(cond.values), path, out):
        return False
    for j, v in enumerate(cond.values):
        if _int64(v) is None:
            out.append(Violation(f"{path}.values[{j}]", _expected(Kind.INT, v)))
            ok = False
    return ok


def _int64(raw: str) -> int | None:
    """The integer `raw` spells, when it fits a signed 64-bit column; else None."""
    text = raw.strip()
    if not _INT_RE.match(text):
        return None
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else None


def _values(
    cond: spb.Condition, kind: Kind, path: str, out: list[Violation]
) -> tuple[Value, ...] | None:
    op = cond.operator
    if not _count_ok(op, len(cond.values), path, out):
        return None
    if op == spb.OPERATOR_IS_NULL:
        text = cond.values[0].strip().lower() if cond.values else "true"
        if text not in ("true", "false"):
            out.append(Violation(f"{path}.values[0]", f"is_null takes true or false, not {text!r}"))
            return None
        return (text == "true",)
    parsed: list[Value] = []
    ok = True
    for j, raw in enumerate(cond.values):
        value = _parse(kind, raw)
        if value is None:
            out.append(Violation(f"{path}.values[{j}]", _expected(kind, raw)))
            ok = False
        else:
            parsed.append(value)
    # IN with the same value twice means it once; the store need not see it twice.
    return tuple(dict.fromkeys(parsed)) if ok else None


def _parse(kind: Kind, raw: str) -> Value | None:
    if kind is Kind.TEXT or kind is Kind.TAGS:
        return raw
    text = raw.strip()
    if kind is Kind.INT:
        return _int64(text)
    if kind is Kind.BOOL:
        lowered = text.lower()
        return {"true": True, "1": True, "false": False, "0": False}.get(lowered)
    if kind is Kind.TIMESTAMP:
        return parse_rfc3339_us(text)
    if kind is Kind.ENUM:
        return parse_type(text)
    raise AssertionError(kind)


def _expected(kind: Kind, raw: str) -> str:
    return {
        Kind.INT: f"{_clip(raw)!r} is not an integer from {INT64_MIN} to {INT64_MAX}",
        Kind.BOOL: f"{_clip(raw)!r} is not a boolean (true or false)",
        Kind.TIMESTAMP: f"{_clip(raw)!r} is not an RFC 3339 timestamp with a time zone offset",
        Kind.ENUM: f"{_clip(raw)!r} is not a known event type",
    }.get(kind, f"invalid value {_clip(raw)!r}")


def _clip(raw: str) -> str:
    """A value as echoed in a message: long ones cut, so a message stays readable."""
    return raw if len(raw) <= 40 else raw[:40] + "…"
