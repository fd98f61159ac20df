"""The validated, store-neutral form of a query.

Stores compile this and nothing else: by the time a `Query` exists, every
field is known, every value is parsed to its Python type and the tenant is
fixed, so a store never sees a dialect's parameters or a raw request.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailevents_server.query.fields import Field

Value = str | int | bool


@dataclass(frozen=True)
class Predicate:
    """`field operator values`, with values already parsed for the field's kind.

    With a `date_part`, the values are integers compared with that part of the
    timestamp taken in `time_zone`. IS_NULL carries one bool: True for "is null".
    Text values of the case-insensitive operators are kept as given; the store
    lowercases both sides the same way.
    """

    field: Field
    operator: int
    values: tuple[Value, ...]
    date_part: int = 0
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Query:
    """Which events of one tenant, in which order, from where."""

    tenant_id: int
    predicates: tuple[Predicate, ...] = ()
    #: Inclusive lower / exclusive upper bound on the timestamp, in microseconds.
    start_us: int | None = None
    end_us: int | None = None
    descending: bool = True
    #: Order by id (commit order) instead of (timestamp, id).
    by_id: bool = False
    #: With (timestamp, id): ties on timestamp go by id in the other direction.
    mixed: bool = False
    #: Keyset position (timestamp_us, id): only events strictly beyond it in
    #: the query's order. How paging and stream resumption work, never OFFSET.
    after: tuple[int, int] | None = None
    #: Snapshot bound: only events with id <= max_id (ids grow in commit
    #: order), so that paging sees the store as it was on the first page.
    max_id: int | None = None
    #: Matching rows to step over (after `after`) before the first one read:
    #: an offset page's skip, done by the store over its index (AIP-158).
    skip: int = 0
