"""The streaming reads of `MailEventsClient`: searches and watches that resume.

A mixin, so that the client's own module stays about connecting and calling,
and this one about streams: how long to wait for the next message, how a
dropped stream resumes from its last token (`retry.resuming`), and what a
resumed stream still owes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from mailevents.connection import Connection
from mailevents.errors import MailEventsError, mapped_rpc_errors
from mailevents.retry import Retries, resuming
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_pb2 import MessageEvent

__all__ = ["ReadMask", "StreamingCalls", "field_mask"]

#: Fields to return: a FieldMask, "a,b,c", or field names.
ReadMask = FieldMask | str | Iterable[str]


class StreamingCalls:
    """SearchMessageEvents and WatchMessageEvents, as `MailEventsClient` offers them."""

    # Provided by MailEventsClient.
    address: str
    timeout: float | None
    max_reconnects: int
    _connection: Connection
    _metadata: tuple[tuple[str, str], ...]
    _reached: bool

    def _retries(self, max_attempts: int | None = None) -> Retries:
        raise NotImplementedError

    async def search(
        self,
        query: pb.EventQuery | None = None,
        *,
        read_mask: ReadMask | None = None,
        batch_size: int = 1000,
        max_events: int = 0,
        resume_token: str = "",
        follow: bool = False,
        heartbeat_interval: float | None = None,
    ) -> AsyncGenerator[MessageEvent, None]:
        """Every matching event, newest first unless the query says otherwise.

        With `follow`, the stream goes on after the history with each
        matching event as it is committed (see `search_batches`).

        Break out of the loop freely: the stream is cancelled when the
        iterator is closed (wrap it in `contextlib.aclosing` to close it at
        once rather than when it is garbage collected).
        """
        batches = self.search_batches(
            query,
            read_mask=read_mask,
            batch_size=batch_size,
            max_events=max_events,
            resume_token=resume_token,
            follow=follow,
            heartbeat_interval=heartbeat_interval,
        )
        async for event in _events_of(batches):
            yield event

    async def search_batches(
        self,
        query: pb.EventQuery | None = None,
        *,
        read_mask: ReadMask | None = None,
        batch_size: int = 1000,
        max_events: int = 0,
        resume_token: str = "",
        follow: bool = False,
        heartbeat_interval: float | None = None,
    ) -> AsyncGenerator[pb.SearchMessageEventsResponse, None]:
        """The raw streamed responses: batches with resume tokens, then one with stats.

        With `follow`, the history is followed by live events as they are
        committed, with no gap or repeat at the seam, and by empty heartbeat
        messages every `heartbeat_interval` seconds (the server's 5 s by
        default) while idle; the stream then ends only when `max_events`
        are delivered or the caller stops. Messages from the end of the
        history on carry a `watermark`.

        Save a batch's `resume_token` to continue later, after that batch,
        with the same query. After a transparent reconnect the final stats
        count only what the last connection streamed.
        """
        request = pb.SearchMessageEventsRequest(
            query=query,
            read_mask=field_mask(read_mask),
            batch_size=batch_size,
            max_events=max_events,
            resume_token=resume_token,
            follow=follow,
            heartbeat_interval=_duration(heartbeat_interval),
        )
        wait = self._live_wait(heartbeat_interval) if follow else self.timeout
        delivered = 0
        finished = False

        async def attempt() -> AsyncGenerator[pb.SearchMessageEventsResponse, None]:
            nonlocal delivered, finished
            if max_events:
                # The token is bound to the query, not to the limit: ask only
                # for what is still owed.
                request.max_events = max_events - delivered
                if request.max_events <= 0:
                    return
            call = self._connection.stub.SearchMessageEvents(request, metadata=self._metadata)
            try:
                while (response := await self._next_response(call, wait)) is not None:
                    self._reached = True
                    delivered += len(response.events)
                    finished = response.HasField("stats")
                    if response.resume_token:
                        request.resume_token = response.resume_token
                    yield response
            except grpc.aio.AioRpcError as exc:
                if not finished:  # dropped after the last message: nothing is missing
                    raise MailEventsError.from_rpc_error(exc) from exc
            finally:
                call.cancel()

        # Resumed from the last token: a stream cut by a dropped connection
        # or by the store failing (the server sends RetryInfo then, also
        # before the first batch). A server never reached is reported now.
        async with aclosing(resuming(attempt, self._retries(self.max_reconnects))) as responses:
            async for response in responses:
                yield response

    async def search_raw(
        self, request: pb.SearchMessageEventsRequest
    ) -> AsyncGenerator[bytes, None]:
        """SearchMessageEvents' responses as the bytes the server sent, unparsed.

        For a proxy that hands pages, as they came, to other processes to
        parse and render. The whole stream is bounded by `timeout` and not
        resumed: meant for pages, not for exports (use `search_batches`).
        """
        call = self._connection.raw_search(request, metadata=self._metadata, timeout=self.timeout)
        try:
            with mapped_rpc_errors():
                async for data in call:
                    self._reached = True
                    yield data
        finally:
            call.cancel()

    async def _next_response(
        self, call: Any, wait: float | None
    ) -> pb.SearchMessageEventsResponse | None:
        """The next streamed message, None at the end, waiting at most `wait` s for it."""
        try:
            async with asyncio.timeout(wait):
                response = await call.read()
        except TimeoutError:
            raise MailEventsError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no response from {self.address} within {wait:g}s",
            ) from None
        if response is grpc.aio.EOF:
            return None
        message: pb.SearchMessageEventsResponse = response
        return message

    async def watch(
        self,
        query: pb.EventQuery | None = None,
        *,
        read_mask: ReadMask | None = None,
        resume_token: str = "",
        heartbeat_interval: float | None = None,
    ) -> AsyncGenerator[MessageEvent, None]:
        """Each new matching event as it is committed, forever (see `watch_batches`)."""
        batches = self.watch_batches(
            query,
            read_mask=read_mask,
            resume_token=resume_token,
            heartbeat_interval=heartbeat_interval,
        )
        async for event in _events_of(batches):
            yield event

    async def watch_batches(
        self,
        query: pb.EventQuery | None = None,
        *,
        read_mask: ReadMask | None = None,
        batch_size: int = 1000,
        resume_token: str = "",
        heartbeat_interval: float | None = None,
        max_events: int = 0,
        max_reconnects: int | None = None,
    ) -> AsyncGenerator[pb.WatchMessageEventsResponse, None]:
        """New matching events in commit order as they are committed, and heartbeats.

        The first message comes at once (often without events) and, like
        every message, carries a `resume_token` and a `watermark`: save the
        latest token and pass it back, also after a server restart, to
        continue with exactly the events committed since. Heartbeats (no
        events) come every `heartbeat_interval` seconds while idle (the
        server's 5 s by default). A dropped or silent connection is resumed
        from the last token, up to `max_reconnects` times in a row (the
        client's `max_reconnects` by default), so nothing is lost or repeated.
        With `max_events`, the stream ends after that many events.
        """
        request = pb.WatchMessageEventsRequest(
            query=query,
            read_mask=field_mask(read_mask),
            batch_size=batch_size,
            resume_token=resume_token,
            heartbeat_interval=_duration(heartbeat_interval),
            max_events=max_events,
        )
        limit = self.max_reconnects if max_reconnects is None else max_reconnects
        wait = self._live_wait(heartbeat_interval)
        delivered = 0

        async def attempt() -> AsyncGenerator[pb.WatchMessageEventsResponse, None]:
            nonlocal delivered
            call = self._connection.stub.WatchMessageEvents(request, metadata=self._metadata)
            try:
                with mapped_rpc_errors():
                    while True:
                        try:
                            async with asyncio.timeout(wait):
                                response = await call.read()
                        except TimeoutError:
                            # Heartbeats stopped: the connection is dead, whatever TCP thinks.
                            raise MailEventsError(
                                grpc.StatusCode.UNAVAILABLE,
                                f"no message or heartbeat from {self.address} within {wait:g}s",
                            ) from None
                        if response is grpc.aio.EOF:
                            return
                        self._reached = True
                        request.resume_token = response.resume_token
                        if max_events:
                            delivered += len(response.events)
                            request.max_events = max(1, max_events - delivered)
                        yield response
            finally:
                call.cancel()

        # Resumed from the last token when the connection dropped or went
        # silent, or the store failed; a server never reached is reported.
        async with aclosing(resuming(attempt, self._retries(limit))) as responses:
            async for response in responses:
                yield response

    def _live_wait(self, heartbeat_interval: float | None) -> float | None:
        """How long a live stream may stay silent before its connection counts as dead."""
        if self.timeout is None:
            return None
        return max(self.timeout, 3 * (heartbeat_interval or 5.0))


def _duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def field_mask(read_mask: ReadMask | None) -> FieldMask | None:
    if read_mask is None or isinstance(read_mask, FieldMask):
        return read_mask
    names = read_mask.split(",") if isinstance(read_mask, str) else read_mask
    return FieldMask(paths=[name.strip() for name in names if name.strip()])


async def _events_of(
    batches: AsyncGenerator[Any, None],
) -> AsyncGenerator[MessageEvent, None]:
    """The events of streamed batches, one by one; closes the stream when done."""
    async with aclosing(batches):
        async for response in batches:
            for event in response.events:
                yield event
