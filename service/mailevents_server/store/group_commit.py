"""Group commit, shared by the stores: many callers' writes, one transaction.

Each store has one writer task draining a queue. Whatever is queued while a
transaction runs goes into the next one together, so a burst of small
batches from many producers costs a few large commits, and each caller still
gets its own result once its events are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from mailevents_server import faults, tracing
from mailevents_server.ingest import PreparedEvent
from mailevents_server.metrics import UNSERVED, Metrics
from mailevents_server.store.base import WriteResult

log = logging.getLogger(__name__)

#: Events merged into one transaction at most.
MAX_EVENTS_PER_COMMIT = 50_000


@dataclass
class WriteRequest:
    """One caller's batch, and the future its result (or error) arrives on."""

    tenant_id: int
    events: Sequence[PreparedEvent]
    done: asyncio.Future[list[WriteResult]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


WriteQueue = asyncio.Queue[WriteRequest | None]
Commit = Callable[[list[WriteRequest]], Awaitable[list[list[WriteResult]]]]


async def submit(
    queue: WriteQueue, writer: asyncio.Task[None] | None, request: WriteRequest
) -> list[WriteResult]:
    """Queue a request and wait until it is durable (or failed)."""
    if writer is None or writer.done():
        raise faults.StoreClosed("store is closed")
    await queue.put(request)
    # Shielded: a caller that gives up must not cancel a commit others share.
    # Bounded by the call's deadline: a store stalled on a lock is answered
    # with UNAVAILABLE in time. The commit may still succeed afterwards; the
    # caller's retry then finds its events stored (as duplicates).
    try:
        async with asyncio.timeout(faults.call_budget()):
            return await asyncio.shield(request.done)
    except TimeoutError:
        raise faults.StoreTimeout(
            "the write was not committed within the call's deadline"
        ) from None


async def run_writer(
    queue: WriteQueue,
    commit: Commit,
    *,
    committed: Callable[[], None],
    failed: Callable[[], Awaitable[None]] | None = None,
    metrics: Callable[[], Metrics] = lambda: UNSERVED,
) -> None:
    """Drain `queue` into transactions until a None arrives (after what precedes it).

    `metrics` is asked for on each commit: a server sets its store's after the
    store may have opened."""
    closing = False
    while not closing:
        first = await queue.get()
        if first is None:
            break
        batch = [first]
        total = len(first.events)
        while total < MAX_EVENTS_PER_COMMIT and not queue.empty():
            item = queue.get_nowait()
            if item is None:
                closing = True
                break
            batch.append(item)
            total += len(item.events)
        started = time.perf_counter()
        try:
            # A span of its own: one commit merges many callers' batches.
            with tracing.span("store.commit", {"batches": len(batch), "events": total}):
                results = await commit(batch)
        except Exception as exc:  # every waiter learns; the loop goes on
            if faults.classify(exc) is None:
                log.exception("write transaction failed")
            else:  # a store fault: each refused caller logs it, once
                log.debug("write transaction failed: %s", faults.cause(exc))
            metrics().commit_failures.inc()
            if failed is not None:
                await failed()
            for request in batch:
                if not request.done.done():
                    request.done.set_exception(exc)
        else:
            committed()
            # Per transaction, not per event: three observations for up to 50,000 events.
            observed = metrics()
            observed.commit_seconds.observe(time.perf_counter() - started)
            observed.commit_events.observe(total)
            observed.commit_batches.observe(len(batch))
            for request, result in zip(batch, results, strict=True):
                if not request.done.done():
                    request.done.set_result(result)
