"""Webhook receivers: providers POST batches of events, and hear 200 only once they are durable.

`POST /webhooks/sparkpost` takes SparkPost's webhook batches (a JSON array of
``{"msys": {"message_event" | "track_event" | "gen_event" |
"unsubscribe_event" | "relay_event": {...}}}``); `POST /webhooks/sendgrid`
takes SendGrid's Event Webhook batches (a JSON array of flat events, see
`sendgrid`). The lead mounts them with `add_webhook_routes(app, channel)` on
the REST shim's HTTP server.

Delivery guarantees come from answering honestly: 200 is sent only after the
store's commit (IngestMessageEvents returned, or the store's own write); any
failure is a 5xx, so the provider's retry covers it. Retries and the providers' own
duplicate deliveries are absorbed because ingest is idempotent on
(tenant, event_id): events already stored count as duplicates. An event that
can never be stored (malformed, no event id) is not a reason to make the
provider retry the whole batch forever: it is rejected, reported in the 200
body and logged, and the rest of the batch is stored.

Authentication is the caller's API key, in any of the forms the providers
can send: HTTP Basic (SparkPost's and SendGrid's "basic auth" option; the key
as the password, the user name free, or the key as the user name with an
empty password), `Authorization: Bearer <key>`, or SparkPost's legacy
`X-MessageSystems-Webhook-Token` header. The key decides the tenant, by the
service's own lookup either way, so a webhook cannot write into another tenant.

Where the events go from here is `webhook_ingest`: through the service's gRPC
API when the shim runs alone (`mailevents rest --target`), straight into the
store when the receivers share `mailevents serve`'s process with it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

import grpc
from aiohttp import web

from mailevents.sparkpost import event_from_sparkpost
from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.auth import KeyResolver
from mailevents_server.keytext import usable_key
from mailevents_server.requestbody import BadBody, TooLarge, read_body
from mailevents_server.rest.observe import METRICS_KEY
from mailevents_server.sendgrid import event_from_sendgrid
from mailevents_server.store.base import Store
from mailevents_server.webhook_ingest import Converter, IntoStore, Refused, ThroughService
from mailevents_server.workers import Workers, owned_by

log = logging.getLogger(__name__)

#: A webhook batch larger than this is refused with 413 (SparkPost's are a few MB at most).
MAX_BODY_BYTES = 64 * 1024 * 1024
_RETRY_AFTER_SECONDS = "5"
_TOKEN_HEADER = "X-MessageSystems-Webhook-Token"

Sink = ThroughService | IntoStore


class _Receiver:
    """Where the receivers store batches, and how large a body may be."""

    def __init__(self, sink: Sink, max_body_bytes: int) -> None:
        self.sink = sink
        self.max_body_bytes = max_body_bytes


_RECEIVER: web.AppKey[_Receiver] = web.AppKey("webhook_receiver", _Receiver)


def add_webhook_routes(
    app: web.Application,
    channel: grpc.aio.Channel,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    workers: Workers | None = None,
    local: tuple[Store, KeyResolver] | None = None,
) -> None:
    """Mount the receivers on `app`.

    They store through the service over `channel` (the caller's), or, given
    `local` (the store and key resolver of the service in this process),
    into that store directly (see `webhook_ingest`). Without `workers`, the
    receivers start their own, stopped on the app's cleanup.
    """
    workers = workers or owned_by(app)
    sink: Sink = ThroughService(channel, workers) if local is None else IntoStore(*local, workers)
    app[_RECEIVER] = _Receiver(sink, max_body_bytes)
    app.router.add_post("/webhooks/sparkpost", _sparkpost)
    app.router.add_post("/webhooks/sendgrid", _sendgrid)


async def _sparkpost(request: web.Request) -> web.Response:
    return await _receive(request, _from_sparkpost)


async def _sendgrid(request: web.Request) -> web.Response:
    return await _receive(request, event_from_sendgrid)


def _from_sparkpost(item: Any) -> pb.MessageEvent:
    return event_from_sparkpost(item)


async def _receive(request: web.Request, convert: Converter) -> web.Response:
    receiver = request.app[_RECEIVER]
    metrics = request.app.get(METRICS_KEY)
    started = time.perf_counter()
    key = api_key(request)
    if key is None:
        if metrics is not None:
            metrics.auth_refusals.labels("API_KEY_MISSING").inc()
        return _unauthorized("send the API key as Basic auth, a Bearer token or " + _TOKEN_HEADER)
    if not usable_key(key):
        # Not a key we could have issued: a 401, never a 5xx that is retried forever.
        if metrics is not None:
            metrics.auth_refusals.labels("API_KEY_INVALID").inc()
        return _unauthorized("invalid API key")
    try:
        body = await read_body(request, receiver.max_body_bytes)
    except TooLarge:
        return _error(413, f"a webhook batch is at most {receiver.max_body_bytes} bytes")
    except BadBody as bad:
        return _error(400, str(bad))
    try:
        done = await receiver.sink.store(key, body, convert)
    except Refused as refused:
        return _refused(refused)
    rejects = sorted(done.rejects)
    if metrics is not None:
        path = "webhook_" + request.path.rsplit("/", 1)[-1]
        metrics.count_ingest(path, done.stored, done.duplicates, len(rejects))
        metrics.ingest_ack_seconds.labels(path).observe(time.perf_counter() - started)
    if rejects:
        log.warning(
            "webhook %s: %d of %d events rejected, first: #%d %s",
            request.path,
            len(rejects),
            done.items,
            rejects[0][0],
            rejects[0][1],
        )
    return web.json_response(
        {
            "stored": done.stored,
            "duplicates": done.duplicates,
            "rejected": len(rejects),
            "ignored": done.ignored,
            "rejects": [{"index": index, "reason": reason} for index, reason in rejects],
        }
    )


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


def _refused(refused: Refused) -> web.Response:
    if refused.status == 401:
        return _unauthorized(refused.message)
    response = _error(refused.status, refused.message)
    if refused.retry:
        response.headers["Retry-After"] = _RETRY_AFTER_SECONDS
    return response


def _unauthorized(message: str) -> web.Response:
    response = _error(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="mailevents webhooks"'
    return response


def _error(status: int, message: str) -> web.Response:
    """SparkPost's error envelope, which SendGrid's sender ignores just as well."""
    return web.json_response({"errors": [{"message": message}]}, status=status)
