"""The shim's only door into mailevents: the generated gRPC stub.

Every dialect reaches the events through this module, the way grpc-gateway would:
the caller's key travels as `authorization: Bearer <key>` metadata, so the server
decides tenancy and validity, and gRPC failures come back as `ServiceError`
values that each dialect turns into its own error JSON. Nothing here knows what
a filter means; the server's query core does.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from aiohttp import web
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from mailevents.v1 import message_event_pb2 as ev_pb
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_service_pb2_grpc import MessageEventServiceStub
from mailevents_server.keytext import usable_key
from mailevents_server.workers import Workers

#: How long one dialect request may keep the service busy. A dialect page is at
#: most 10,000 events; anything slower than this is a stuck server, not a big page.
CALL_TIMEOUT_SECONDS = 60.0

#: An unpaged dialect (Copernica) may stream a month of a mailing's events.
STREAM_TIMEOUT_SECONDS = 600.0

#: The largest skip a request carries (int64); no store holds that many events.
_MAX_SKIP = 2**63 - 1

#: The server streams at most this many events per message.
MAX_BATCH = 10_000

#: The RPCs of MessageEventService and what the shim does with each. A test
#: compares this with the service descriptor, so a new RPC cannot land without
#: someone deciding whether a dialect needs it.
RPC_USAGE: dict[str, str] = {
    "SearchMessageEvents": "every dialect's pages (offsets as its skip) and cursors",
    "ListMessageEvents": "not used: its page size tops out at 1,000, below SparkPost's 10,000",
    "GetMessageEvent": "Tastypie detail; the key check before a dialect's 400",
    "CountMessageEvents": "total_count / total_rows / total_pages of every paged dialect",
    "IngestMessageEvents": "not exposed: the four dialects are read-only",
    "IngestMessageEventsStream": "not exposed: the four dialects are read-only",
    "WatchMessageEvents": "not used: none of the four providers' query APIs has a live tail",
}

_SEARCH_METHOD = (
    f"/{pb.DESCRIPTOR.services_by_name['MessageEventService'].full_name}/SearchMessageEvents"
)
_CONDITION_INDEX = re.compile(r"^query\.conditions\[(\d+)\]")
_AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_REFUSALS = (*_AUTH_CODES, grpc.StatusCode.INVALID_ARGUMENT)


@dataclass(frozen=True)
class Violation:
    """One `google.rpc.BadRequest.FieldViolation` of a failed call."""

    field: str
    description: str

    @property
    def condition_index(self) -> int | None:
        """Which query condition the server blamed, so a dialect can name its parameter."""
        match = _CONDITION_INDEX.match(self.field)
        return int(match.group(1)) if match else None


class ServiceError(Exception):
    """A failed call, reduced to what a dialect needs to render its error."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        violations: Sequence[Violation] = (),
        retry_delay: float | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = tuple(violations)
        #: The server's RetryInfo delay, in seconds (None when it sent none).
        self.retry_delay = retry_delay

    @property
    def unauthenticated(self) -> bool:
        return self.code in _AUTH_CODES

    @property
    def retry_after(self) -> str | None:
        """The `Retry-After` seconds for a 503 when the failure is one to retry
        later (the store unavailable, or full), None otherwise.

        UNAVAILABLE is always worth a retry: a dropped connection to the
        service says so too. RESOURCE_EXHAUSTED only when the server said
        when (storage full), not gRPC's own "message too large".
        """
        if self.code == grpc.StatusCode.UNAVAILABLE:
            return str(max(1, math.ceil(self.retry_delay or 1)))
        if self.code == grpc.StatusCode.RESOURCE_EXHAUSTED and self.retry_delay is not None:
            return str(max(1, math.ceil(self.retry_delay)))
        return None

    @classmethod
    def from_rpc(cls, err: grpc.aio.AioRpcError) -> ServiceError:
        """Decode the rich status (BadRequest details) a grpc.aio error carries."""
        violations: list[Violation] = []
        retry_delay: float | None = None
        for key, value in err.trailing_metadata() or ():
            if key != "grpc-status-details-bin" or not isinstance(value, bytes):
                continue
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations.extend(
                        Violation(v.field, v.description) for v in bad.field_violations
                    )
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    retry_delay = info.retry_delay.ToNanoseconds() / 1e9
        return cls(err.code(), err.details() or "", violations, retry_delay)


def retry_later(response: web.Response, failure: ServiceError) -> web.Response:
    """`response` as a 503 with Retry-After, for a dialect's error body when the
    service is unavailable or its storage full: clients and proxies retry a 503."""
    response.set_status(503)
    response.headers["Retry-After"] = failure.retry_after or "1"
    return response


def condition(
    field: str,
    operator: int,
    values: Sequence[str] = (),
    *,
    date_part: int = pb.DATE_PART_UNSPECIFIED,
    time_zone: str = "",
) -> pb.Condition:
    """One typed condition; the server gives it its meaning."""
    return pb.Condition(
        field=field,
        operator=operator,  # type: ignore[arg-type]
        values=list(values),
        date_part=date_part,  # type: ignore[arg-type]
        time_zone=time_zone,
    )


def id_mask() -> field_mask_pb2.FieldMask:
    """The cheapest projection: what a key check reads."""
    return field_mask_pb2.FieldMask(paths=["id"])


class Service:
    """The stub plus the shim's calling conventions; one per app."""

    def __init__(self, channel: grpc.aio.Channel, workers: Workers) -> None:
        self._stub = MessageEventServiceStub(channel)  # type: ignore[no-untyped-call]
        # SearchMessageEvents answering bytes: a page's responses are parsed here
        # and may be handed, as they came, to a worker process to render.
        self._search = channel.unary_stream(
            _SEARCH_METHOD,
            request_serializer=pb.SearchMessageEventsRequest.SerializeToString,
            response_deserializer=None,
        )
        #: Where large pages are rendered (see `render`).
        self.workers = workers

    def caller(self, api_key: str) -> Caller:
        return Caller(self._stub, self._search, api_key)


#: Where the app keeps its Service.
SERVICE_KEY: web.AppKey[Service] = web.AppKey("service", Service)


@dataclass(frozen=True)
class RawBatch:
    """One SearchMessageEventsResponse as received, and how many events it holds."""

    data: bytes
    count: int


T = TypeVar("T")


async def _as_read(events: list[ev_pb.MessageEvent]) -> list[ev_pb.MessageEvent]:
    return events


class Caller:
    """Calls made on behalf of one API key."""

    def __init__(
        self,
        stub: MessageEventServiceStub,
        search: grpc.aio.UnaryStreamMultiCallable,
        api_key: str,
    ) -> None:
        self._stub = stub
        self._search = search
        # A key that cannot be gRPC metadata cannot be valid either: every call
        # with it fails as an unknown key would, before anything is sent.
        self._metadata = (("authorization", f"Bearer {api_key}"),) if usable_key(api_key) else ()

    def _check_usable(self) -> None:
        if not self._metadata:
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")

    async def check_key(self) -> None:
        """Raise ServiceError when the key is not valid.

        Dialects validate their own parameters before calling the service, but
        their products answer a bad key with 401 before any 400. This cheap
        lookup runs only on that error path, so good requests pay nothing.
        """
        self._check_usable()
        try:
            await self._stub.GetMessageEvent(
                pb.GetMessageEventRequest(id=0, read_mask=id_mask()),
                metadata=self._metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as err:
            failure = ServiceError.from_rpc(err)
            if failure.unauthenticated:
                raise failure from None

    async def count(self, query: pb.EventQuery) -> int:
        self._check_usable()
        try:
            response = await self._stub.CountMessageEvents(
                pb.CountMessageEventsRequest(query=query),
                metadata=self._metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as err:
            raise ServiceError.from_rpc(err) from None
        return int(response.total)

    async def get(self, event_id: int) -> ev_pb.MessageEvent | None:
        """The event with this store id, or None."""
        self._check_usable()
        try:
            response = await self._stub.GetMessageEvent(
                pb.GetMessageEventRequest(id=event_id),
                metadata=self._metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as err:
            failure = ServiceError.from_rpc(err)
            if failure.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise failure from None
        event: ev_pb.MessageEvent = response.event
        return event

    async def read(
        self,
        query: pb.EventQuery,
        limit: int,
        *,
        offset: int = 0,
        read_mask: field_mask_pb2.FieldMask | None = None,
        batches: list[RawBatch] | None = None,
    ) -> list[ev_pb.MessageEvent]:
        """Up to `limit` events after skipping `offset`: an offset-paged dialect's page.

        `batches`, when given, receives the page's responses as they came (see `read_from`).
        """
        if limit <= 0:
            return []
        # The service skips in the store, and resumes a walk's follow-on page
        # from where the page before it ended.
        events, _ = await self.read_from(
            query, "", limit, read_mask=read_mask, batches=batches, skip=min(offset, _MAX_SKIP)
        )
        return events

    async def read_from(
        self,
        query: pb.EventQuery,
        resume_token: str,
        limit: int,
        *,
        read_mask: field_mask_pb2.FieldMask | None = None,
        peek: bool = False,
        batches: list[RawBatch] | None = None,
        skip: int = 0,
    ) -> tuple[list[ev_pb.MessageEvent], str]:
        """Up to `limit` events after `resume_token`, and the token that continues them.

        The token is empty when the stream ended before `limit` events. With
        `peek`, one more event is asked for, so that the token is also empty when
        exactly `limit` events were left: a cursor dialect then offers no `next`
        link that would lead to an empty page.

        `batches` receives each response with events, as received: they hold
        the events returned, in order (and possibly the peeked one after them).
        """
        self._check_usable()
        request = pb.SearchMessageEventsRequest(
            query=query,
            batch_size=min(limit, MAX_BATCH),
            max_events=limit + 1 if peek else limit,
            resume_token=resume_token,
            skip=skip,
        )
        if read_mask is not None:
            request.read_mask.CopyFrom(read_mask)
        events: list[ev_pb.MessageEvent] = []
        token_at_limit = ""
        try:
            async for data in self._search(
                request, metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS
            ):
                response = pb.SearchMessageEventsResponse.FromString(data)
                if response.events:
                    events.extend(response.events)
                    if batches is not None:
                        batches.append(RawBatch(data, len(response.events)))
                    if len(events) == limit:
                        token_at_limit = response.resume_token
        except grpc.aio.AioRpcError as err:
            raise ServiceError.from_rpc(err) from None
        if len(events) < limit or (peek and len(events) == limit):
            return events, ""
        if not token_at_limit:
            # The server cut its batches elsewhere than at `limit`; ask again
            # without the extra event, which makes the last batch end there.
            if batches is not None:
                batches.clear()
            return await self.read_from(
                query, resume_token, limit, read_mask=read_mask, batches=batches, skip=skip
            )
        return events[:limit], token_at_limit

    async def stream(
        self, query: pb.EventQuery, *, read_mask: field_mask_pb2.FieldMask | None = None
    ) -> AsyncIterator[list[ev_pb.MessageEvent]]:
        """Every match, batch by batch, for dialects that return all events in one response."""
        self._check_usable()
        request = pb.SearchMessageEventsRequest(query=query, batch_size=MAX_BATCH)
        if read_mask is not None:
            request.read_mask.CopyFrom(read_mask)
        try:
            async for response in self._stub.SearchMessageEvents(
                request, metadata=self._metadata, timeout=STREAM_TIMEOUT_SECONDS
            ):
                if response.events:
                    yield list(response.events)
        except grpc.aio.AioRpcError as err:
            raise ServiceError.from_rpc(err) from None

    async def read_with_total(
        self,
        query: pb.EventQuery,
        limit: int,
        *,
        offset: int = 0,
    ) -> tuple[list[ev_pb.MessageEvent], int]:
        """A page and the number of all matches, fetched concurrently."""
        return await self.rendered_with_total(query, limit, _as_read, offset=offset)

    async def rendered_with_total(
        self,
        query: pb.EventQuery,
        limit: int,
        render: Callable[[list[ev_pb.MessageEvent]], Awaitable[T]],
        *,
        offset: int = 0,
        batches: list[RawBatch] | None = None,
    ) -> tuple[T, int]:
        """A page, rendered by `render`, and the number of all matches.

        The count starts first and runs on while the page is read and then
        rendered: counting a large result is SQLite work that needs no GIL, so
        it overlaps with the rendering, which is Python work that does.
        """
        counting = asyncio.ensure_future(self.count(query))
        try:
            events = await self.read(query, limit, offset=offset, batches=batches)
            rendered = await render(events)
            total = await counting
        except ServiceError as failure:
            if failure.code in _REFUSALS:
                # The count checks the same key and query, and is refused as
                # fast: let it end rather than cancel a call mid-answer.
                await asyncio.wait([counting])
            raise
        finally:
            if not counting.done():
                counting.cancel()
            elif not counting.cancelled():
                counting.exception()  # retrieved: a read that failed first is what is raised
        return rendered, total
