"""A small typed async client for MessageEventService.

It adds what every caller would otherwise write around the generated stub:
the API key on every call, a deadline on every call (gRPC's default is none),
message limits large enough for big batches, failed calls turned into one
exception that carries the server's field violations, searches that survive
a dropped connection by resuming from the last batch's token, and ingest
that rides out a store failing for a moment by sending again (see `_retry`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from mailevents import _ingest_stream
from mailevents._retry import Retries, RetryNotice, RetryPolicy
from mailevents.errors import MailEventsError
from mailevents.query import group_by_value
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1 import message_event_service_pb2_grpc as pb_grpc
from mailevents.v1.message_event_pb2 import MessageEvent

__all__ = [
    "DEFAULT_ADDRESS",
    "MAX_INGEST_BATCH",
    "MailEventsClient",
    "ReadMask",
    "RetryNotice",
    "RetryPolicy",
]

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: The most events one IngestMessageEvents call takes; `ingest` splits larger inputs.
MAX_INGEST_BATCH = 10_000
# Search batches of 10,000 wide events pass gRPC's 4 MiB default; the server
# raises its limits to the same figure.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: Fields to return: a FieldMask, "a,b,c", or field names.
ReadMask = FieldMask | str | Iterable[str]


class MailEventsClient:
    """A connection to a mailevents server; use as `async with MailEventsClient(...) as client`.

    `timeout` bounds each unary call, and for searches the wait for each next
    batch rather than the whole stream, so that exporting millions of events
    is not cut off while a stalled server still is. `None` waits forever.
    A search that loses its connection (UNAVAILABLE) reconnects with the
    last resume token up to `max_reconnects` times in a row, so no event is
    lost or repeated.

    `retry` says how long ingest calls, ingest streams and searches keep
    trying while the server answers UNAVAILABLE because its store failed
    for a moment (a database restarting, a lock): by default up to 30 s
    since the last progress, with capped exponential backoff and jitter,
    never sooner than the server's RetryInfo asks. Sending events again is
    safe, as the server stores each event_id once. `retry=None` turns it
    off. `on_retry` hears of each wait, e.g. to show it in a progress line.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        api_key: str | None = None,
        *,
        root_certificates: bytes | None = None,
        tls: bool = False,
        timeout: float | None = 30.0,
        max_reconnects: int = 5,
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 (frozen: safe to share)
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.max_reconnects = max_reconnects
        self.retry = retry or RetryPolicy(total=0)
        self.on_retry = on_retry
        #: Whether the server has answered this client before: a server never
        #: reached is reported at once rather than retried.
        self._reached = False
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self._tls = tls or root_certificates is not None
        self._root_certificates = root_certificates
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    async def __aenter__(self) -> Self:
        self._service()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()

    def _service(self) -> Any:
        """The stub, opening the channel on first use.

        The channel is opened lazily because grpc.aio binds it to the running
        event loop, which does not exist yet when a client is constructed at
        import time or outside `asyncio.run`.
        """
        if self._stub is None:
            options = [
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ]
            if self._tls:
                credentials = grpc.ssl_channel_credentials(self._root_certificates)
                self._channel = grpc.aio.secure_channel(self.address, credentials, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.address, options=options)
            # The generated stub module is untyped (no mypy-protobuf plugin).
            self._stub = pb_grpc.MessageEventServiceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub

    def _retries(self, max_attempts: int | None = None) -> Retries:
        """The retry state of one call or stream, under this client's policy."""
        return Retries(self.retry, self.on_retry, max_attempts=max_attempts)

    async def _unary(self, method_name: str, request: Any, *, retry: bool = False) -> Any:
        """One unary call; with `retry` (safe only where sending twice is), sent
        again while the server is unavailable, within the retry policy."""
        method = getattr(self._service(), method_name)
        # No count limit: a server that never answered is not retried at all
        # (see `_retry`), and one that did is given the whole time budget.
        retries = self._retries() if retry else None
        while True:
            try:
                response = await method(request, metadata=self._metadata, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                error = MailEventsError.from_rpc_error(exc)
                if retries is None or not await retries.wait(error, reached=self._reached):
                    raise error from exc
                continue
            self._reached = True
            return response

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
            read_mask=_field_mask(read_mask),
            batch_size=batch_size,
            max_events=max_events,
            resume_token=resume_token,
            follow=follow,
            heartbeat_interval=_duration(heartbeat_interval),
        )
        wait = self._live_wait(heartbeat_interval) if follow else self.timeout
        delivered = received = 0
        finished = False
        retries = self._retries(self.max_reconnects)
        while True:
            call = self._service().SearchMessageEvents(request, metadata=self._metadata)
            try:
                while (response := await self._next_response(call, wait)) is not None:
                    retries.progress()
                    self._reached = True
                    received += 1
                    delivered += len(response.events)
                    finished = response.HasField("stats")
                    if response.resume_token:
                        request.resume_token = response.resume_token
                    yield response
                return
            except grpc.aio.AioRpcError as exc:
                if finished:  # dropped after the last message: nothing is missing
                    return
                error = MailEventsError.from_rpc_error(exc)
                # Resumed: a stream cut by a dropped connection or by the store
                # failing (the server sends RetryInfo then, also before the
                # first batch). A server never reached is reported now.
                delay = retries.next_delay(error, reached=received > 0)
                if delay is None:
                    raise error from exc
            finally:
                call.cancel()
            if max_events:
                # The token is bound to the query, not to the limit: ask only
                # for what is still owed.
                request.max_events = max_events - delivered
                if request.max_events <= 0:
                    return
            await retries.pause(error, delay)

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
            read_mask=_field_mask(read_mask),
            batch_size=batch_size,
            resume_token=resume_token,
            heartbeat_interval=_duration(heartbeat_interval),
            max_events=max_events,
        )
        limit = self.max_reconnects if max_reconnects is None else max_reconnects
        wait = self._live_wait(heartbeat_interval)
        received = delivered = 0
        retries = self._retries(limit)
        while True:
            call = self._service().WatchMessageEvents(request, metadata=self._metadata)
            cause: grpc.aio.AioRpcError | None = None
            try:
                while True:
                    try:
                        async with asyncio.timeout(wait):
                            response = await call.read()
                    except TimeoutError:
                        # Heartbeats stopped: the connection is dead, whatever TCP thinks.
                        error = MailEventsError(
                            grpc.StatusCode.UNAVAILABLE,
                            f"no message or heartbeat from {self.address} within {wait:g}s",
                        )
                        break
                    if response is grpc.aio.EOF:
                        return
                    retries.progress()
                    self._reached = True
                    received += 1
                    request.resume_token = response.resume_token
                    if max_events:
                        delivered += len(response.events)
                        request.max_events = max(1, max_events - delivered)
                    yield response
            except grpc.aio.AioRpcError as exc:
                error, cause = MailEventsError.from_rpc_error(exc), exc
            finally:
                call.cancel()
            # Resumed from the last token when the connection dropped or went
            # silent, or the store failed; a server never reached is reported.
            if not await retries.wait(error, reached=received > 0):
                raise error from cause

    async def ingest_stream(
        self,
        batches: AsyncIterable[Sequence[MessageEvent]] | Iterable[Sequence[MessageEvent]],
        *,
        window: int = 16,
    ) -> AsyncGenerator[pb.IngestMessageEventsStreamResponse, None]:
        """Send batches (up to 10,000 events each) over one stream; yield each acknowledgement.

        Acknowledgements come in the order the batches were taken from
        `batches`, each once its batch is durable; `sequence` is the
        batch's index in `batches`. At most `window` batches are in flight:
        the next one is taken only when there is room, so a large input is
        read as fast as the server stores it, not faster. If the connection
        drops (UNAVAILABLE), the stream is reopened and every batch not yet
        acknowledged is sent again, up to `max_reconnects` times in a row,
        and for as long as the `retry` policy allows when the server says
        its store is unavailable; the server stores each event_id once, so
        nothing is lost or doubled (events stored by the lost attempt come
        back as duplicates).
        """
        stream = _ingest_stream.IngestStream(self, batches, window)
        async with aclosing(stream.acknowledgements()) as acknowledgements:
            async for response in acknowledgements:
                yield response

    def _live_wait(self, heartbeat_interval: float | None) -> float | None:
        """How long a live stream may stay silent before its connection counts as dead."""
        if self.timeout is None:
            return None
        return max(self.timeout, 3 * (heartbeat_interval or 5.0))

    async def get(
        self,
        id: int | None = None,
        *,
        event_id: str | None = None,
        read_mask: ReadMask | None = None,
    ) -> MessageEvent:
        """One event by its store id or by its producer's `event_id`; NOT_FOUND otherwise."""
        if (id is None) == (event_id is None):
            raise ValueError("pass exactly one of id or event_id")
        request = pb.GetMessageEventRequest(read_mask=_field_mask(read_mask))
        if id is not None:
            request.id = id
        else:
            request.event_id = event_id or ""
        response: pb.GetMessageEventResponse = await self._unary("GetMessageEvent", request)
        return response.event

    async def count(
        self,
        query: pb.EventQuery | None = None,
        group_by: Iterable[str | int] = (),
        time_zone: str = "",
        *,
        max_buckets: int = 0,
    ) -> pb.CountMessageEventsResponse:
        """The number of matching events, and buckets per dimension.

        `group_by` takes "type", "campaign", "domain", "hour", "day" (or
        `GroupBy` values); hour and day buckets are taken in `time_zone`.
        """
        request = pb.CountMessageEventsRequest(
            query=query,
            group_by=[group_by_value(g) for g in group_by],
            time_zone=time_zone,
            max_buckets=max_buckets,
        )
        response: pb.CountMessageEventsResponse = await self._unary("CountMessageEvents", request)
        return response

    async def ingest(self, events: Sequence[MessageEvent]) -> pb.IngestMessageEventsResponse:
        """Store events, idempotent on `event_id`; per-event outcomes in `results`.

        Inputs larger than one call takes are sent in consecutive calls and
        the outcomes merged, with `index` still pointing into `events`. A
        call the server could not take for the moment (UNAVAILABLE) is sent
        again within the client's `retry` policy. If a later call fails
        anyway, the earlier ones are stored; sending everything again is
        safe, as stored events come back as duplicates.
        """
        merged = pb.IngestMessageEventsResponse()
        for start in range(0, len(events), MAX_INGEST_BATCH):
            request = pb.IngestMessageEventsRequest(events=events[start : start + MAX_INGEST_BATCH])
            response: pb.IngestMessageEventsResponse = await self._unary(
                "IngestMessageEvents", request, retry=True
            )
            for result in response.results:
                result.index += start
            merged.results.extend(response.results)
            merged.stored += response.stored
            merged.duplicates += response.duplicates
            merged.rejected += response.rejected
        return merged

    # Last in the class: once defined, `list` in this class body is the method.
    async def list(
        self,
        query: pb.EventQuery | None = None,
        *,
        read_mask: ReadMask | None = None,
        page_size: int = 0,
        page_token: str = "",
        include_total_size: bool = False,
        skip: int = 0,
    ) -> pb.ListMessageEventsResponse:
        """One page of matching events; pass `next_page_token` back, with the same query.

        `skip` steps over that many matches first (from the token's position
        when there is one), at about the cost of a page.
        """
        request = pb.ListMessageEventsRequest(
            query=query,
            read_mask=_field_mask(read_mask),
            page_size=page_size,
            page_token=page_token,
            include_total_size=include_total_size,
            skip=skip,
        )
        response: pb.ListMessageEventsResponse = await self._unary("ListMessageEvents", request)
        return response


def _duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def _field_mask(read_mask: ReadMask | None) -> FieldMask | None:
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
