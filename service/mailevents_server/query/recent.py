"""Small bounded memories that make offset walks linear.

An offset-paged client (Tastypie's `next`, SparkPost's `page=N`) asks for the
page right after the one it was just given, with the same query. Two things
would make such a walk quadratic even with the skip done in SQL: stepping over
every earlier page again, and counting every match again for each page's
total. `PagePositions` remembers where recent pages ended, so that the
follow-on page resumes from that keyset position instead of skipping; and
`Counts` remembers totals for as long as nothing new was committed.

Both are per process and forget the least recently used entry first, so
memory stays bounded whatever the clients do; a miss only costs what the
request would have cost without them.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from mailevents_server.query.model import Query

K = TypeVar("K")
V = TypeVar("V")

#: Entries each memory keeps: enough for hundreds of concurrent walks.
DEFAULT_SIZE = 4096


class _Recent(Generic[K, V]):
    """A least-recently-used map of bounded size."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


#: (tenant, query fingerprint, offset) -> the (timestamp_us, id) of the last
#: event before that offset, as a page ending there found it.
PositionKey = tuple[int, bytes, int]


class PagePositions(_Recent[PositionKey, tuple[int, int]]):
    """Where recently served offset pages ended, per tenant and query.

    A page at offset `o` resumes from the position remembered for `o`. The
    result is the keyset continuation of the page before it: events that were
    there when the walk began are neither repeated nor skipped, even when
    newer events have since shifted the offsets (a pure OFFSET would repeat
    or skip them).
    """


#: (tenant, query fingerprint, commit position) -> total
CountKey = tuple[int, bytes, int]


class Counts(_Recent[CountKey, int]):
    """Totals of recent queries, valid while the store's commit position stands.

    A new commit moves the position and so misses every entry; retention's
    deletes do not move it, so a total may stay high by the removed events
    until the next commit.
    """


class OffsetWalks:
    """What the service remembers of offset walks: page ends and totals."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.positions = PagePositions(size)
        self.counts = Counts(size)

    def skipping(self, query: Query, fp: bytes, skip: int, *, from_start: bool) -> Query:
        """Skip `skip` matches: from where the page before ended when that is known.

        An offset walk's follow-on page (same tenant and query, offset right
        after a page just served) resumes from that page's last position, so
        a walk costs each page once; any other offset is skipped in SQL. A
        skip after a token counts from the token and is never looked up.
        """
        if skip and from_start:
            position = self.positions.get((query.tenant_id, fp, skip))
            if position is not None:
                return dataclasses.replace(query, after=position)
        return dataclasses.replace(query, skip=skip)

    def ended_at(
        self,
        tenant: int,
        fp: bytes,
        offset: int,
        last: tuple[int, int, bytes] | None,
        query: Query,
    ) -> None:
        """Remember where the page of this query ending at `offset` ended.

        On its last row; or, when it had none, where it began if that was a
        remembered position (a walk past the end stays at the end).
        """
        if last is not None:
            self.positions.put((tenant, fp, offset), (last[0], last[1]))
        elif query.after is not None:
            self.positions.put((tenant, fp, offset), query.after)

    async def total(
        self,
        query: Query,
        fp: bytes,
        commit_position: Callable[[], Awaitable[int]],
        count: Callable[[Query], Awaitable[int]],
    ) -> int:
        """The query's count, counted again only when something was committed since."""
        key = (query.tenant_id, fp, await commit_position())
        total = self.counts.get(key)
        if total is None:
            total = await count(query)
            self.counts.put(key, total)
        return total
