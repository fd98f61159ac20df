"""The 1M-event stream: raw sqlite3 floor vs SearchMessageEvents end to end."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2

from benchmarks.process import ServerProcess
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc

#: The same rows the service reads for an unfiltered search: tenant, snapshot, order.
FLOOR_SQL = (
    "SELECT ts, id, data FROM events WHERE tenant_id = ? AND id <= ? ORDER BY ts DESC, id DESC"
)
TYPED_SQL = (
    "SELECT ts, id, event_id, type, type_name, recipient, campaign_id, message_id, transmission_id,"
    " template_id, bounce_class, reason, error_code, sender, friendly_from, routing_domain,"
    " ip_address, user_agent, target_link_url, msg_size, num_retries, queue_time, customer_id,"
    " subaccount_id, tags FROM events WHERE tenant_id = ? AND id <= ? ORDER BY ts DESC, id DESC"
)


def raw_floor(path: Path, sql: str = FLOOR_SQL) -> tuple[int, float]:
    """Plain sqlite3 reading the rows a search reads: (rows, rows/s), best of two runs
    so that the floor, like the server, reads a warm page cache."""
    return max((_read_all(path, sql) for _ in range(2)), key=lambda r: r[1])


def _read_all(path: Path, sql: str) -> tuple[int, float]:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA mmap_size = 1073741824")
        max_id = conn.execute("SELECT max(id) FROM events").fetchone()[0]
        started = time.perf_counter()
        cur = conn.execute(sql, (1, max_id))
        n = 0
        while rows := cur.fetchmany(1000):
            n += len(rows)
        elapsed = time.perf_counter() - started
    return n, n / elapsed


def stream(
    server: ServerProcess,
    key: str,
    *,
    batch_size: int = 1000,
    paths: list[str] | None = None,
    parse: bool = True,
    max_events: int = 0,
) -> tuple[int, float]:
    """SearchMessageEvents over loopback from this process: (events, events/s)."""
    metadata = (("authorization", f"Bearer {key}"),)
    request = spb.SearchMessageEventsRequest(batch_size=batch_size, max_events=max_events)
    if paths:
        request.read_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(server.address, options=options) as channel:
        if parse:
            stub = sgrpc.MessageEventServiceStub(channel)  # type: ignore[no-untyped-call]
            call = stub.SearchMessageEvents
        else:  # the transport alone: responses stay bytes, events are counted by stats
            call = channel.unary_stream(
                "/mailevents.v1.MessageEventService/SearchMessageEvents",
                request_serializer=spb.SearchMessageEventsRequest.SerializeToString,
                response_deserializer=None,
            )
        started = time.perf_counter()
        n = 0
        last = b""
        for response in call(request, metadata=metadata):
            if parse:
                n += len(response.events)
            else:
                last = response
        elapsed = time.perf_counter() - started
        if not parse:
            n = spb.SearchMessageEventsResponse.FromString(last).stats.events
    return n, n / elapsed


def list_pages(server: ServerProcess, key: str, *, page_size: int = 1000, pages: int = 50) -> float:
    """ListMessageEvents, following next_page_token from the first page: pages/s over
    `pages` pages (fewer when the store runs out), each response parsed."""
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(server.address) as channel:
        stub = sgrpc.MessageEventServiceStub(channel)  # type: ignore[no-untyped-call]
        request = spb.ListMessageEventsRequest(page_size=page_size)
        stub.ListMessageEvents(request, metadata=metadata)  # warm up
        started = time.perf_counter()
        done = 0
        while done < pages:
            response = stub.ListMessageEvents(request, metadata=metadata)
            done += 1
            if not response.next_page_token:
                break
            request.page_token = response.next_page_token
        elapsed = time.perf_counter() - started
    return done / elapsed
