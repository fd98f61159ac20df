"""Rendering a large SparkPost page on several cores.

Turning an event into SparkPost's JSON object is Python work on each field
(~10 µs an event; the JSON encoding itself is orjson's, in C). On a page of
10,000 events that is most of the request's time, and the GIL keeps it on one
core. So a large page is cut into contiguous shares: the worker processes
each get the bytes of the responses holding their share (as received from
the service, parsed again there in C) and return a JSON array; the event loop
renders the first share itself meanwhile; the arrays are then joined.

Why not store each event's SparkPost JSON at ingest and splice it, as the
gRPC path splices protobuf bytes: it measured +56% storage per event (about
720 bytes of JSON beside 450 of protobuf) and ~12 µs more ingest CPU per
event, paid by every event for a compatibility route. docs/dialects.md has
the figures.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import orjson

from mailevents.sparkpost import event_to_sparkpost
from mailevents.v1 import message_event_pb2 as ev_pb
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents_server.workers import Workers

from .client import RawBatch

#: Pages of at most this many events are rendered in the event loop alone.
INLINE_MAX = 1000


def sparkpost_json(events: Sequence[ev_pb.MessageEvent]) -> bytes:
    """The JSON array of `events` as SparkPost objects."""
    return orjson.dumps([event_to_sparkpost(event) for event in events])


async def sparkpost_page(
    workers: Workers, events: Sequence[ev_pb.MessageEvent], batches: Sequence[RawBatch]
) -> bytes:
    """`sparkpost_json(events)`, rendered on the workers too when the page is large.

    `batches` are the responses `events` came in, in order; they may hold more
    events after the last of `events` (a peeked one), which are not rendered.
    """
    total = len(events)
    if total <= INLINE_MAX or workers.count == 0:
        return sparkpost_json(events)
    share = math.ceil(total / (workers.count + 1))
    jobs = [
        asyncio.ensure_future(workers.run(_render_slice, data, start, stop))
        for begin in range(share, total, share)
        for data, start, stop in _slices(batches, begin, min(begin + share, total))
    ]
    await asyncio.sleep(0)  # let each job reach its worker before rendering here
    try:
        mine = sparkpost_json(events[:share])
        theirs = await asyncio.gather(*jobs)
    finally:
        for job in jobs:
            job.cancel()
    return join_arrays([mine, *theirs])


def _slices(batches: Sequence[RawBatch], begin: int, end: int) -> list[tuple[bytes, int, int]]:
    """(batch bytes, start, stop) covering events [begin, end) of the page."""
    out = []
    offset = 0
    for batch in batches:
        start, stop = max(begin, offset), min(end, offset + batch.count)
        if start < stop:
            out.append((batch.data, start - offset, stop - offset))
        offset += batch.count
    return out


def _render_slice(data: bytes, start: int, stop: int) -> bytes:
    """In a worker: events [start, stop) of one SearchMessageEventsResponse, as JSON."""
    return sparkpost_json(pb.SearchMessageEventsResponse.FromString(data).events[start:stop])


def join_arrays(arrays: Sequence[bytes]) -> bytes:
    """One JSON array of the elements of `arrays`, in order."""
    return b"[" + b",".join(array[1:-1] for array in arrays if len(array) > 2) + b"]"
