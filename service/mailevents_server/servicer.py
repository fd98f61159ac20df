"""MessageEventService: validates requests, runs them through the query core and
the store, and writes responses.

The read RPCs answer with bytes spliced from stored events (see `wire`);
`handlers` registers them with a serializer that passes bytes through, and is
built from the service descriptor so that an RPC added to the proto without a
method here fails at start-up (and in tests) instead of answering UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.duration_pb2 import Duration

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import live, tracing, wire
from mailevents_server.auth import current_tenant
from mailevents_server.errors import InvalidArgument, NotFound, Violation, invalid
from mailevents_server.ingest import acks, pipeline
from mailevents_server.ingest.pool import prepare_batch
from mailevents_server.malformed import lenient
from mailevents_server.metrics import Metrics
from mailevents_server.projection import projection_for
from mailevents_server.query.model import Query
from mailevents_server.query.recent import OffsetWalks
from mailevents_server.query.tokens import Cursor, LivePosition, TokenCodec, fingerprint
from mailevents_server.query.validate import check_skip, compile_query, valid_time_zone
from mailevents_server.store.base import Row, Store
from mailevents_server.workers import Workers

SERVICE = spb.DESCRIPTOR.services_by_name["MessageEventService"]
SERVICE_NAME = SERVICE.full_name
_SEARCH = f"/{SERVICE_NAME}/SearchMessageEvents"
_WATCH = f"/{SERVICE_NAME}/WatchMessageEvents"

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_INGEST = 10_000
DEFAULT_BUCKETS = 1000
#: Repeated fields that multiply work are capped: each group_by entry is a scan
#: (and the distinct ones are fewer than this); read_mask paths: see `projection`.
MAX_GROUP_BY = 16
MAX_BUCKETS = 100_000
#: Batches of one ingest stream being prepared or committed at once: enough
#: for the writer to merge several into one transaction, few enough that a
#: fast producer waits (gRPC flow control) instead of filling server memory.
INGEST_WINDOW = 8
_RESUME_TOKEN = spb.SearchMessageEventsResponse.RESUME_TOKEN_FIELD_NUMBER
_NEXT_PAGE_TOKEN = spb.ListMessageEventsResponse.NEXT_PAGE_TOKEN_FIELD_NUMBER
_TOTAL_SIZE_TAG = wire.tag(spb.ListMessageEventsResponse.TOTAL_SIZE_FIELD_NUMBER, wire.VARINT)


class MessageEventServicer:
    def __init__(
        self,
        store: Store,
        codec: TokenCodec,
        workers: Workers | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics or store.metrics
        # Label lookups done once: streams count per message.
        self._search_events = self._metrics.grpc_stream_events.labels(_SEARCH)
        self._watch_events = self._metrics.grpc_stream_events.labels(_WATCH)
        self._codec = codec
        # Without worker processes, large batches are prepared in a thread.
        self._workers = workers or Workers(0)
        self._shutdown = live.Shutdown()
        self._tails = live.Tails(store, codec, self._shutdown)
        # Offset walks: where recent pages ended, and recent totals.
        self._walks = OffsetWalks()

    async def stop_live_streams(self) -> None:
        """End every live stream (watch, search with follow) now, with UNAVAILABLE."""
        self._shutdown.event.set()

    # -- search --------------------------------------------------------------

    async def SearchMessageEvents(
        self, request: spb.SearchMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes | spb.SearchMessageEventsResponse]:
        started = time.monotonic()
        tenant = current_tenant()
        violations: list[Violation] = []
        batch_size = _bounded(
            request.batch_size, "batch_size", DEFAULT_BATCH, MAX_BATCH, violations
        )
        if request.max_events < 0:
            violations.append(Violation("max_events", "must not be negative"))
        heartbeat = live.heartbeat_seconds(
            request.heartbeat_interval,
            request.HasField("heartbeat_interval"),
            "heartbeat_interval",
            violations,
        )
        mask = projection_for(request.read_mask, violations)
        skip = check_skip(request.skip, violations)
        query = compile_query(request.query, tenant, extra=violations)
        fp = fingerprint(request.query)
        # Where to begin: the history pinned to a snapshot (max_id), or, with a
        # live token of a following search, straight in the live part.
        snapshot_us = 0
        live_from: int | None = None
        if not request.resume_token:
            mark = await self._store.watermark(tenant)
            query = dataclasses.replace(query, max_id=mark.position)
            snapshot_us = mark.time_us
        elif request.follow:
            start = self._codec.decode_stream(request.resume_token, "resume_token", tenant, fp)
            if isinstance(start, LivePosition):
                await live.check_position(self._store, tenant, start.position, "resume_token")
                live_from = start.position
            else:
                query = dataclasses.replace(
                    query, after=(start.ts_us, start.id), max_id=start.max_id
                )
        else:
            query = await self._position(query, request.resume_token, "resume_token", fp)
        query = self._walks.skipping(query, fp, skip, from_start=not request.resume_token)

        remaining = request.max_events or -1
        events = batches = 0
        last_row: Row | None = None
        if live_from is None:
            reads = self._store.read(query, batch_size, limit=request.max_events or None)
            with tracing.span("store.read"):
                async with contextlib.aclosing(reads):  # type: ignore[type-var]
                    async for rows in reads:
                        if remaining >= 0:
                            rows = rows[:remaining]
                            remaining -= len(rows)
                        if rows:
                            last_row = rows[-1]
                        for chunk in wire.chunks(rows):
                            last = chunk[-1]
                            token = self._codec.encode(
                                Cursor(tenant, fp, last[0], last[1], query.max_id or 0)
                            )
                            yield wire.events_bytes(
                                chunk, mask, wire.length_delimited(_RESUME_TOKEN, token.encode())
                            )
                            events += len(chunk)
                            batches += 1
                            # Per message (hundreds of events), not per event.
                            self._search_events.inc(len(chunk))
                        if remaining == 0:
                            break
        # The history is complete up to its snapshot, unless max_events cut it short.
        complete = remaining != 0
        if request.max_events and not request.resume_token:
            # Also after a short or empty page: the store may have grown past
            # it by the time the client asks for the next offset.
            self._walks.ended_at(tenant, fp, skip + request.max_events, last_row, query)
        # Resumed straight into the live part: no seam message will give the token.
        resumed_live = live_from is not None
        if request.follow and complete:
            spec = live.TailSpec(
                tenant, fp, query, mask, batch_size, heartbeat, spb.SearchMessageEventsResponse
            )
            complete = False  # from here on only max_events ends the stream: cut short
            if live_from is None:
                # The seam: the history covered every id up to max_id; live goes on from there.
                live_from = query.max_id or 0
                yield self._tails.message(spec, [], live_from, snapshot_us)
            tail = self._tails.stream(spec, live_from, remaining, announce=resumed_live)
            async with contextlib.aclosing(tail):  # type: ignore[type-var]
                async for messages, count in tail:
                    for message in messages:
                        yield message
                    events += count
                    batches += 1
                    self._search_events.inc(count)
        elapsed = Duration()
        elapsed.FromNanoseconds(int((time.monotonic() - started) * 1e9))
        final = spb.SearchMessageEventsResponse(
            stats=spb.SearchStats(events=events, batches=batches, elapsed=elapsed)
        )
        if complete:
            final.watermark.position = query.max_id or 0
            if snapshot_us:
                final.watermark.time.FromMicroseconds(snapshot_us)
        yield final

    # -- watch -------------------------------------------------------------------

    async def WatchMessageEvents(
        self, request: spb.WatchMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        tenant = current_tenant()
        violations: list[Violation] = []
        batch_size = _bounded(
            request.batch_size, "batch_size", DEFAULT_BATCH, MAX_BATCH, violations
        )
        heartbeat = live.heartbeat_seconds(
            request.heartbeat_interval,
            request.HasField("heartbeat_interval"),
            "heartbeat_interval",
            violations,
        )
        if request.max_events < 0:
            violations.append(Violation("max_events", "must not be negative"))
        mask = projection_for(request.read_mask, violations)
        query = compile_query(request.query, tenant, extra=violations)
        fp = fingerprint(request.query)
        if request.resume_token:
            start = self._codec.decode_stream(request.resume_token, "resume_token", tenant, fp)
            if not isinstance(start, LivePosition):
                raise invalid(
                    "resume_token",
                    "this token is from the history part of a search: resume it with "
                    "SearchMessageEvents and follow",
                    "TOKEN_NOT_LIVE",
                )
            await live.check_position(self._store, tenant, start.position, "resume_token")
            position = start.position
        else:
            position = (await self._store.watermark(tenant)).position
        spec = live.TailSpec(
            tenant, fp, query, mask, batch_size, heartbeat, spb.WatchMessageEventsResponse
        )
        tail = self._tails.stream(spec, position, request.max_events or -1, announce=True)
        async with contextlib.aclosing(tail):  # type: ignore[type-var]
            async for messages, count in tail:
                for message in messages:
                    yield message
                self._watch_events.inc(count)

    # -- list ------------------------------------------------------------------

    async def ListMessageEvents(
        self, request: spb.ListMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        tenant = current_tenant()
        violations: list[Violation] = []
        if request.page_size < 0:
            violations.append(Violation("page_size", "must not be negative"))
        page_size = min(request.page_size, MAX_PAGE) if request.page_size > 0 else DEFAULT_PAGE
        mask = projection_for(request.read_mask, violations)
        skip = check_skip(request.skip, violations)
        query = compile_query(request.query, tenant, extra=violations)
        fp = fingerprint(request.query)
        query = await self._position(query, request.page_token, "page_token", fp)
        query = self._walks.skipping(query, fp, skip, from_start=not request.page_token)

        with tracing.span("store.page"):
            rows = await self._store.page(query, page_size + 1)
        out = [wire.events_bytes(rows[:page_size], mask)]
        if not request.page_token:
            last_row = rows[:page_size][-1] if rows else None
            self._walks.ended_at(tenant, fp, skip + page_size, last_row, query)
        if len(rows) > page_size:
            last = rows[page_size - 1]
            token = self._codec.encode(Cursor(tenant, fp, last[0], last[1], query.max_id or 0))
            out.append(wire.length_delimited(_NEXT_PAGE_TOKEN, token.encode()))
        if request.include_total_size:
            with tracing.span("store.count"):
                total = await self._store.count(dataclasses.replace(query, after=None, skip=0))
            if total:
                out.append(_TOTAL_SIZE_TAG + wire.varint(total))
        return b"".join(out)

    # -- get -------------------------------------------------------------------

    async def GetMessageEvent(
        self, request: spb.GetMessageEventRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        violations: list[Violation] = []
        mask = projection_for(request.read_mask, violations)
        which = request.WhichOneof("lookup")
        if which is None:
            violations.append(Violation("id", "id or event_id is required"))
        elif which == "id" and request.id <= 0:
            violations.append(Violation("id", "must be a positive integer"))
        elif which == "event_id" and not request.event_id:
            violations.append(Violation("event_id", "must not be empty"))
        if violations:
            raise _invalid_request(violations)
        with tracing.span("store.get"):
            row = await self._store.get(current_tenant(), id=request.id, event_id=request.event_id)
        if row is None:
            what = f"id {request.id}" if which == "id" else f"event_id {request.event_id!r}"
            raise NotFound(f"no event with {what}", "EVENT_NOT_FOUND")
        return wire.events_bytes([row], mask)

    # -- count -----------------------------------------------------------------

    async def CountMessageEvents(
        self, request: spb.CountMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> spb.CountMessageEventsResponse:
        violations: list[Violation] = []
        if len(request.group_by) > MAX_GROUP_BY:
            violations.append(Violation("group_by", f"at most {MAX_GROUP_BY} entries"))
        else:
            for i, group in enumerate(request.group_by):
                if group == spb.GROUP_BY_UNSPECIFIED or group not in spb.GroupBy.values():
                    violations.append(Violation(f"group_by[{i}]", f"unknown group_by {group}"))
        time_zone = request.time_zone or "UTC"
        if not valid_time_zone(time_zone):
            violations.append(Violation("time_zone", f"unknown time zone {request.time_zone!r}"))
        max_buckets = _bounded(
            request.max_buckets, "max_buckets", DEFAULT_BUCKETS, MAX_BUCKETS, violations
        )
        query = compile_query(request.query, current_tenant(), extra=violations)
        with tracing.span("store.count"):
            total = await self._walks.total(
                query,
                fingerprint(request.query),
                lambda: self._store.last_id(query.tenant_id),
                self._store.count,
            )
        response = spb.CountMessageEventsResponse(total=total)
        # Each grouping is a scan: one per distinct entry, however often it is repeated.
        for group in dict.fromkeys(request.group_by):
            with tracing.span("store.group_counts"):
                buckets = await self._store.group_counts(query, group, time_zone, max_buckets)
            response.groups.add(
                group_by=group,
                buckets=[spb.CountBucket(key=k, count=n) for k, n in buckets],
            )
        return response

    # -- ingest ----------------------------------------------------------------

    async def IngestMessageEvents(
        self, request: spb.IngestMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        received = time.perf_counter()
        count = len(request.events)
        if not 1 <= count <= MAX_INGEST:
            raise invalid("events", f"send 1 to {MAX_INGEST} events per request, not {count}")
        tenant = current_tenant()
        ready, rejected = await prepare_batch(self._workers, request.events, request)
        with tracing.span("store.write", {"events": len(ready)}):
            written = await self._store.write(tenant, ready)
        ack, stored, duplicates = acks.unary_ack(written, rejected)
        self._counted("unary", received, stored, duplicates, len(rejected), tenant)
        return ack

    async def IngestMessageEventsStream(
        self,
        requests: AsyncIterator[spb.IngestMessageEventsStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        """Batches in, acknowledgements out, in order, each once its batch is durable.

        A pipeline of three tasks: a reader takes batches as they come and
        starts preparing each at once (in a worker process when large); a
        submitter hands the prepared batches to the store in stream order
        (whose writer merges them into large transactions) while later ones
        are still being prepared and earlier ones committing; this loop
        acknowledges each once committed. At most INGEST_WINDOW are in flight.
        """
        tenant = current_tenant()
        window = asyncio.Semaphore(INGEST_WINDOW)
        preparing: asyncio.Queue[pipeline.Preparing | Exception | None] = asyncio.Queue()
        accepted: asyncio.Queue[pipeline.StreamBatch | Exception | None] = asyncio.Queue()
        reader = asyncio.create_task(
            pipeline.accept(requests, window, self._workers, MAX_INGEST, preparing)
        )
        submitter = asyncio.create_task(pipeline.submit(self._store, tenant, preparing, accepted))
        try:
            while (item := await accepted.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                written = await item.write
                ack, stored, duplicates = acks.stream_ack(
                    item.sequence, item.batch_id, written, item.rejected
                )
                self._counted(
                    "stream", item.received, stored, duplicates, len(item.rejected), tenant
                )
                yield ack
                window.release()
        finally:
            reader.cancel()
            submitter.cancel()

    # -- helpers ---------------------------------------------------------------

    def _counted(
        self, path: str, received: float, stored: int, dupes: int, rejected: int, tenant: int
    ) -> None:
        """One acknowledged ingest batch in the metrics: outcomes and receipt-to-ack time."""
        self._metrics.count_ingest(path, stored, dupes, rejected, tenant)
        self._metrics.ingest_ack_seconds.labels(path).observe(time.perf_counter() - received)

    async def _position(self, query: Query, token: str, field: str, fp: bytes) -> Query:
        """Continue from a token, or pin a new read to the store as it is now."""
        if token:
            cursor = self._codec.decode(token, field, query.tenant_id, fp)
            return dataclasses.replace(query, after=(cursor.ts_us, cursor.id), max_id=cursor.max_id)
        return dataclasses.replace(query, max_id=await self._store.last_id(query.tenant_id))


def _bounded(value: int, field: str, default: int, maximum: int, out: list[Violation]) -> int:
    if value < 0 or value > maximum:
        out.append(Violation(field, f"must be between 0 (default {default}) and {maximum}"))
        return default
    return value or default


def _invalid_request(violations: list[Violation]) -> InvalidArgument:
    return InvalidArgument.of(violations, "INVALID_REQUEST")


def _serialize(response: Any) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def handlers(servicer: MessageEventServicer) -> grpc.GenericRpcHandler:
    """One handler per RPC in the proto; a missing servicer method raises here."""
    table: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        behaviour = getattr(servicer, method.name)
        request_class = message_factory.GetMessageClass(method.input_type)
        deserialize = lenient(request_class)
        if method.client_streaming and method.server_streaming:
            make = grpc.stream_stream_rpc_method_handler
        elif method.client_streaming:
            make = grpc.stream_unary_rpc_method_handler
        elif method.server_streaming:
            make = grpc.unary_stream_rpc_method_handler
        else:
            make = grpc.unary_unary_rpc_method_handler
        table[method.name] = make(
            behaviour, request_deserializer=deserialize, response_serializer=_serialize
        )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, table)
