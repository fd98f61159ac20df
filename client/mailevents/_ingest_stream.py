"""`MailEventsClient.ingest_stream`: batches over one IngestMessageEventsStream, acks in order.

Three parts run at once: a feeder takes batches from the caller's source
(one task for the whole call, since cancelling a generator mid-item would
end it), a writer per connection sends them while at most `window` are
unacknowledged, and the caller's loop reads the acknowledgements. When a
connection drops, every batch not yet acknowledged is sent again on the
next one: the server stores each event_id once, so nothing is lost or
doubled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from mailevents.errors import MailEventsError
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_pb2 import MessageEvent

if TYPE_CHECKING:
    from mailevents.client import MailEventsClient

Batches = AsyncIterable[Sequence[MessageEvent]] | Iterable[Sequence[MessageEvent]]
_Request = pb.IngestMessageEventsStreamRequest


class IngestStream:
    """One `ingest_stream` call: its source, its unacknowledged batches, its connections."""

    def __init__(self, client: MailEventsClient, batches: Batches, window: int) -> None:
        self._client = client
        self._batches = batches
        self._window = max(1, window)
        #: (when sent, request) of every batch sent and not yet acknowledged, in order.
        self._unacked: collections.deque[tuple[float, _Request]] = collections.deque()
        self._ready: asyncio.Queue[_Request | BaseException | None] = asyncio.Queue(maxsize=1)
        self._room = asyncio.Event()
        self._exhausted = False

    async def acknowledgements(self) -> AsyncGenerator[pb.IngestMessageEventsStreamResponse, None]:
        feeder = asyncio.create_task(self._feed())
        acknowledged = 0
        retries = self._client._retries(self._client.max_reconnects)
        try:
            while True:
                call = self._client._service().IngestMessageEventsStream(
                    metadata=self._client._metadata
                )
                base = acknowledged  # the batch this connection's server numbers 0
                resend = [request for _, request in self._unacked]
                writer = asyncio.create_task(self._write(call, resend))
                try:
                    while (response := await self._next_ack(call, writer)) is not None:
                        retries.progress()
                        self._unacked.popleft()
                        self._room.set()
                        response.sequence += base
                        acknowledged = response.sequence + 1
                        yield response
                    await writer  # raises what the writer ran into
                    if self._exhausted and not self._unacked:
                        return
                except grpc.aio.AioRpcError as failed:
                    exc = await _final_status(call, failed)
                    error = MailEventsError.from_rpc_error(exc)
                    if error.retry_delay is not None or acknowledged:
                        # The server is there (it asked for a retry, or took
                        # batches before): the time budget governs, however
                        # often the status is lost in a write's local failure.
                        retries.max_attempts = None
                    # Every unacknowledged batch goes again on a new stream,
                    # whether the connection dropped or the store failed.
                    if not _dropped(exc) or not await retries.wait(
                        _as_unavailable(error), reached=True
                    ):
                        raise error from exc
                finally:
                    writer.cancel()
                    call.cancel()
        finally:
            feeder.cancel()

    async def _feed(self) -> None:
        try:
            if isinstance(self._batches, AsyncIterable):
                async for events in self._batches:
                    await self._ready.put(_Request(events=events))
            else:
                for events in self._batches:
                    await self._ready.put(_Request(events=events))
        except Exception as exc:  # the writer raises it in the caller's loop
            await self._ready.put(exc)
        else:
            await self._ready.put(None)

    async def _write(self, call: Any, resend: list[_Request]) -> None:
        for request in resend:
            await call.write(request)
        while not self._exhausted:
            while len(self._unacked) >= self._window:
                self._room.clear()
                await self._room.wait()
            item = await self._ready.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                self._exhausted = True
                break
            self._unacked.append((time.monotonic(), item))
            await call.write(item)
        await call.done_writing()

    async def _next_ack(
        self, call: Any, writer: asyncio.Task[None]
    ) -> pb.IngestMessageEventsStreamResponse | None:
        """The next acknowledgement, None at the end of the stream.

        DEADLINE_EXCEEDED when the oldest unacknowledged batch has waited
        longer than the client's `timeout`; a failed write is raised here.
        """
        timeout = self._client.timeout
        read = asyncio.ensure_future(call.read())
        try:
            while not read.done():
                # asyncio.wait() on the read and the writer together can miss the
                # read's completion until its timeout (grpc.aio); a shielded read
                # under asyncio.timeout() wakes at once.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await asyncio.shield(read)
                if writer.done() and not writer.cancelled() and writer.exception() is not None:
                    writer.result()
                oldest = self._unacked[0][0] if self._unacked else None
                if not read.done() and timeout and oldest is not None:
                    if time.monotonic() - oldest > timeout:
                        raise MailEventsError(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"a batch was not acknowledged by {self._client.address} "
                            f"within {timeout:g}s",
                        )
            response = read.result()
        finally:
            read.cancel()
        if response is grpc.aio.EOF:
            return None
        ack: pb.IngestMessageEventsStreamResponse = response
        return ack


async def _final_status(call: Any, exc: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
    """The server's status for a stream whose write failed locally.

    When the server ends the stream (the store failed: UNAVAILABLE with a
    RetryInfo) while a batch is being sent, grpc.aio marks the call INTERNAL
    ("Internal error from Core") at once, and puts the server's status in
    its place when that arrives, a moment later: wait for it, briefly.
    """
    if not _local_failure(exc):
        return exc
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            # Polled: grpc.aio tells of no status replaced after the first.
            while (code := await call.code()) == grpc.StatusCode.INTERNAL:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return grpc.aio.AioRpcError(
                code,
                await call.initial_metadata(),
                await call.trailing_metadata(),
                await call.details(),
            )
    return exc


def _as_unavailable(error: MailEventsError) -> MailEventsError:
    """A connection lost mid-write (a local INTERNAL, see `_dropped`) as what it is."""
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return error
    return MailEventsError(grpc.StatusCode.UNAVAILABLE, f"connection lost ({error.message})")


def _dropped(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call lost its connection, rather than being refused.

    A connection that breaks while a message is being written surfaces in
    grpc.aio as a local INTERNAL ("Internal error from Core"), not as
    UNAVAILABLE. Sending again is safe either way: ingest is idempotent.
    """
    return exc.code() == grpc.StatusCode.UNAVAILABLE or _local_failure(exc)


def _local_failure(exc: grpc.aio.AioRpcError) -> bool:
    """grpc.aio's own INTERNAL for a message it could not send."""
    return bool(
        exc.code() == grpc.StatusCode.INTERNAL and exc.details() == "Internal error from Core"
    )
