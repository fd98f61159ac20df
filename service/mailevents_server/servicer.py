"""MessageEventService: validates requests, runs them through the query core and
the store, and writes responses.

The read RPCs answer with bytes spliced from stored events (see `wire`);
`handlers` registers them with a serializer that passes bytes through, and is
built from the service descriptor so that an RPC added to the proto without a
method here fails at start-up (and in tests) instead of answering UNIMPLEMENTED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, message_factory
from google.protobuf.duration_pb2 import Duration
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

from mailevents_server import wire
from mailevents_server.auth import current_tenant
from mailevents_server.errors import InvalidArgument, NotFound, Violation, invalid
from mailevents_server.ingest import prepare
from mailevents_server.query.model import Query
from mailevents_server.query.tokens import Cursor, TokenCodec, fingerprint
from mailevents_server.query.validate import compile_query, valid_time_zone
from mailevents_server.store.base import Outcome, Row, Store

SERVICE = spb.DESCRIPTOR.services_by_name["MessageEventService"]
SERVICE_NAME = SERVICE.full_name

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_INGEST = 10_000
DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 100_000
#: Keep each streamed message well under gRPC's default 4 MiB receive limit.
MAX_MESSAGE_BYTES = 3 * 1024 * 1024

_EVENT_DESCRIPTOR: Any = pb.MessageEvent.DESCRIPTOR
_TOTAL_SIZE_TAG = wire.varint(3 << 3)  # ListMessageEventsResponse.total_size, varint


class MessageEventServicer:
    def __init__(self, store: Store, codec: TokenCodec) -> None:
        self._store = store
        self._codec = codec

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
        mask = _read_mask(request.read_mask, violations)
        query = compile_query(request.query, tenant, extra=violations)
        fp = fingerprint(request.query)
        query = await self._position(query, request.resume_token, "resume_token", fp)

        remaining = request.max_events or -1
        events = batches = 0
        reads = self._store.read(query, batch_size)
        async with contextlib.aclosing(reads):  # type: ignore[type-var]
            async for rows in reads:
                if remaining >= 0:
                    rows = rows[:remaining]
                    remaining -= len(rows)
                for chunk in _chunks(rows):
                    last = chunk[-1]
                    token = self._codec.encode(
                        Cursor(tenant, fp, last[0], last[1], query.max_id or 0)
                    )
                    yield _events_bytes(chunk, mask) + wire.length_delimited(2, token.encode())
                    events += len(chunk)
                    batches += 1
                if remaining == 0:
                    break
        elapsed = Duration()
        elapsed.FromNanoseconds(int((time.monotonic() - started) * 1e9))
        yield spb.SearchMessageEventsResponse(
            stats=spb.SearchStats(events=events, batches=batches, elapsed=elapsed)
        )

    # -- list ------------------------------------------------------------------

    async def ListMessageEvents(
        self, request: spb.ListMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        tenant = current_tenant()
        violations: list[Violation] = []
        if request.page_size < 0:
            violations.append(Violation("page_size", "must not be negative"))
        page_size = min(request.page_size, MAX_PAGE) if request.page_size > 0 else DEFAULT_PAGE
        mask = _read_mask(request.read_mask, violations)
        query = compile_query(request.query, tenant, extra=violations)
        fp = fingerprint(request.query)
        query = await self._position(query, request.page_token, "page_token", fp)

        rows = await self._store.page(query, page_size + 1)
        out = [_events_bytes(rows[:page_size], mask)]
        if len(rows) > page_size:
            last = rows[page_size - 1]
            token = self._codec.encode(Cursor(tenant, fp, last[0], last[1], query.max_id or 0))
            out.append(wire.length_delimited(2, token.encode()))
        if request.include_total_size:
            total = await self._store.count(dataclasses.replace(query, after=None))
            if total:
                out.append(_TOTAL_SIZE_TAG + wire.varint(total))
        return b"".join(out)

    # -- get -------------------------------------------------------------------

    async def GetMessageEvent(
        self, request: spb.GetMessageEventRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        violations: list[Violation] = []
        mask = _read_mask(request.read_mask, violations)
        which = request.WhichOneof("lookup")
        if which is None:
            violations.append(Violation("id", "id or event_id is required"))
        elif which == "id" and request.id <= 0:
            violations.append(Violation("id", "must be a positive integer"))
        elif which == "event_id" and not request.event_id:
            violations.append(Violation("event_id", "must not be empty"))
        if violations:
            raise _invalid_request(violations)
        row = await self._store.get(current_tenant(), id=request.id, event_id=request.event_id)
        if row is None:
            what = f"id {request.id}" if which == "id" else f"event_id {request.event_id!r}"
            raise NotFound(f"no event with {what}", "EVENT_NOT_FOUND")
        return _events_bytes([row], mask)

    # -- count -----------------------------------------------------------------

    async def CountMessageEvents(
        self, request: spb.CountMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> spb.CountMessageEventsResponse:
        violations: list[Violation] = []
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
        response = spb.CountMessageEventsResponse(total=await self._store.count(query))
        for group in request.group_by:
            buckets = await self._store.group_counts(query, group, time_zone, max_buckets)
            response.groups.add(
                group_by=group,
                buckets=[spb.CountBucket(key=k, count=n) for k, n in buckets],
            )
        return response

    # -- ingest ----------------------------------------------------------------

    async def IngestMessageEvents(
        self, request: spb.IngestMessageEventsRequest, context: grpc.aio.ServicerContext
    ) -> spb.IngestMessageEventsResponse:
        count = len(request.events)
        if not 1 <= count <= MAX_INGEST:
            raise invalid("events", f"send 1 to {MAX_INGEST} events per request, not {count}")
        ready, rejected = prepare(request.events)
        written = await self._store.write(current_tenant(), ready)
        results = [
            spb.IngestResult(
                index=w.index,
                event_id=w.event_id,
                id=w.id,
                status=spb.INGEST_STATUS_STORED
                if w.outcome is Outcome.STORED
                else spb.INGEST_STATUS_DUPLICATE,
            )
            for w in written
        ]
        results += [
            spb.IngestResult(
                index=r.index,
                event_id=r.event_id,
                status=spb.INGEST_STATUS_REJECTED,
                reason=r.reason,
            )
            for r in rejected
        ]
        results.sort(key=lambda r: r.index)
        stored = sum(1 for w in written if w.outcome is Outcome.STORED)
        return spb.IngestMessageEventsResponse(
            results=results,
            stored=stored,
            duplicates=len(written) - stored,
            rejected=len(rejected),
        )

    # -- helpers ---------------------------------------------------------------

    async def _position(self, query: Query, token: str, field: str, fp: bytes) -> Query:
        """Continue from a token, or pin a new read to the store as it is now."""
        if token:
            cursor = self._codec.decode(token, field, query.tenant_id, fp)
            return dataclasses.replace(query, after=(cursor.ts_us, cursor.id), max_id=cursor.max_id)
        return dataclasses.replace(query, max_id=await self._store.last_id())


def _bounded(value: int, field: str, default: int, maximum: int, out: list[Violation]) -> int:
    if value < 0 or value > maximum:
        out.append(Violation(field, f"must be between 0 (default {default}) and {maximum}"))
        return default
    return value or default


def _read_mask(
    mask: field_mask_pb2.FieldMask, out: list[Violation]
) -> field_mask_pb2.FieldMask | None:
    if not mask.paths:
        return None
    bad = [
        p
        for p in mask.paths
        if not field_mask_pb2.FieldMask(paths=[p]).IsValidForDescriptor(_EVENT_DESCRIPTOR)
    ]
    if bad:
        out.append(Violation("read_mask", f"unknown MessageEvent fields: {', '.join(bad)}"))
        return None
    return mask


def _invalid_request(violations: list[Violation]) -> InvalidArgument:
    return InvalidArgument(
        "invalid request: " + "; ".join(f"{v.field}: {v.description}" for v in violations),
        "INVALID_REQUEST",
        violations,
    )


def _chunks(rows: list[Row]) -> list[list[Row]]:
    """Split rows so that no streamed message grows past MAX_MESSAGE_BYTES."""
    total = sum(len(r[2]) for r in rows)
    if total <= MAX_MESSAGE_BYTES:
        return [rows] if rows else []
    chunks: list[list[Row]] = []
    current: list[Row] = []
    size = 0
    for row in rows:
        if current and size + len(row[2]) > MAX_MESSAGE_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append(row)
        size += len(row[2])
    if current:
        chunks.append(current)
    return chunks


def _events_bytes(rows: list[Row], mask: field_mask_pb2.FieldMask | None) -> bytes:
    """Field 1 of a response for each row: stored bytes as they are, or projected."""
    if mask is None:
        return b"".join([row[2] for row in rows])
    out = []
    for row in rows:
        full = pb.MessageEvent.FromString(wire.event_payload(row[2]))
        projected = pb.MessageEvent()
        mask.MergeMessage(full, projected)
        out.append(wire.length_delimited(1, projected.SerializeToString()))
    return b"".join(out)


def _serialize(response: Any) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def handlers(servicer: MessageEventServicer) -> grpc.GenericRpcHandler:
    """One handler per RPC in the proto; a missing servicer method raises here."""
    table: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        behaviour = getattr(servicer, method.name)
        request_class = message_factory.GetMessageClass(method.input_type)
        deserialize = request_class.FromString
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
