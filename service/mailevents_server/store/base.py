"""The store contract every backend implements (SQLite now, PostgreSQL for scale-out).

Reads return rows of (timestamp_us, id, stored) where `stored` is the event's
wire bytes as `wire.stored_event` frames them, so the servicer can splice
them into responses. Writes take `ingest.PreparedEvent`s. The contract tests
in tests/ run the same assertions against every backend.
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from mailevents_server.ingest import PreparedEvent
from mailevents_server.metrics import UNSERVED, Metrics
from mailevents_server.query.model import Query

#: How many leading hex digits of a key's hash name it in `keys list` / `keys revoke`.
KEY_ID_LENGTH = 12

#: (timestamp_us, id, stored event bytes)
Row = tuple[int, int, bytes]


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class WriteResult:
    index: int
    event_id: str
    outcome: Outcome
    id: int


@dataclass(frozen=True)
class KeyInfo:
    """What can be shown of a key: never the key, which is stored only as a hash."""

    key_id: str
    tenant: str
    label: str
    created_us: int


@dataclass(frozen=True)
class Watermark:
    """How far a tenant's commit order had reached, and when that was seen.

    Every event of the tenant with id <= `position` is committed, and none
    will ever be committed with an id <= `position` later. So every event of
    the tenant committed before `time_us` (wall clock, microseconds since
    the epoch) has an id <= `position`: a reader that has seen every row of
    the tenant up to `position` has seen everything committed before
    `time_us`. Commit order is per tenant: ids of different tenants are not
    comparable (PostgreSQL numbers each tenant's events on their own).
    """

    position: int
    time_us: int


class Store(abc.ABC):
    """Where events, tenants and API keys live."""

    #: Streams currently reading; tests use it to see that a cancelled
    #: stream really stopped the store's work.
    open_streams: int = 0
    #: Where the store counts commits, statistics refreshes and retention; the
    #: server sets its own (by default they are counted and never exported).
    metrics: Metrics = UNSERVED

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
    async def list_keys(self) -> list[KeyInfo]:
        """Every API key: its id (a prefix of its hash), tenant, label and creation time."""

    @abc.abstractmethod
    async def revoke_key(self, key_id: str) -> int:
        """Delete the keys whose hash starts with `key_id`; returns how many."""

    @abc.abstractmethod
    async def write(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[WriteResult]:
        """Store events that are new for the tenant; report the others as duplicates.

        Returns when the events are durable. Ids are assigned in the tenant's
        commit order, unique within the tenant. Writes of different tenants
        need not wait for each other.
        """

    @abc.abstractmethod
    def read(
        self, query: Query, batch_size: int, limit: int | None = None
    ) -> AsyncIterator[list[Row]]:
        """Every matching row in order (the first `limit`), in lists of batch_size,
        with bounded memory. The limit lets the database stop early, e.g. sort only
        the first rows when no index gives the order."""

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
    async def delete_before(self, cutoff_us: int) -> int:
        """Remove events with a timestamp before cutoff_us (retention); returns how many.

        Runs alongside normal traffic: in small batches or by dropping whole
        partitions, never one long transaction that blocks readers or writers.
        """

    @abc.abstractmethod
    async def retention_floor(self, tenant_id: int) -> int:
        """The highest id retention has removed from the tenant's events (0: none).

        A live stream resumed from a position below it may have missed events
        committed after that position and removed before the stream resumed:
        the service refuses such a resume rather than skip them silently.
        """

    @abc.abstractmethod
    async def last_id(self, tenant_id: int) -> int:
        """The tenant's highest committed id: the snapshot bound for a new read.

        Live streams rely on a tenant's ids being assigned in its commit
        order with no later commit below this value (see `Watermark`): a
        backend whose transactions draw ids concurrently must serialize a
        tenant's commits to keep that true. A backend may answer with a
        position shared by all tenants (SQLite: one writer, one order).
        """

    @abc.abstractmethod
    async def skip_positions(self, count: int) -> None:
        """Put `count` unused positions before every tenant's next commit.

        For a database restored from a backup: the store it replaces may have
        committed past the backup, and consumers may hold resume tokens from
        there. With the gap, every event committed from now on is above any
        such token, so resuming from one skips none of them. Call it before
        serving, with no writes in flight.
        """

    # -- live streams ----------------------------------------------------------

    async def watermark(self, tenant_id: int) -> Watermark:
        """The tenant's highest committed id, with a time taken just before it was read."""
        seen_us = time.time_ns() // 1000
        return Watermark(await self.last_id(tenant_id), seen_us)

    @abc.abstractmethod
    async def wait_for_commit(self, tenant_id: int, position: int, max_wait: float) -> None:
        """Return soon after an event of the tenant with an id > `position` is
        committed, or after `max_wait` s.

        Commits made through this store object must wake waiters at once
        (well under 100 ms); commits by other processes sharing the database
        within `max_wait` at the latest (a poll is enough). Returning early
        is allowed: callers re-read `watermark()` and the rows, and wait
        again if nothing is new. Many streams wait at once; a commit wakes
        them all.
        """

    @abc.abstractmethod
    async def read_after(self, query: Query, position: int, limit: int) -> list[Row]:
        """Up to `limit` matching rows with `position` < id <= `query.max_id`, in id order.

        Commit order, not timestamp order: `query.descending` and
        `query.after` are not used; the predicates and the time bounds are.
        `query.max_id` is always set (to a `watermark().position`). Plan it
        on (tenant_id, id), so that following the tail of a large tenant
        costs only the new rows.
        """
