"""/metrics of a real server after real calls: the counters and histograms moved
by exactly what the calls did, per gRPC method and per REST dialect."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from factories import event, events

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.server import SERVICE_NAME
from ops.conftest import Ops, start_ops

LIST = f"/{SERVICE_NAME}/ListMessageEvents"
INGEST = f"/{SERVICE_NAME}/IngestMessageEvents"
SEARCH = f"/{SERVICE_NAME}/SearchMessageEvents"


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_grpc_calls_are_counted_per_method_and_code(ops: Ops) -> None:
    batch = [*events(5, prefix="m"), event("m-00000"), event("")]  # 1 duplicate, 1 rejected
    await ops.stub.IngestMessageEvents(
        spb.IngestMessageEventsRequest(events=batch), metadata=ops.metadata()
    )
    for _ in range(3):
        await ops.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(page_size=2), metadata=ops.metadata()
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await ops.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(), metadata=ops.metadata("mek_wrong")
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await ops.stub.ListMessageEvents(spb.ListMessageEventsRequest())
    streamed = [
        r
        async for r in ops.stub.SearchMessageEvents(
            spb.SearchMessageEventsRequest(batch_size=2), metadata=ops.metadata()
        )
    ]
    assert sum(len(r.events) for r in streamed) == 5

    m = await ops.scrape()
    total = "mailevents_grpc_requests_total"
    assert value(m, total, method=LIST, code="OK") == 3
    assert value(m, total, method=LIST, code="UNAUTHENTICATED") == 2
    assert value(m, total, method=INGEST, code="OK") == 1
    assert value(m, total, method=SEARCH, code="OK") == 1
    assert value(m, "mailevents_grpc_handling_seconds_count", method=LIST) == 5
    assert value(m, "mailevents_grpc_stream_duration_seconds_count", method=SEARCH) == 1
    assert value(m, "mailevents_grpc_handling_seconds_count", method=SEARCH) == 0
    assert value(m, "mailevents_grpc_stream_events_total", method=SEARCH) == 5
    events_total = "mailevents_ingest_events_total"
    assert value(m, events_total, path="unary", outcome="stored") == 5
    assert value(m, events_total, path="unary", outcome="duplicate") == 1
    assert value(m, events_total, path="unary", outcome="rejected") == 1
    assert value(m, "mailevents_ingest_ack_seconds_count", path="unary") == 1
    assert value(m, "mailevents_auth_refusals_total", reason="API_KEY_INVALID") == 1
    assert value(m, "mailevents_auth_refusals_total", reason="API_KEY_MISSING") == 1
    # One group commit of the 6 accepted events (the duplicate is in the batch).
    assert value(m, "mailevents_store_commit_seconds_count") == 1
    assert value(m, "mailevents_store_commit_events_sum") == 6
    assert value(m, "mailevents_store_database_bytes") > 0
    assert ("mailevents_store_wal_bytes", ()) in m


async def test_stream_ingest_counts_batches_by_path(ops: Ops) -> None:
    async def requests():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield spb.IngestMessageEventsStreamRequest(events=events(4, prefix=f"s{i}"))

    acks = [
        a async for a in ops.stub.IngestMessageEventsStream(requests(), metadata=ops.metadata())
    ]
    assert len(acks) == 3
    m = await ops.scrape()
    assert value(m, "mailevents_ingest_events_total", path="stream", outcome="stored") == 12
    assert value(m, "mailevents_ingest_ack_seconds_count", path="stream") == 3


async def test_rest_requests_are_counted_per_dialect_and_route(ops: Ops) -> None:
    auth = {"Authorization": ops.key}
    for _ in range(2):
        async with ops.session.get(ops.http + "/api/v1/message-events", headers=auth) as r:
            assert r.status == 200
    async with ops.session.get(
        ops.http + "/api/messageevent/", params={"api_key": ops.key, "username": "u"}
    ) as r:
        assert r.status == 200
    async with ops.session.get(ops.http + "/api/v1/message-events") as r:
        assert r.status == 401
    async with ops.session.get(ops.http + "/healthz") as r:
        assert r.status == 200

    m = await ops.scrape()
    total = "mailevents_http_requests_total"
    sp = {"dialect": "sparkpost", "route": "/api/v1/message-events"}
    assert value(m, total, **sp, status="200") == 2
    assert value(m, total, **sp, status="401") == 1
    assert value(m, total, dialect="tastypie", route="/api/messageevent/", status="200") == 1
    assert value(m, total, dialect="probe", route="/healthz", status="200") == 1
    assert value(m, "mailevents_http_request_duration_seconds_count", **sp) == 3
    # The shim's calls reach the service: three searches with a key, one refused.
    assert value(m, "mailevents_grpc_requests_total", method=SEARCH, code="OK") == 3


async def test_routes_with_an_id_are_counted_under_their_dialect(ops: Ops) -> None:
    """Routes whose id segment has a pattern of its own are labelled by their
    dialect too, and by the pattern, never by the id."""
    async with ops.session.get(
        ops.http + "/v1/message/{x}/events", params={"access_token": ops.key}
    ) as r:
        assert r.status == 200
    async with ops.session.get(
        ops.http + "/api/messageevent/7/", params={"api_key": ops.key, "username": "u"}
    ) as r:
        assert r.status == 404
    m = await ops.scrape()
    total = "mailevents_http_requests_total"
    route = "/v1/message/{message_id}/events"
    assert value(m, total, dialect="copernica", route=route, status="200") == 1
    route = "/api/messageevent/{pk}/"
    assert value(m, total, dialect="tastypie", route=route, status="404") == 1


async def test_webhook_ingest_counts_by_provider(ops: Ops) -> None:
    body = [
        {
            "msys": {
                "message_event": {
                    "type": "delivery",
                    "event_id": "w-1",
                    "timestamp": "1700000000",
                    "message_id": "m1",
                    "rcpt_to": "a@example.com",
                }
            }
        }
    ]
    async with ops.session.post(
        ops.http + "/webhooks/sparkpost", json=body, headers={"Authorization": f"Bearer {ops.key}"}
    ) as r:
        assert r.status == 200, await r.text()
    url = ops.http + "/webhooks/sparkpost"
    async with ops.session.post(url, json=body, headers={"Authorization": "Bearer mek_x"}) as r:
        assert r.status == 401
    async with ops.session.post(url, json=body) as r:
        assert r.status == 401
    m = await ops.scrape()
    assert value(m, "mailevents_auth_refusals_total", reason="API_KEY_INVALID") == 1
    assert value(m, "mailevents_auth_refusals_total", reason="API_KEY_MISSING") == 1
    path = "webhook_sparkpost"
    assert value(m, "mailevents_ingest_events_total", path=path, outcome="stored") == 1
    assert value(m, "mailevents_ingest_ack_seconds_count", path=path) == 1
    route = {"dialect": "webhook", "route": "/webhooks/sparkpost"}
    assert value(m, "mailevents_http_requests_total", **route, status="200") == 1


async def test_live_watch_is_a_gauge_with_heartbeats(ops: Ops) -> None:
    watch = ops.stub.WatchMessageEvents(spb.WatchMessageEventsRequest(), metadata=ops.metadata())
    await watch.read()  # the announcement: the stream is open
    m = await ops.scrape()
    assert value(m, "mailevents_live_streams") == 1
    assert value(m, "mailevents_live_heartbeats_total") == 1
    watch.cancel()
    for _ in range(100):
        m = await ops.scrape()
        if value(m, "mailevents_live_streams") == 0:
            break
    assert value(m, "mailevents_live_streams") == 0


async def test_tenant_label_only_when_asked(tmp_path: Path, ops: Ops) -> None:
    m = await ops.scrape()
    assert not any("tenant" in dict(labels) for _, labels in m)
    running, key = await start_ops(tmp_path / "t", metrics_tenant_label=True)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = spb_grpc_stub(channel)
            await stub.ListMessageEvents(
                spb.ListMessageEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
        labelled = Ops(running, key, stub, ops.session)
        m = await labelled.scrape()
        tenants = {
            dict(labels).get("tenant")
            for name, labels in m
            if name.endswith("requests_total") and name.startswith("mailevents_grpc")
        }
        assert tenants == {"1"}
    finally:
        await running.stop(grace=0)


def spb_grpc_stub(channel: grpc.aio.Channel):  # type: ignore[no-untyped-def]
    from mailevents.v1 import message_event_service_pb2_grpc as sgrpc

    return sgrpc.MessageEventServiceStub(channel)
