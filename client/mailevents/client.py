"""A small typed async client for MessageEventService.

It adds what every caller would otherwise write around the generated stub:
the API key on every call, a deadline on every call (gRPC's default is none),
message limits large enough for big batches, failed calls turned into one
exception that carries the server's field violations, searches that survive
a dropped connection by resuming from the last batch's token, and ingest
that rides out a store failing for a moment by sending again (see `mailevents.retry`).
"""

from __future__ import annotations

import copy
from collections.abc import (
    AsyncGenerator,
    Callable,
    Iterable,
    Sequence,
)
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2

from mailevents.connection import DEFAULT_ADDRESS, SERVICE_NAME, Connection
from mailevents.errors import MailEventsError, mapped_rpc_errors
from mailevents.ingest_stream import Batches, IngestStream
from mailevents.query import group_by_value
from mailevents.retry import Retries, RetryNotice, RetryPolicy
from mailevents.streaming import ReadMask, StreamingCalls, field_mask
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_pb2 import MessageEvent

__all__ = [
    "DEFAULT_ADDRESS",
    "MAX_INGEST_BATCH",
    "MailEventsClient",
    "ReadMask",
    "RetryNotice",
    "RetryPolicy",
]

#: The most events one IngestMessageEvents call takes; `ingest` splits larger inputs.
MAX_INGEST_BATCH = 10_000


class MailEventsClient(StreamingCalls):
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

    `channel`: call over an existing channel (one the caller made, with its
    own options and interceptors) instead of opening one to `address`;
    `with_api_key` gives clients for other keys over the same channel.
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
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.max_reconnects = max_reconnects
        self.retry = retry or RetryPolicy(total=0)
        self.on_retry = on_retry
        #: Whether the server has answered this client before: a server never
        #: reached is reported at once rather than retried.
        self._reached = False
        self._metadata = _metadata(api_key)
        self._connection = Connection(
            address, tls=tls, root_certificates=root_certificates, channel=channel
        )
        #: Clients made by `with_api_key` share their maker's connection and leave it open.
        self._closes_connection = True

    async def __aenter__(self) -> Self:
        self._connection.stub  # noqa: B018 (opens the channel now)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the channel this client opened; calls in flight are cancelled."""
        if self._closes_connection:
            await self._connection.close()

    def with_api_key(self, api_key: str | None) -> MailEventsClient:
        """A client that calls as `api_key` over this client's channel and settings.

        Cheap (no connection of its own), so a proxy can make one per request;
        closing it leaves the channel open.
        """
        other = copy.copy(self)
        other._closes_connection = False
        other._metadata = _metadata(api_key)
        return other

    def _retries(self, max_attempts: int | None = None) -> Retries:
        """The retry state of one call or stream, under this client's policy."""
        return Retries(self.retry, self.on_retry, max_attempts=max_attempts)

    async def _unary(self, method_name: str, request: Any, *, retry: bool = False) -> Any:
        """One unary call; with `retry` (safe only where sending twice is), sent
        again while the server is unavailable, within the retry policy."""
        method = getattr(self._connection.stub, method_name)
        # No count limit: a server that never answered is not retried at all
        # (see `mailevents.retry`), and one that did is given the whole time budget.
        retries = self._retries() if retry else None
        while True:
            try:
                with mapped_rpc_errors():
                    response = await method(request, metadata=self._metadata, timeout=self.timeout)
            except MailEventsError as error:
                if retries is None or not await retries.wait(error, reached=self._reached):
                    raise
                continue
            self._reached = True
            return response

    async def ingest_stream(
        self,
        batches: Batches,
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
        stream = IngestStream(
            self._connection.stub.IngestMessageEventsStream,
            self._metadata,
            batches,
            window=window,
            timeout=self.timeout,
            retries=self._retries(self.max_reconnects),
            address=self.address,
        )
        async with aclosing(stream.acknowledgements()) as acknowledgements:
            async for response in acknowledgements:
                yield response

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
        request = pb.GetMessageEventRequest(read_mask=field_mask(read_mask))
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

    async def ingest_serialized(self, request: bytes) -> pb.IngestMessageEventsResponse:
        """IngestMessageEvents with a request already serialized (say, by a worker
        process that converted a webhook body), sent once: the caller decides
        what a failure means for its own sender."""
        with mapped_rpc_errors():
            response: pb.IngestMessageEventsResponse = await self._connection.raw_ingest(
                request, metadata=self._metadata, timeout=self.timeout
            )
        self._reached = True
        return response

    async def health(self) -> str:
        """The service's gRPC health (grpc.health.v1): "SERVING", "NOT_SERVING", ...

        Asked without an API key, as orchestrators and readiness probes do.
        """
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        with mapped_rpc_errors():
            answer = await self._connection.health.Check(request, timeout=self.timeout)
        status: str = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return status

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
            read_mask=field_mask(read_mask),
            page_size=page_size,
            page_token=page_token,
            include_total_size=include_total_size,
            skip=skip,
        )
        response: pb.ListMessageEventsResponse = await self._unary("ListMessageEvents", request)
        return response


def _metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()
