"""Webhook receivers: providers POST batches of events, and hear 200 only once they are durable.

`POST /webhooks/sparkpost` takes SparkPost's webhook batches (a JSON array of
``{"msys": {"message_event" | "track_event" | "gen_event" |
"unsubscribe_event" | "relay_event": {...}}}``); `POST /webhooks/sendgrid`
takes SendGrid's Event Webhook batches (a JSON array of flat events, see
`sendgrid`). The lead mounts them with `add_webhook_routes(app, channel)` on
the REST shim's HTTP server.

Delivery guarantees come from answering honestly: 200 is sent only after
IngestMessageEvents returned, which is after the commit; any failure is a
5xx, so the provider's retry covers it. Retries and the providers' own
duplicate deliveries are absorbed because ingest is idempotent on
(tenant, event_id): events already stored count as duplicates. An event that
can never be stored (malformed, no event id) is not a reason to make the
provider retry the whole batch forever: it is rejected, reported in the 200
body and logged, and the rest of the batch is stored.

Authentication is the caller's API key, in any of the forms the providers
can send: HTTP Basic (SparkPost's and SendGrid's "basic auth" option; the key
as the password, the user name free, or the key as the user name with an
empty password), `Authorization: Bearer <key>`, or SparkPost's legacy
`X-MessageSystems-Webhook-Token` header. The key is passed on to the service,
which decides the tenant, so a webhook cannot write into another tenant.

Why through the gRPC stub and not the store: the shim may run as its own
process against a remote service (`mailevents rest --target`), where there is
no store to reach; and going through the service keeps one write path (the
validation, dedupe and tenancy rules of IngestMessageEvents, its metrics and
errors) for every way events come in. The cost is one local serialization.

Turning a large body into events (JSON parsing, then each provider object
into a MessageEvent) is CPU work in Python, and the GIL would make it take
turns with everything else this process does. Bodies of more than some 250
events (256 KiB) are converted in a worker process instead, straight into the serialized
IngestMessageEvents requests, which are sent as they are: the event loop only
moves bytes. See `workers` for when they start.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web

from mailevents.sparkpost import event_from_sparkpost
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.sendgrid import event_from_sendgrid
from mailevents_server.workers import Workers, owned_by

log = logging.getLogger(__name__)

#: A webhook batch larger than this is refused with 413 (SparkPost's are a few MB at most).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Events per IngestMessageEvents call (the RPC's limit).
MAX_CALL_EVENTS = 10_000
#: How long storing one batch may take before the provider is told to retry.
CALL_TIMEOUT_SECONDS = 60.0
#: Bodies larger than this (some 250 events) are converted in a worker process
#: (see the module docstring); smaller ones in the event loop, where a worker's
#: round trip would cost more than the conversion.
_CONVERT_INLINE_BYTES = 256 * 1024
_INGEST_METHOD = (
    f"/{spb.DESCRIPTOR.services_by_name['MessageEventService'].full_name}/IngestMessageEvents"
)
_RETRY_AFTER_SECONDS = "5"
_TOKEN_HEADER = "X-MessageSystems-Webhook-Token"

Converter = Callable[[Any], pb.MessageEvent]


@dataclass
class _Batch:
    """A webhook body turned into serialized ingest requests, with what could not be."""

    requests: list[bytes] = field(default_factory=list)  # IngestMessageEventsRequest each
    positions: list[int] = field(default_factory=list)  # index in the body of each event
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)
    ignored: int = 0
    items: int = 0  # objects in the body
    error: str = ""  # why the body as a whole is refused (400)


class _Receiver:
    """The channel the receivers ingest through, and the workers that convert bodies."""

    def __init__(self, channel: grpc.aio.Channel, max_body_bytes: int, workers: Workers) -> None:
        # Requests arrive already serialized (see _convert_body): no serializer.
        self.ingest = channel.unary_unary(
            _INGEST_METHOD,
            request_serializer=None,
            response_deserializer=spb.IngestMessageEventsResponse.FromString,
        )
        self.max_body_bytes = max_body_bytes
        self.workers = workers

    async def convert(self, body: bytes, convert: Converter) -> _Batch:
        """`_convert_body`, in a worker process when the body is large."""
        if len(body) <= _CONVERT_INLINE_BYTES:
            return _convert_body(body, convert)
        return await self.workers.run(_convert_body, body, convert)


_RECEIVER: web.AppKey[_Receiver] = web.AppKey("webhook_receiver", _Receiver)


def add_webhook_routes(
    app: web.Application,
    channel: grpc.aio.Channel,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    workers: Workers | None = None,
) -> None:
    """Mount the receivers on `app`; they call the service over `channel` (the caller's).

    Without `workers`, the receivers start their own, stopped on the app's cleanup.
    """
    app[_RECEIVER] = _Receiver(channel, max_body_bytes, workers or owned_by(app))
    app.router.add_post("/webhooks/sparkpost", _sparkpost)
    app.router.add_post("/webhooks/sendgrid", _sendgrid)


async def _sparkpost(request: web.Request) -> web.Response:
    return await _receive(request, _from_sparkpost)


async def _sendgrid(request: web.Request) -> web.Response:
    return await _receive(request, event_from_sendgrid)


def _from_sparkpost(item: Any) -> pb.MessageEvent:
    return event_from_sparkpost(item)


def _is_ping(item: Any) -> bool:
    """SparkPost's test batch (and a webhook with nothing in it): `{"msys": {}}`."""
    return isinstance(item, dict) and item.keys() == {"msys"} and item["msys"] in ({}, None)


async def _receive(request: web.Request, convert: Converter) -> web.Response:
    receiver = request.app[_RECEIVER]
    key = api_key(request)
    if key is None:
        return _unauthorized("send the API key as Basic auth, a Bearer token or " + _TOKEN_HEADER)
    body = await _body(request, receiver.max_body_bytes)
    if body is None:
        return _error(413, f"a webhook batch is at most {receiver.max_body_bytes} bytes")
    batch = await receiver.convert(body, convert)
    if batch.error:
        return _error(400, batch.error)

    metadata = (("authorization", f"Bearer {key}"),)
    stored = duplicates = 0
    rejects = list(batch.rejects)
    try:
        for number, request_bytes in enumerate(batch.requests):
            start = number * MAX_CALL_EVENTS
            response: spb.IngestMessageEventsResponse = await receiver.ingest(
                request_bytes, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            )
            stored += response.stored
            duplicates += response.duplicates
            if response.rejected:  # else no need to look at each result
                for result in response.results:
                    if result.status == spb.INGEST_STATUS_REJECTED:
                        rejects.append((batch.positions[start + result.index], result.reason))
    except grpc.aio.AioRpcError as err:
        return _failed(err, stored)
    rejects.sort()
    if rejects:
        log.warning(
            "webhook %s: %d of %d events rejected, first: #%d %s",
            request.path,
            len(rejects),
            batch.items,
            rejects[0][0],
            rejects[0][1],
        )
    return web.json_response(
        {
            "stored": stored,
            "duplicates": duplicates,
            "rejected": len(rejects),
            "ignored": batch.ignored,
            "rejects": [{"index": index, "reason": reason} for index, reason in rejects],
        }
    )


def _convert_body(body: bytes, convert: Converter) -> _Batch:
    """A webhook body as IngestMessageEvents requests of at most MAX_CALL_EVENTS events.

    Runs in a worker process for large bodies: takes and returns only
    picklable plain data, and never raises for bad input.
    """
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _Batch(error=f"the body is not JSON: {exc}")
    if not isinstance(items, list):
        return _Batch(error="the body must be a JSON array of events")
    batch = _Batch(items=len(items))
    events: list[pb.MessageEvent] = []
    for index, item in enumerate(items):
        if _is_ping(item):
            batch.ignored += 1
            continue
        try:
            event = convert(item)
        except ValueError as exc:
            batch.rejects.append((index, str(exc)))
            continue
        events.append(event)
        batch.positions.append(index)
    batch.requests = [
        spb.IngestMessageEventsRequest(
            events=events[start : start + MAX_CALL_EVENTS]
        ).SerializeToString()
        for start in range(0, len(events), MAX_CALL_EVENTS)
    ]
    return batch


def api_key(request: web.Request) -> str | None:
    """The API key of a webhook call, in whichever form the provider sent it."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    key = ""
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, _, password = decoded.partition(":")
        key = password or user
    elif scheme.lower() == "bearer":
        key = value
    key = key.strip() or request.headers.get(_TOKEN_HEADER, "").strip()
    return key or None


async def _body(request: web.Request, limit: int) -> bytes | None:
    """The (already decompressed) body, or None when it is larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _failed(err: grpc.aio.AioRpcError, stored: int) -> web.Response:
    """The service refused or failed: say so in a way that makes the provider do the right thing."""
    code = err.code()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return _unauthorized("invalid API key")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return _error(400, err.details() or "invalid batch")
    # Anything else may pass: 503 makes the provider retry, and what this
    # attempt stored already comes back as duplicates then.
    log.warning("webhook batch not stored (%s, %d events stored before): %s", code, stored, err)
    response = _error(503, "events could not be stored now; retry later")
    response.headers["Retry-After"] = _RETRY_AFTER_SECONDS
    return response


def _unauthorized(message: str) -> web.Response:
    response = _error(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="mailevents webhooks"'
    return response


def _error(status: int, message: str) -> web.Response:
    """SparkPost's error envelope, which SendGrid's sender ignores just as well."""
    return web.json_response({"errors": [{"message": message}]}, status=status)
