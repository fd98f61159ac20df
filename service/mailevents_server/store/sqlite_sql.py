"""`Query` -> SQLite SQL. The semantics compiled here are the query core's (see
the Operator comments in the proto); PostgreSQL's compiler must agree, and the
store contract tests check that they do.

Text matching avoids LIKE on purpose: SQLite's LIKE ignores ASCII case by
default and treats `%`/`_` as wildcards, the two classic traps. instr() and
substr() are exact; the case-insensitive forms lowercase both sides with
Python's str.lower (the `mev_lower` function the store registers).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.query.fields import TAG_SEP, Kind
from mailevents_server.query.model import Predicate, Query
from mailevents_server.query.operators import BY_VALUE, Match, Shape


def where(
    query: Query, *, keyset: bool = True, snapshot_range: bool = False
) -> tuple[str, list[Any]]:
    """The WHERE clause (tenant first, so every plan starts on a tenant index).

    `snapshot_range`: let the max_id bound narrow an index range (live reads,
    whose plan is pinned to a range of ids) instead of only filtering.
    """
    parts = ["tenant_id = ?"]
    params: list[Any] = [query.tenant_id]
    # A keyset position implies the time bound on its side (tokens are only
    # issued inside the range). Leaving that bound in lets SQLite pick it, not
    # the position, for the index range, and page N re-walks pages 1..N-1.
    after = query.after if keyset and not query.by_id else None
    past_start = (
        after is not None
        and not query.descending
        and query.start_us is not None
        and after[0] >= query.start_us
    )
    before_end = (
        after is not None
        and query.descending
        and query.end_us is not None
        and after[0] < query.end_us
    )
    if query.start_us is not None and not past_start:
        parts.append("ts >= ?")
        params.append(query.start_us)
    if query.end_us is not None and not before_end:
        parts.append("ts < ?")
        params.append(query.end_us)
    if query.max_id is not None:
        # The snapshot bound filters; it must not choose the plan. As an index
        # range (rowid <= ?) it can look selective to the planner (measured on
        # 1M events: a newest-first read sorted every event of the tenant, and
        # a count by type read the tenant by rowid, 266 ms against 0.2 ms).
        # The unary + keeps the term out of index selection.
        parts.append("id <= ?" if snapshot_range else "+id <= ?")
        params.append(query.max_id)
    if keyset and query.after is not None:
        if query.by_id:
            parts.append("id < ?" if query.descending else "id > ?")
            params.append(query.after[1])
        elif query.mixed:
            # Written so that the timestamp bound is an index range.
            ts_op, id_op = ("<", ">") if query.descending else (">", "<")
            parts.append(f"ts {ts_op}= ? AND (ts {ts_op} ? OR id {id_op} ?)")
            params.extend((query.after[0], query.after[0], query.after[1]))
        else:
            parts.append("(ts, id) < (?, ?)" if query.descending else "(ts, id) > (?, ?)")
            params.extend(query.after)
    for pred in query.predicates:
        sql, args = predicate(pred)
        parts.append(sql)
        params.extend(args)
    return " AND ".join(parts), params


def order_by(query: Query) -> str:
    direction = "DESC" if query.descending else "ASC"
    if query.by_id:
        return f"ORDER BY id {direction}"
    if query.mixed:
        # The index gives the timestamps; only each run of equal ones is sorted.
        return f"ORDER BY ts {direction}, id {'ASC' if query.descending else 'DESC'}"
    return f"ORDER BY ts {direction}, id {direction}"


def select(query: Query, limit: int | None = None) -> tuple[str, list[Any]]:
    """The rows (ts, id, data) of a query, in its order, the first `limit` of them."""
    split = _in_by_value(query, limit)
    if split is not None:
        return split
    clause, params = where(query)
    offset = query.skip and query.mixed
    if query.skip and not offset:
        bound, args = _past_skip(query)
        clause += f" AND {bound}"
        params += args
    sql = f"SELECT ts, id, data FROM events WHERE {clause} {order_by(query)}"
    if limit is not None or offset:
        sql += " LIMIT ?"
        params.append(-1 if limit is None else limit)
    if offset:
        # No row value bounds a mixed order: a plain OFFSET over the index read.
        sql += " OFFSET ?"
        params.append(query.skip)
    return sql, params


def _past_skip(query: Query) -> tuple[str, list[Any]]:
    """Only rows beyond the `skip`-th match: a keyset bound found by an inner OFFSET.

    The inner read selects key columns only, so it steps over the skipped
    rows in a covering index and never reads an event (a plain OFFSET on the
    page's own query costs about twice as much, measured on 1M events). When
    fewer rows match, the bound is NULL and no row passes it: an empty page.
    """
    columns = "id" if query.by_id else "ts, id"
    table = "events"
    whole_tenant = query.by_id and not query.predicates and query.start_us is query.end_us is None
    if whole_tenant:
        # A tenant in id order (Tastypie's walk): the snapshot bound as a range
        # of the (tenant_id) index, not a test of every skipped entry (3x faster).
        table = "events INDEXED BY events_tenant"
    clause, params = where(query, snapshot_range=whole_tenant)
    inner = f"SELECT {columns} FROM {table} WHERE {clause} {order_by(query)} LIMIT 1 OFFSET ?"
    op = "<" if query.descending else ">"
    return f"({columns}) {op} ({inner})", [*params, query.skip - 1]


#: Columns indexed as (tenant_id, column): an index entry ends with the rowid,
#: so one value's entries are in id order.
_ID_ORDERED = frozenset({"type_name", "bulk_email_id", "send_email_id", "event_id"})
#: Read value by value only IN lists this short, for pages this long at most.
_SPLIT_MAX_VALUES = 32
_SPLIT_MAX_LIMIT = 10_000


def _splittable(predicates: tuple[Predicate, ...]) -> tuple[int, tuple[Any, ...]] | None:
    """The first IN condition `_in_by_value` can split, and its distinct values."""
    for position, pred in enumerate(predicates):
        if (
            pred.operator != spb.OPERATOR_IN
            or pred.date_part
            or pred.field.column not in _ID_ORDERED
        ):
            continue
        values = tuple(dict.fromkeys(pred.values))  # distinct: each id once
        if 1 < len(values) <= _SPLIT_MAX_VALUES:
            return position, values
    return None


def _in_by_value(query: Query, limit: int | None) -> tuple[str, list[Any]] | None:
    """`column IN (a, b, ...)` in id order with a LIMIT, as one index read per value.

    SQLite keeps no per-value statistics (it is built without STAT4), so for
    an IN list it assumes common values and walks the tenant in id order until
    `limit` rows match: through every event when the values are rare or absent
    (Tastypie's `bulk_email__in` or `event_name__in`: ~450 ms on 1M events).
    Read per value instead, each `column = ?` walks its own index in id order
    and stops after `limit` ids; the ids are merged, cut to `limit`, and only
    those rows are fetched. Fast whether the values are rare or common.
    """
    if limit is None or limit + query.skip > _SPLIT_MAX_LIMIT or not query.by_id:
        return None
    found = _splittable(query.predicates)
    if found is None:
        return None
    position, values = found
    pred = query.predicates[position]
    order = order_by(query)
    branches: list[str] = []
    params: list[Any] = []
    for value in values:
        one = dataclasses.replace(pred, operator=spb.OPERATOR_EXACT, values=(value,))
        predicates = (*query.predicates[:position], one, *query.predicates[position + 1 :])
        clause, args = where(dataclasses.replace(query, predicates=predicates))
        branches.append(f"SELECT id FROM (SELECT id FROM events WHERE {clause} {order} LIMIT ?)")
        params += [*args, limit + query.skip]
    ids = f"SELECT id FROM ({' UNION ALL '.join(branches)}) {order} LIMIT ? OFFSET ?"
    sql = f"SELECT ts, id, data FROM events WHERE id IN ({ids}) {order}"
    return sql, [*params, limit, query.skip]


def select_after(query: Query, position: int, limit: int) -> tuple[str, list[Any]]:
    """Matching rows with id > position (up to query.max_id) in commit order, for live streams.

    Pinned to the (tenant_id) index, whose entries are (tenant_id, rowid):
    the id range is then a range of that index, so following the tail of a
    large tenant reads only the new rows, whatever the filters.
    """
    clause, params = where(query, keyset=False, snapshot_range=True)
    sql = (
        f"SELECT ts, id, data FROM events INDEXED BY events_tenant "
        f"WHERE {clause} AND id > ? ORDER BY id LIMIT ?"
    )
    return sql, [*params, position, limit]


def predicate(pred: Predicate) -> tuple[str, list[Any]]:
    """One condition as SQL with its parameters."""
    col = pred.field.column
    op = pred.operator
    values = list(pred.values)
    if pred.date_part:
        expr = f"mev_datepart({col}, {int(pred.date_part)}, ?)"
        return _compare(expr, op, values, prefix=[pred.time_zone])
    if op == spb.OPERATOR_IS_NULL:
        return (f"{col} IS NULL" if values[0] else f"{col} IS NOT NULL"), []
    kind = pred.field.kind
    if kind is Kind.TAGS:
        tags = [f"{TAG_SEP}{v}{TAG_SEP}" for v in values]
        if not tags:
            return "0", []
        return _any_of([f"instr({col}, ?) > 0"] * len(tags)), tags
    if kind is Kind.BOOL:
        values = [int(bool(v)) for v in values]
    spec = BY_VALUE[op]
    if spec.shape is not Shape.TEXT:
        return _compare(col, op, values)
    text = str(values[0])
    if not text and spec.empty_means_not_null:
        return f"{col} IS NOT NULL", []
    target, needle = (f"mev_lower({col})", text.lower()) if spec.ignore_case else (col, text)
    if spec.match is Match.WHOLE:
        return f"{target} = ?", [needle]
    if spec.match is Match.CONTAINS:
        return f"instr({target}, ?) > 0", [needle]
    if spec.match is Match.PREFIX:
        return f"substr({target}, 1, ?) = ?", [len(needle), needle]
    if spec.match is Match.SUFFIX:
        return f"substr({target}, ?) = ?", [-len(needle), needle]
    raise AssertionError(f"operator {op} reached the SQLite compiler unvalidated")


def _any_of(terms: list[str]) -> str:
    """`terms` ORed as a balanced tree: a flat chain of 1000+ terms would pass
    SQLite's expression depth limit (1000), which IN with 10,000 tags reaches."""
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return f"({_any_of(terms[:middle])} OR {_any_of(terms[middle:])})"


def _compare(
    expr: str, op: int, values: list[Any], prefix: list[Any] | None = None
) -> tuple[str, list[Any]]:
    head = list(prefix or [])
    if op == spb.OPERATOR_IN:
        if not values:
            return "0", []
        marks = ", ".join("?" for _ in values)
        return f"{expr} IN ({marks})", head + values
    return f"{expr} {BY_VALUE[op].symbol} ?", head + values
