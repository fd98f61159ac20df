"""IngestMessageEventsStream as a pipeline: preparing, submitting and committing overlap.

Three stages run at once for one stream. A reader takes batches as they
arrive and starts preparing each straight away (in a worker process when it
is large, `ingest.pool`), so the event loop goes on reading the next
request meanwhile. A submitter hands the prepared batches to the store in
stream order, without waiting for their commits: the store's writer merges
whatever is queued into one transaction on its own thread. The servicer's
loop acknowledges each batch once its commit is durable. The window (a
semaphore released per acknowledgement) bounds how many batches are in any
stage, so a fast producer waits on gRPC flow control instead of filling
server memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import tracing
from mailevents_server.errors import invalid
from mailevents_server.ingest import PreparedEvent, Rejection
from mailevents_server.ingest.pool import Prepared, prepare_batch
from mailevents_server.store.base import Store, WriteResult
from mailevents_server.workers import Workers


@dataclass(frozen=True)
class Preparing:
    """A batch of an ingest stream being prepared."""

    sequence: int
    batch_id: str
    prepared: asyncio.Future[Prepared]
    received: float  # perf_counter() when the batch arrived


@dataclass(frozen=True)
class StreamBatch:
    """A batch of an ingest stream on its way to the store."""

    sequence: int
    batch_id: str
    rejected: list[Rejection]
    write: asyncio.Future[list[WriteResult]]
    received: float  # perf_counter() when the batch arrived


async def accept(
    requests: AsyncIterator[spb.IngestMessageEventsStreamRequest],
    window: asyncio.Semaphore,
    workers: Workers,
    max_events: int,
    preparing: asyncio.Queue[Preparing | Exception | None],
) -> None:
    """Read batches and start preparing each as soon as it arrives; ends with None."""
    sequence = 0
    try:
        async for request in requests:
            received = time.perf_counter()
            await window.acquire()
            count = len(request.events)
            if count > max_events:
                preparing.put_nowait(
                    invalid(
                        f"requests[{sequence}].events",
                        f"send at most {max_events} events per batch, not {count}",
                    )
                )
                return
            prepared = asyncio.ensure_future(prepare_batch(workers, request.events, request))
            prepared.add_done_callback(retrieve)
            preparing.put_nowait(Preparing(sequence, request.batch_id, prepared, received))
            sequence += 1
    except Exception as exc:  # the sender raises it after the acknowledgements before
        preparing.put_nowait(exc)
    finally:
        preparing.put_nowait(None)


async def submit(
    store: Store,
    tenant: int,
    preparing: asyncio.Queue[Preparing | Exception | None],
    accepted: asyncio.Queue[StreamBatch | Exception | None],
) -> None:
    """Hand prepared batches to the store in stream order, without waiting for commits.

    In order, so that within a stream the first copy of a repeated event_id
    is the one stored, as when the batches are sent one at a time.
    """
    try:
        while (item := await preparing.get()) is not None:
            if isinstance(item, Exception):
                accepted.put_nowait(item)
                return
            ready: list[PreparedEvent]
            ready, rejected = await item.prepared
            write = asyncio.ensure_future(_write(store, tenant, ready))
            # Retrieved here too, so that a stream gone before its
            # acknowledgement leaves no "exception never retrieved".
            write.add_done_callback(retrieve)
            accepted.put_nowait(
                StreamBatch(item.sequence, item.batch_id, rejected, write, item.received)
            )
    except Exception as exc:
        accepted.put_nowait(exc)
    finally:
        accepted.put_nowait(None)


async def _write(store: Store, tenant: int, ready: list[PreparedEvent]) -> list[WriteResult]:
    """`store.write` under a span of the stream's call (a no-op with tracing off)."""
    with tracing.span("store.write", {"events": len(ready)}):
        return await store.write(tenant, ready)


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (its consumer may be gone)."""
    if not future.cancelled():
        future.exception()
