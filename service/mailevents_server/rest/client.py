"""The shim's client of mailevents: `MailEventsClient` over the shim's channel.

Every dialect reaches the events through this module, the way grpc-gateway would:
the caller's key travels as `authorization: Bearer <key>` metadata, so the server
decides tenancy and validity, and failed calls come back as `MailEventsError`
(the client's one error type, decoded in one place) that each dialect turns
into its own error JSON. Nothing here knows what a filter means; the server's
query core does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from aiohttp import web
from google.protobuf import field_mask_pb2

from mailevents.client import MailEventsClient
from mailevents.errors import MailEventsError
from mailevents.v1 import message_event_pb2 as ev_pb
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents_server.keytext import usable_key
from mailevents_server.workers import Workers

#: How long one dialect request may keep the service busy. A dialect page is at
#: most 10,000 events; anything slower than this is a stuck server, not a big page.
CALL_TIMEOUT_SECONDS = 60.0

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

_CONDITION_INDEX = re.compile(r"^query\.conditions\[(\d+)\]")
_AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_REFUSALS = (*_AUTH_CODES, grpc.StatusCode.INVALID_ARGUMENT)


def unauthenticated(failure: MailEventsError) -> bool:
    """The key was refused: every dialect answers its own 401."""
    return failure.code in _AUTH_CODES


def condition_index(field: str) -> int | None:
    """Which query condition a field violation blames, so a dialect can name its parameter."""
    match = _CONDITION_INDEX.match(field)
    return int(match.group(1)) if match else None


def retry_after(failure: MailEventsError) -> str | None:
    """The `Retry-After` seconds for a 503 when the failure is one to retry
    later (the store unavailable, or full), None otherwise.

    UNAVAILABLE is always worth a retry: a dropped connection to the
    service says so too. RESOURCE_EXHAUSTED only when the server said
    when (storage full), not gRPC's own "message too large".
    """
    if failure.code == grpc.StatusCode.UNAVAILABLE:
        return str(max(1, math.ceil(failure.retry_delay or 1)))
    if failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED and failure.retry_delay is not None:
        return str(max(1, math.ceil(failure.retry_delay)))
    return None


def retry_later(response: web.Response, failure: MailEventsError) -> web.Response:
    """`response` as a 503 with Retry-After, for a dialect's error body when the
    service is unavailable or its storage full: clients and proxies retry a 503."""
    response.set_status(503)
    response.headers["Retry-After"] = retry_after(failure) or "1"
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


class ShimClient:
    """The shim's client of the service and its calling conventions; one per app.

    Calls fail at once rather than retrying: a dialect answers 503 with
    Retry-After when the service is unavailable, and its HTTP client retries.
    """

    def __init__(self, channel: grpc.aio.Channel, workers: Workers) -> None:
        self._client = MailEventsClient(
            channel=channel, timeout=CALL_TIMEOUT_SECONDS, retry=None, max_reconnects=0
        )
        #: Where large pages are rendered (see `render`).
        self.workers = workers

    def caller(self, api_key: str) -> Caller:
        # A key that cannot be gRPC metadata cannot be valid either: every call
        # with it fails as an unknown key would, before anything is sent.
        client = self._client.with_api_key(api_key) if usable_key(api_key) else None
        return Caller(client)


#: Where the app keeps its ShimClient.
CLIENT_KEY: web.AppKey[ShimClient] = web.AppKey("shim_client", ShimClient)


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

    def __init__(self, client: MailEventsClient | None) -> None:
        self._client_for_key = client

    @property
    def _client(self) -> MailEventsClient:
        if self._client_for_key is None:
            raise MailEventsError(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return self._client_for_key

    async def check_key(self) -> None:
        """Raise MailEventsError when the key is not valid.

        Dialects validate their own parameters before calling the service, but
        their products answer a bad key with 401 before any 400. This cheap
        lookup runs only on that error path, so good requests pay nothing.
        """
        try:
            await self._client.get(0, read_mask="id")
        except MailEventsError as failure:
            if unauthenticated(failure):
                raise

    async def count(self, query: pb.EventQuery) -> int:
        return int((await self._client.count(query)).total)

    async def get(self, event_id: int) -> ev_pb.MessageEvent | None:
        """The event with this store id, or None."""
        try:
            return await self._client.get(event_id)
        except MailEventsError as failure:
            if failure.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise

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
        async for data in self._client.search_raw(request):
            response = pb.SearchMessageEventsResponse.FromString(data)
            if response.events:
                events.extend(response.events)
                if batches is not None:
                    batches.append(RawBatch(data, len(response.events)))
                if len(events) == limit:
                    token_at_limit = response.resume_token
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
        """Every match, batch by batch, for dialects that return all events in one response.

        The client's deadline bounds the wait for each next batch, not the
        whole stream: an unpaged dialect (Copernica) may stream a month of a
        mailing's events.
        """
        batches = self._client.search_batches(query, read_mask=read_mask, batch_size=MAX_BATCH)
        async with contextlib.aclosing(batches):
            async for response in batches:
                if response.events:
                    yield list(response.events)

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
        except MailEventsError as failure:
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
