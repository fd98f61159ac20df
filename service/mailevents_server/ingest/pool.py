"""Preparing large ingest batches in worker processes.

`ingest.prepare` is Python work of ~13 µs an event (validation, 44 typed
columns, serialization). In the server process it competes for the GIL with
the SQLite writer, which needs it to bind every row, and with the event loop;
the three then take turns on one core. A worker process prepares on another
core instead: it receives the request's bytes (one C call to serialize),
returns plain tuples as one `marshal` blob (2.5x cheaper to write than a
pickle of the same tuples; both ends run the same interpreter), and the
server process only rebuilds the small `PreparedEvent`s around them.

Small batches (at most 256 events) are prepared in the event loop, where a
round trip to a worker would cost more than the work.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from typing import Any

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest.prepare import PreparedEvent, Rejection, prepare
from mailevents_server.workers import Workers

#: Batches up to this size are prepared in the event loop.
INLINE_MAX = 256

Prepared = tuple[list[PreparedEvent], list[Rejection]]


async def prepare_batch(
    workers: Workers, events: Sequence[pb.MessageEvent], request: Any
) -> Prepared:
    """`events` prepared; `request` is the message they came in (events in field 1).

    Both ingest requests keep their events in field 1, so a worker parses
    either one's bytes as an IngestMessageEventsRequest.
    """
    if len(events) <= INLINE_MAX:
        return prepare(events)
    return from_blob(await workers.run(_prepare_bytes, request.SerializeToString()))


def to_blob(events: Sequence[pb.MessageEvent]) -> bytes:
    """`prepare(events)` as one marshal blob, for a worker to send back."""
    ready, rejected = prepare(events)
    return marshal.dumps(
        (
            [(ev.index, ev.event_id, ev.columns, ev.body) for ev in ready],
            [(r.index, r.event_id, r.reason) for r in rejected],
        )
    )


def from_blob(blob: bytes) -> Prepared:
    """What `to_blob` prepared, in the server process."""
    ready, rejected = marshal.loads(blob)
    return (
        [PreparedEvent(*fields) for fields in ready],
        [Rejection(*fields) for fields in rejected],
    )


def _prepare_bytes(data: bytes) -> bytes:
    """In a worker: parse an ingest request's bytes and prepare its events."""
    return to_blob(spb.IngestMessageEventsRequest.FromString(data).events)
