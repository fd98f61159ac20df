"""Live streams: following the store's commit order (WatchMessageEvents, search with follow).

The position of a live stream is an event id. A tenant's ids are assigned
in its commit order and no event of it is ever committed below its highest
committed id (the store's `Watermark`, per tenant), so "every matching event
with an id in (p, P]" is a complete, final answer once P has been
committed: a stream that remembers p misses nothing and repeats nothing,
across reconnects and server restarts, although events arrive far out of
timestamp order. Timestamps would not do:
a late event with an old timestamp lands behind any time-based cursor.

`follow` is the loop: read the watermark, read the matching rows above the
stream's position up to it, send them; when caught up, wait for the store's
next commit (or a heartbeat's due time) and repeat. Memory is one batch:
the next rows are read only after the previous message was written, and a
write waits for the client (gRPC flow control), so a slow consumer holds up
only its own stream, never the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import wire
from mailevents_server.errors import ServiceError, Violation
from mailevents_server.projection import Projection
from mailevents_server.query.model import Query
from mailevents_server.query.tokens import LivePosition, TokenCodec
from mailevents_server.store.base import Row, Store

DEFAULT_HEARTBEAT_SECONDS = 5.0
MIN_HEARTBEAT_SECONDS = 0.1
MAX_HEARTBEAT_SECONDS = 3600.0
#: The longest a caught-up stream sleeps before looking at the store again,
#: so that commits made by another process (which this one's commit hub
#: cannot hear) are picked up this late at most.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class LiveBatch:
    """Rows committed after the previous batch, in id order, and how far they reach.

    `position`: every matching row with an id <= position has now been
    sent. `time_us`: the watermark time when the batch brought the stream
    level with the store; 0 while catching up (more rows may be waiting).
    An empty `rows` is a heartbeat.
    """

    rows: list[Row]
    position: int
    time_us: int


def cut(batch: LiveBatch, limit: int) -> LiveBatch:
    """The batch with at most `limit` rows (no limit when negative), reaching its last row."""
    if limit < 0 or len(batch.rows) <= limit:
        return batch
    rows = batch.rows[:limit]
    return LiveBatch(rows, rows[-1][1], 0)


def heartbeat_seconds(
    interval: duration_pb2.Duration, has_interval: bool, field: str, out: list[Violation]
) -> float:
    """The heartbeat interval a request asks for, validated; the default when unset."""
    if not has_interval:
        return DEFAULT_HEARTBEAT_SECONDS
    seconds = interval.seconds + interval.nanos / 1e9
    if not MIN_HEARTBEAT_SECONDS <= seconds <= MAX_HEARTBEAT_SECONDS:
        out.append(
            Violation(
                field,
                f"must be between {MIN_HEARTBEAT_SECONDS:g}s and {MAX_HEARTBEAT_SECONDS:g}s "
                f"({DEFAULT_HEARTBEAT_SECONDS:g}s when unset)",
            )
        )
        return DEFAULT_HEARTBEAT_SECONDS
    return seconds


async def check_position(store: Store, tenant_id: int, position: int, field: str) -> None:
    """Refuse a resume position that cannot deliver every event committed after it:
    one the store has not reached (it cannot come from this store), or one
    retention has since removed events after (they would be skipped silently)."""
    if position > (await store.watermark(tenant_id)).position:
        raise ServiceError(
            f"{field}: the token is ahead of this store's commits; was the database "
            "restored from a backup? Start a new stream without a token",
            "TOKEN_AHEAD_OF_STORE",
            grpc.StatusCode.FAILED_PRECONDITION,
            (Violation(field, "ahead of the store's last commit"),),
        )
    if position < await store.retention_floor(tenant_id):
        raise ServiceError(
            f"{field}: retention has removed events committed after this token's "
            "position, so resuming would skip them. Start again without a token "
            "(a search with follow re-reads what is still stored)",
            "TOKEN_BEHIND_RETENTION",
            grpc.StatusCode.FAILED_PRECONDITION,
            (Violation(field, "older than events retention has removed"),),
        )


class Shutdown:
    """Set when the server stops: live streams end at once instead of holding up the
    graceful shutdown for its whole grace period, and tell their clients to reconnect."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def error(self) -> ServiceError:
        return ServiceError(
            "the server is shutting down; reconnect with the last resume_token",
            "SHUTTING_DOWN",
            grpc.StatusCode.UNAVAILABLE,
        )


async def follow(
    store: Store,
    query: Query,
    position: int,
    batch_size: int,
    heartbeat: float,
    *,
    announce: bool = False,
    shutdown: Shutdown | None = None,
) -> AsyncIterator[LiveBatch]:
    """Every matching row committed after `position`, forever, with heartbeats while idle.

    With `announce`, the first batch is sent at once even when empty, so
    that a new stream hands its consumer a resume token before any event
    arrives. The caller writes each batch before asking for the next one,
    which is what bounds memory and gives backpressure. When `shutdown` is
    set, the stream ends with UNAVAILABLE (its client resumes elsewhere).
    """
    live = dataclasses.replace(query, after=None)
    last_sent = time.monotonic() - (heartbeat if announce else 0.0)
    store.metrics.live_streams.inc()
    try:
        async for batch in _follow(
            store, live, position, batch_size, heartbeat, last_sent, shutdown
        ):
            yield batch
    finally:
        store.metrics.live_streams.dec()


async def _follow(
    store: Store,
    live: Query,
    position: int,
    batch_size: int,
    heartbeat: float,
    last_sent: float,
    shutdown: Shutdown | None,
) -> AsyncIterator[LiveBatch]:
    """`follow`'s loop."""
    while True:
        if shutdown is not None and shutdown.event.is_set():
            raise shutdown.error()
        # Shielded: a stream cancelled mid-query (its client went away) lets the
        # short query finish, rather than interrupting a pooled connection.
        mark = await asyncio.shield(store.watermark(live.tenant_id))
        rows: list[Row] = []
        if mark.position > position:
            bounded = dataclasses.replace(live, max_id=mark.position)
            rows = await asyncio.shield(store.read_after(bounded, position, batch_size))
        if len(rows) == batch_size:
            # More may be waiting below the watermark: the batch reaches its last row only.
            position = rows[-1][1]
            store.metrics.live_lag.observe(mark.position - position)
            yield LiveBatch(rows, position, 0)
            last_sent = time.monotonic()
            continue
        # Nothing else matches up to the watermark: the stream is level with the store.
        position = max(position, mark.position)
        idle = time.monotonic() - last_sent
        if rows or idle >= heartbeat:
            if rows:
                store.metrics.live_lag.observe(0)
            else:
                store.metrics.live_heartbeats.inc()
            yield LiveBatch(rows, position, mark.time_us)
            last_sent = time.monotonic()
            continue
        await _wait(store, live.tenant_id, position, min(heartbeat - idle, POLL_SECONDS), shutdown)


async def _wait(
    store: Store, tenant_id: int, position: int, max_wait: float, shutdown: Shutdown | None
) -> None:
    """Until the tenant's commit beyond `position`, `max_wait` seconds, or the shutdown."""
    if shutdown is None:
        await store.wait_for_commit(tenant_id, position, max_wait)
        return
    waits = {
        asyncio.ensure_future(store.wait_for_commit(tenant_id, position, max_wait)),
        asyncio.ensure_future(shutdown.event.wait()),
    }
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def watermark_field(field_number: int, position: int, time_us: int) -> bytes:
    """A response's `Watermark` field, ready to append to spliced response bytes."""
    mark = spb.Watermark(position=position)
    if time_us:
        mark.time.FromMicroseconds(time_us)
    return wire.length_delimited(field_number, mark.SerializeToString())


# -- the live part of a stream, as response bytes ----------------------------------


@dataclass(frozen=True)
class TailSpec:
    """What a live tail streams: whose events, which, in what shape, in which response."""

    tenant: int
    fp: bytes  # the query's fingerprint, bound into resume tokens
    query: Query
    mask: Projection | None
    batch_size: int
    heartbeat: float
    #: SearchMessageEventsResponse or WatchMessageEventsResponse: where the resume
    #: token and the watermark go (their field numbers differ between the two).
    response: type[spb.SearchMessageEventsResponse] | type[spb.WatchMessageEventsResponse]


class Tails:
    """The live part of watches and followed searches: batches as response bytes."""

    def __init__(self, store: Store, codec: TokenCodec, shutdown: Shutdown) -> None:
        self._store = store
        self._codec = codec
        self._shutdown = shutdown

    async def stream(
        self, spec: TailSpec, position: int, remaining: int, *, announce: bool
    ) -> AsyncIterator[tuple[list[bytes], int]]:
        """Each batch committed after `position` as response bytes, with how many
        events it carried, until `remaining` events (-1: no end) have gone out."""
        batches = follow(
            self._store,
            spec.query,
            position,
            spec.batch_size,
            spec.heartbeat,
            announce=announce,
            shutdown=self._shutdown,
        )
        async with contextlib.aclosing(batches):  # type: ignore[type-var]
            async for batch in batches:
                part = cut(batch, remaining)
                yield self._messages(spec, part), len(part.rows)
                if remaining >= 0:
                    remaining -= len(part.rows)
                    if remaining == 0:
                        return

    def _messages(self, spec: TailSpec, batch: LiveBatch) -> list[bytes]:
        """A live batch as response bytes: events, a live resume token and the watermark.

        A batch too large for one message is split; each part's token and
        watermark reach its own last event.
        """
        chunks = wire.chunks(batch.rows) or [[]]
        out = []
        for i, chunk in enumerate(chunks):
            if i == len(chunks) - 1:
                position, time_us = batch.position, batch.time_us
            else:
                position, time_us = chunk[-1][1], 0
            out.append(self.message(spec, chunk, position, time_us))
        return out

    def message(self, spec: TailSpec, rows: list[Row], position: int, time_us: int) -> bytes:
        """One response: `rows`, then the live token and watermark of `position`."""
        token = self._codec.encode_live(LivePosition(spec.tenant, spec.fp, position))
        return wire.events_bytes(
            rows,
            spec.mask,
            wire.length_delimited(spec.response.RESUME_TOKEN_FIELD_NUMBER, token.encode())
            + watermark_field(spec.response.WATERMARK_FIELD_NUMBER, position, time_us),
        )
