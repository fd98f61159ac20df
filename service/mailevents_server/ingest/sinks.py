"""How a webhook batch reaches storage: through the service, or into this process's store.

A receiver (`receivers`) authenticates the call and reads the body; one of two
sinks then turns the body into events and stores them, returning only once
they are durable:

- `ThroughService`, for the shim run alone (`mailevents rest --target`): the
  body becomes serialized IngestMessageEvents requests, sent over the
  generated stub like any other client's. There is no store to reach.
- `IntoStore` (in `store_sink`, so that this module and the receivers need
  neither the store nor auth), for `mailevents serve`, where the receivers and the store
  share a process: the body becomes prepared events (`ingest.prepare`, the
  same validation the RPCs apply) and goes to the store's `write`, with the
  tenant from the same `KeyResolver` the gRPC interceptor uses.

Why two: through the service, every event of a batch is serialized into a
request, sent over the loopback socket, parsed by the service, serialized
again for its worker, parsed there and prepared; into the store, the worker
that parsed the JSON prepares the events in the same pass. On 2 cores that is
~30% more webhook events a second (`make bench`), and the rules stay where
they were: what makes an event acceptable lives in `ingest`, deduplication in
the store, tenancy in `auth`; the sink only skips the transport.

Turning a large body into events is CPU work in Python, and the GIL would make
it take turns with everything else this process does. Bodies of more than
some 250 events (256 KiB) are converted in a worker process instead (see
`workers`); the event loop only moves bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from mailevents.client import MailEventsClient
from mailevents.errors import MailEventsError
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest.pool import to_blob
from mailevents_server.requestbody import BadBody, parse_json
from mailevents_server.workers import Workers

log = logging.getLogger(__name__)

#: Events per IngestMessageEvents call (the RPC's limit), and per store write.
MAX_CALL_EVENTS = 10_000
#: Events in one webhook body at most: providers send hundreds to a few thousand,
#: and a body of millions of tiny items would hold a worker for many seconds.
MAX_BATCH_EVENTS = 100_000
#: How long storing one batch may take before the provider is told to retry.
CALL_TIMEOUT_SECONDS = 60.0
#: Bodies larger than this (some 250 events) are converted in a worker process;
#: smaller ones in the event loop, where a worker's round trip would cost more.
CONVERT_INLINE_BYTES = 256 * 1024

Converter = Callable[[Any], pb.MessageEvent]


class Refused(Exception):
    """The batch was not (wholly) stored: answer `status` with `message`.

    `retry`: the provider should try again later (a 503 with Retry-After).
    """

    def __init__(self, status: int, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry = retry


@dataclass
class Stored:
    """What became of a batch: counts, and each rejected event's index in the body."""

    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    items: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Converted:
    """A webhook body turned into events, with what could not be.

    The events are in `requests` (serialized IngestMessageEvents requests) for
    the service, or in `prepared` (`ingest.pool` blobs) for the store, at most
    MAX_CALL_EVENTS events each. Only picklable plain data: a worker process
    builds it.
    """

    requests: list[bytes] = field(default_factory=list)
    prepared: list[bytes] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # index in the body of each event
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)
    ignored: int = 0
    items: int = 0  # objects in the body
    error: str = ""  # why the body as a whole is refused (400)


class Sink(Protocol):
    """Where the receivers store a batch: returns once it is durable, or raises `Refused`."""

    async def store(self, key: str, body: bytes, convert: Converter) -> Stored: ...


class ThroughService:
    """Stores batches by calling IngestMessageEvents through `client` (the shim run alone)."""

    def __init__(self, client: MailEventsClient, workers: Workers) -> None:
        self._client = client
        self._workers = workers

    async def store(self, key: str, body: bytes, convert: Converter) -> Stored:
        batch = await convert_body(self._workers, as_requests, body, convert)
        done = stored_of(batch)
        client = self._client.with_api_key(key)
        try:
            # Requests arrive already serialized (see as_requests).
            for number, request_bytes in enumerate(batch.requests):
                start = number * MAX_CALL_EVENTS
                response = await client.ingest_serialized(request_bytes)
                done.stored += response.stored
                done.duplicates += response.duplicates
                if response.rejected:  # else no need to look at each result
                    for result in response.results:
                        if result.status == spb.INGEST_STATUS_REJECTED:
                            done.rejects.append(
                                (batch.positions[start + result.index], result.reason)
                            )
        except MailEventsError as failure:
            raise _refused(failure, done.stored) from None
        return done


async def convert_body(
    workers: Workers,
    how: Callable[[bytes, Converter], Converted],
    body: bytes,
    convert: Converter,
) -> Converted:
    """`how(body, convert)`, in a worker process when the body is large."""
    if len(body) <= CONVERT_INLINE_BYTES:
        batch = how(body, convert)
    else:
        batch = await workers.run(how, body, convert)
    if batch.error:
        raise Refused(400, batch.error)
    return batch


def stored_of(batch: Converted) -> Stored:
    return Stored(ignored=batch.ignored, items=batch.items, rejects=list(batch.rejects))


def as_requests(body: bytes, convert: Converter) -> Converted:
    """A body as IngestMessageEvents requests of at most MAX_CALL_EVENTS events."""
    batch, events = _events(body, convert)
    batch.requests = [
        spb.IngestMessageEventsRequest(
            events=events[start : start + MAX_CALL_EVENTS]
        ).SerializeToString()
        for start in range(0, len(events), MAX_CALL_EVENTS)
    ]
    return batch


def as_prepared(body: bytes, convert: Converter) -> Converted:
    """A body as prepared events, ready for the store."""
    batch, events = _events(body, convert)
    batch.prepared = [
        to_blob(events[start : start + MAX_CALL_EVENTS])
        for start in range(0, len(events), MAX_CALL_EVENTS)
    ]
    return batch


def _events(body: bytes, convert: Converter) -> tuple[Converted, list[pb.MessageEvent]]:
    """The events of a body (and their indexes in it), and why others are not.

    Never raises for bad input: a worker process runs it.
    """
    try:
        items = parse_json(body)
    except BadBody as exc:
        return Converted(error=f"the body is not JSON: {exc}"), []
    if not isinstance(items, list):
        return Converted(error="the body must be a JSON array of events"), []
    if len(items) > MAX_BATCH_EVENTS:
        return Converted(error=f"a webhook batch holds at most {MAX_BATCH_EVENTS} events"), []
    batch = Converted(items=len(items))
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
        except RecursionError:  # JSON nested too deep to keep (parsing allows 1,024 levels)
            batch.rejects.append((index, "the event is nested too deeply"))
            continue
        events.append(event)
        batch.positions.append(index)
    return batch, events


def _is_ping(item: Any) -> bool:
    """SparkPost's test batch (and a webhook with nothing in it): `{"msys": {}}`."""
    return isinstance(item, dict) and item.keys() == {"msys"} and item["msys"] in ({}, None)


def _refused(failure: MailEventsError, stored: int) -> Refused:
    """The service refused or failed: say so in a way that makes the provider do the right thing."""
    code = failure.code
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return Refused(401, "invalid API key")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return Refused(400, failure.message or "invalid batch")
    # Anything else may pass: 503 makes the provider retry, and what this
    # attempt stored already comes back as duplicates then.
    log.warning(
        "webhook batch not stored (%s, %d events stored before): %s", code.name, stored, failure
    )
    return retry_later()


def retry_later() -> Refused:
    return Refused(503, "events could not be stored now; retry later", retry=True)
