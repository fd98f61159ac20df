"""Preparing large ingest batches in worker processes.

`ingest.prepare` is Python work of ~13 µs an event (validation, 44 typed
columns, serialization). In the server process it competes for the GIL with
the SQLite writer, which needs it to bind every row, and with the event loop;
the three then take turns on one core. A worker process prepares on another
core instead: it receives the request's bytes (one C call to serialize),
returns plain tuples (pickled in C), and the server process only rebuilds the
small `PreparedEvent`s around them.

Small batches (at most 256 events) are prepared in the event loop, where a
round trip to a worker would cost more than the work. The workers start with
the first large batch; when they cannot (or one dies), batches are prepared
in a thread, as without workers.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest import PreparedEvent, Rejection, prepare

log = logging.getLogger(__name__)

#: Batches up to this size are prepared in the event loop.
INLINE_MAX = 256


def default_workers() -> int:
    """The cores left beside the server's own process, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


Prepared = tuple[list[PreparedEvent], list[Rejection]]


class PreparePool:
    """`prepare` for the ingest RPCs: inline, in worker processes, or in a thread."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def prepare(self, events: Sequence[pb.MessageEvent], request: Any) -> Prepared:
        """`events` prepared; `request` is the message they came in (events in field 1).

        Both ingest requests keep their events in field 1, so a worker parses
        either one's bytes as an IngestMessageEventsRequest.
        """
        if len(events) <= INLINE_MAX:
            return prepare(events)
        if self._workers <= 0:
            return await asyncio.to_thread(prepare, events)
        if self._pool is None:
            # spawn: a fresh interpreter, not a fork of one running gRPC threads.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        loop = asyncio.get_running_loop()
        data = request.SerializeToString()
        try:
            ready, rejected = await loop.run_in_executor(self._pool, _prepare_bytes, data)
        except BrokenProcessPool:
            log.exception("an ingest worker process died; preparing in a thread")
            self._pool = None
            return await asyncio.to_thread(prepare, events)
        return (
            [PreparedEvent(*fields) for fields in ready],
            [Rejection(*fields) for fields in rejected],
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _prepare_bytes(
    data: bytes,
) -> tuple[list[tuple[int, str, tuple[Any, ...], bytes]], list[tuple[int, str, str]]]:
    """In a worker: parse, prepare, and return plain tuples (cheaper to pickle)."""
    events = spb.IngestMessageEventsRequest.FromString(data).events
    ready, rejected = prepare(events)
    return (
        [(ev.index, ev.event_id, ev.columns, ev.body) for ev in ready],
        [(r.index, r.event_id, r.reason) for r in rejected],
    )
