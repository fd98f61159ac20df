"""The store contract every backend implements (SQLite now, PostgreSQL for scale-out).

Reads return rows of (timestamp_us, id, stored) where `stored` is the event's
wire bytes as `wire.stored_event` frames them, so the servicer can splice
them into responses. Writes take `ingest.PreparedEvent`s. The contract tests
in tests/ run the same assertions against every backend.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from mailevents_server.ingest import PreparedEvent
from mailevents_server.query.model import Query

#: (timestamp_us, id, stored event bytes)
Row = tuple[int, int, bytes]


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class WriteResult:
    index: int
    event_id: str
    outcome: Outcome
    id: int


class Store(abc.ABC):
    """Where events, tenants and API keys live."""

    #: Streams currently reading; tests use it to see that a cancelled
    #: stream really stopped the store's work.
    open_streams: int = 0

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release every connection."""

    @abc.abstractmethod
    async def secret(self) -> bytes:
        """The key that signs page and resume tokens; created once per store."""

    @abc.abstractmethod
    async def tenant_for_key(self, key_hash: str) -> int | None:
        """The tenant an API key (by its hash) belongs to."""

    @abc.abstractmethod
    async def create_key(self, tenant: str, key_hash: str, label: str = "") -> int:
        """Store a key hash for a tenant (created when new); returns the tenant id."""

    @abc.abstractmethod
    async def write(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[WriteResult]:
        """Store events that are new for the tenant; report the others as duplicates.

        Returns when the events are durable. Ids are assigned in commit order.
        """

    @abc.abstractmethod
    def read(self, query: Query, batch_size: int) -> AsyncIterator[list[Row]]:
        """Every matching row in order, in lists of batch_size, with bounded memory."""

    @abc.abstractmethod
    async def page(self, query: Query, limit: int) -> list[Row]:
        """Up to `limit` matching rows in order."""

    @abc.abstractmethod
    async def get(self, tenant_id: int, *, id: int = 0, event_id: str = "") -> Row | None:
        """One event by store id or by event id."""

    @abc.abstractmethod
    async def count(self, query: Query) -> int:
        """How many rows match (ignoring `after`)."""

    @abc.abstractmethod
    async def group_counts(
        self, query: Query, group_by: int, time_zone: str, max_buckets: int
    ) -> list[tuple[str, int]]:
        """Counts per key of a GroupBy dimension: largest first, or time order for buckets."""

    @abc.abstractmethod
    async def last_id(self) -> int:
        """The highest committed id: the snapshot bound for a new read."""
