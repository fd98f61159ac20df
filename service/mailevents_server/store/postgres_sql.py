"""`Query` -> PostgreSQL SQL with the query core's semantics, the same as sqlite_sql.

The contract tests hold the two compilers to the same answers; the traps
they guard against, and how this compiler avoids them:
- LIKE treats `%` and `_` as wildcards: text matching uses strpos(),
  starts_with() and right() instead, which compare literally.
- Database locales order and compare text differently from SQLite: the text
  columns are COLLATE "C" (bytewise, as SQLite's BINARY), so `=`, `<` and
  ORDER BY agree with SQLite.
- lower() under the "C" collation folds ASCII only: the case-insensitive forms
  lowercase both sides under an ICU collation (`icu`, chosen by the store),
  whose full Unicode case mapping matches Python's str.lower used by SQLite.
- NULL is not the empty string: is_null tests IS NULL only, and an empty
  needle matches every non-NULL value, as in SQLite.
- Date parts are taken in an IANA zone with AT TIME ZONE on exact integer
  microseconds (no float rounding at second boundaries); week_day is
  dow + 1 (1 = Sunday), seconds are floored.
- NUL characters cannot be stored in PostgreSQL text: `clean` maps them to
  U+FFFD on the way in, and values of conditions get the same mapping.
"""

from __future__ import annotations

from typing import Any

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.query.fields import TAG_SEP, Kind
from mailevents_server.query.model import Predicate, Query
from mailevents_server.query.operators import BY_VALUE, Match, Shape

#: The ICU collation used for case folding when the server has it.
DEFAULT_ICU = "und-x-icu"

_ARRAY_TYPE = {
    Kind.TEXT: "text[]",
    Kind.TAGS: "text[]",
    Kind.INT: "bigint[]",
    Kind.TIMESTAMP: "bigint[]",
    Kind.ENUM: "bigint[]",
    Kind.BOOL: "bigint[]",
}

_DATE_PARTS: dict[int, str] = {
    spb.DATE_PART_YEAR: "extract(year from {t})::bigint",
    spb.DATE_PART_MONTH: "extract(month from {t})::bigint",
    spb.DATE_PART_DAY: "extract(day from {t})::bigint",
    spb.DATE_PART_WEEK_DAY: "(extract(dow from {t})::bigint + 1)",
    spb.DATE_PART_HOUR: "extract(hour from {t})::bigint",
    spb.DATE_PART_MINUTE: "extract(minute from {t})::bigint",
    spb.DATE_PART_SECOND: "floor(extract(second from {t}))::bigint",
}


def clean(value: Any) -> Any:
    """A value PostgreSQL text can hold: NUL becomes U+FFFD (other values pass)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


class Params:
    """Positional parameters: `add` returns the placeholder for a value."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(clean(value))
        return f"${len(self.values)}"


def local_time(column: str, zone_placeholder: str) -> str:
    """The wall-clock timestamp of a microsecond column in a zone, exactly."""
    return (
        f"((to_timestamp({column} / 1000000) + ({column} % 1000000) * interval '1 microsecond')"
        f" AT TIME ZONE {zone_placeholder})"
    )


def bucket(column: str, unit: str, zone_placeholder: str) -> str:
    """The local hour or day as text, the same keys as timeparts.bucket."""
    fmt = 'YYYY-MM-DD"T"HH24:00' if unit == "hour" else "YYYY-MM-DD"
    return f"to_char({local_time(column, zone_placeholder)}, '{fmt}')"


def where(query: Query, params: Params, *, keyset: bool = True, icu: str = DEFAULT_ICU) -> str:
    """The WHERE clause, tenant first so every plan starts on a tenant index."""
    parts = [f"tenant_id = {params.add(query.tenant_id)}"]
    if query.start_us is not None:
        parts.append(f"ts >= {params.add(query.start_us)}")
    if query.end_us is not None:
        parts.append(f"ts < {params.add(query.end_us)}")
    if query.max_id is not None:
        parts.append(f"id <= {params.add(query.max_id)}")
    if keyset and query.after is not None:
        op = "<" if query.descending else ">"
        if query.by_id:
            parts.append(f"id {op} {params.add(query.after[1])}")
        elif query.mixed:
            ts, event_id = params.add(query.after[0]), params.add(query.after[1])
            id_op = ">" if query.descending else "<"
            parts.append(f"ts {op}= {ts} AND (ts {op} {ts} OR id {id_op} {event_id})")
        else:
            position = f"({params.add(query.after[0])}, {params.add(query.after[1])})"
            parts.append(f"(ts, id) {op} {position}")
    for pred in query.predicates:
        parts.append(predicate(pred, params, icu=icu))
    return " AND ".join(parts)


def order_by(query: Query) -> str:
    direction = "DESC" if query.descending else "ASC"
    if query.by_id:
        return f"ORDER BY id {direction}"
    if query.mixed:
        # An incremental sort over the (tenant_id, ts, id) index: runs of equal ts.
        return f"ORDER BY ts {direction}, id {'ASC' if query.descending else 'DESC'}"
    return f"ORDER BY ts {direction}, id {direction}"


def select(
    query: Query, columns: str = "ts, id, data", limit: int | None = None, icu: str = DEFAULT_ICU
) -> tuple[str, list[Any]]:
    params = Params()
    clause = where(query, params, icu=icu)
    if query.skip and not query.mixed:
        clause += f" AND {_past_skip(query, params, icu)}"
    sql = f"SELECT {columns} FROM events WHERE {clause} {order_by(query)}"
    if limit is not None:
        sql += f" LIMIT {params.add(limit)}"
    if query.skip and query.mixed:
        # No row comparison gives a mixed order's bound: a plain OFFSET.
        sql += f" OFFSET {params.add(query.skip)}"
    return sql, params.values


def _past_skip(query: Query, params: Params, icu: str) -> str:
    """Only rows beyond the `skip`-th match: a keyset bound found by an inner OFFSET.

    The inner read selects the key columns only, so PostgreSQL steps over the
    skipped rows in the index that gives the order (index-only where the
    visibility map allows) instead of fetching each skipped row's event. When
    fewer rows match, the bound is NULL and no row passes it: an empty page.
    """
    clause = where(query, params, icu=icu)
    op = "<" if query.descending else ">"
    columns = "id" if query.by_id else "ts, id"
    inner = (
        f"SELECT {columns} FROM events WHERE {clause} {order_by(query)} "
        f"OFFSET {params.add(query.skip - 1)} LIMIT 1"
    )
    return f"({columns}) {op} ({inner})"


def predicate(pred: Predicate, params: Params, *, icu: str = DEFAULT_ICU) -> str:
    """One condition as SQL, its values added to `params`."""
    col = pred.field.column
    op = pred.operator
    values = list(pred.values)
    if op == spb.OPERATOR_IN and not values:
        return "false"  # before any parameter is added: none may go unused
    if pred.date_part:
        expr = _DATE_PARTS[pred.date_part].format(t=local_time(col, params.add(pred.time_zone)))
        return _compare(expr, op, [int(v) for v in values], "bigint[]", params)
    if op == spb.OPERATOR_IS_NULL:
        return f"{col} IS NULL" if values[0] else f"{col} IS NOT NULL"
    kind = pred.field.kind
    if kind is Kind.TAGS:
        if not values:
            return "false"
        tags = [f"{TAG_SEP}{v}{TAG_SEP}" for v in values]
        return "(" + " OR ".join(f"strpos({col}, {params.add(t)}) > 0" for t in tags) + ")"
    if kind is Kind.BOOL:
        values = [int(bool(v)) for v in values]
    spec = BY_VALUE[op]
    if spec.shape is not Shape.TEXT:
        return _compare(col, op, values, _ARRAY_TYPE[kind], params)
    text = str(values[0])
    if not text and spec.empty_means_not_null:
        return f"{col} IS NOT NULL"
    mark = params.add(text)
    if spec.ignore_case:
        target = f'lower({col} COLLATE "{icu}")'
        needle = f'lower({mark}::text COLLATE "{icu}")'
    else:
        target, needle = col, f"{mark}::text"
    if spec.match is Match.WHOLE:
        return f"{target} = {needle}"
    if spec.match is Match.CONTAINS:
        return f"strpos({target}, {needle}) > 0"
    if spec.match is Match.PREFIX:
        return f"starts_with({target}, {needle})"
    if spec.match is Match.SUFFIX:
        return f"right({target}, length({needle})) = {needle}"
    raise AssertionError(f"operator {op} reached the PostgreSQL compiler unvalidated")


def _compare(expr: str, op: int, values: list[Any], array_type: str, params: Params) -> str:
    if op == spb.OPERATOR_IN:
        if not values:
            return "false"
        return f"{expr} = ANY({params.add(values)}::{array_type})"
    return f"{expr} {BY_VALUE[op].symbol} {params.add(values[0])}"
