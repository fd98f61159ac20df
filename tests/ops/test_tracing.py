"""A REST request traced end to end: shim route → stub call → gRPC service → store,
all under one trace id, with the W3C context carried across the gRPC hop."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from factories import events
from live_support import MAILEVENTS, create_keys, free_port
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mailevents import MailEventsClient
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server import tracing
from mailevents_server.logs import JsonFormatter
from mailevents_server.server import SERVICE_NAME, RunningServer
from ops.conftest import start_ops


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracing.enable(provider)
    try:
        yield exported
    finally:
        tracing.disable()
        provider.shutdown()


async def sparkpost_status(running: RunningServer, key: str) -> int:
    """The status of a SparkPost message-events search through the shim."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{running.http_port}/api/v1/message-events",
            headers={"Authorization": key},
        ) as response,
    ):
        return response.status


async def test_shim_grpc_and_store_spans_share_one_trace(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    access = logging.getLogger("mailevents.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    running, key = await start_ops(tmp_path)
    try:
        assert await sparkpost_status(running, key) == 200
    finally:
        await running.stop(grace=0)
        access.removeHandler(handler)
        access.setLevel(logging.NOTSET)

    spans = exporter.get_finished_spans()
    by_name = {span.name: span for span in spans}
    route = by_name["GET /api/v1/message-events"]
    method = f"{SERVICE_NAME}/SearchMessageEvents"
    client = next(s for s in spans if s.name == method and s.kind == SpanKind.CLIENT)
    server = next(s for s in spans if s.name == method and s.kind == SpanKind.SERVER)
    store = by_name["store.read"]
    assert route.kind == SpanKind.SERVER
    assert route.attributes["http.response.status_code"] == 200
    trace_id = route.context.trace_id
    assert {client.context.trace_id, server.context.trace_id, store.context.trace_id} == {trace_id}
    # The chain: route → client call → (over gRPC metadata) server call → store read.
    assert client.parent.span_id == route.context.span_id
    assert server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    assert store.parent.span_id == server.context.span_id
    # Both ends of the hop record the call's gRPC status.
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["rpc.grpc.status_code"] == 0
    # The access lines of the route and of its calls carry the trace id.
    logged = [json.loads(line) for line in lines]
    hex_id = format(trace_id, "032x")
    assert {
        line.get("route") or line.get("method") for line in logged if line.get("trace_id") == hex_id
    } == {
        "/api/v1/message-events",
        "/" + method,
        f"/{SERVICE_NAME}/CountMessageEvents",  # the dialect's total
    }


async def test_a_refused_call_is_an_error_span_on_both_sides(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    """A key the service does not know: the shim's CLIENT span and the service's
    SERVER span both end as errors with UNAUTHENTICATED (16)."""
    running, _key = await start_ops(tmp_path)
    try:
        assert await sparkpost_status(running, "no-such-key") == 401
    finally:
        await running.stop(grace=0)

    spans = exporter.get_finished_spans()
    method = f"{SERVICE_NAME}/SearchMessageEvents"
    for kind in (SpanKind.CLIENT, SpanKind.SERVER):
        span = next(s for s in spans if s.name == method and s.kind == kind)
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "UNAUTHENTICATED"


async def test_stream_ingest_traces_its_writes_and_the_commits(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    """Each batch of an ingest stream is written under the stream's server span;
    the group commits that store them have spans of their own."""
    running, key = await start_ops(tmp_path)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = sgrpc.MessageEventServiceStub(channel)
            requests = [
                spb.IngestMessageEventsStreamRequest(events=events(5, prefix=f"t{n}-"))
                for n in range(3)
            ]
            call = stub.IngestMessageEventsStream(
                iter(requests), metadata=(("authorization", f"Bearer {key}"),)
            )
            acks = [ack async for ack in call]
            assert sum(ack.stored for ack in acks) == 15
    finally:
        await running.stop(grace=0)

    spans = exporter.get_finished_spans()
    method = f"{SERVICE_NAME}/IngestMessageEventsStream"
    server = next(s for s in spans if s.name == method and s.kind == SpanKind.SERVER)
    writes = [s for s in spans if s.name == "store.write"]
    assert len(writes) == 3
    assert {w.parent.span_id for w in writes} == {server.context.span_id}
    assert {w.context.trace_id for w in writes} == {server.context.trace_id}
    commits = [s for s in spans if s.name == "store.commit"]
    assert commits and sum(c.attributes["events"] for c in commits) == 15


async def test_the_python_client_traced_by_opentelemetry_grpc_instrumentation(
    tmp_path: Path,
) -> None:
    """`MailEventsClient` opens its channel through `grpc.aio`, so OpenTelemetry's
    own gRPC instrumentation (as `opentelemetry-instrument` turns it on) gives
    its calls CLIENT spans, and the service's spans continue their traces."""
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracing.enable(provider)
    instrumentor = GrpcAioInstrumentorClient()
    instrumentor.instrument(tracer_provider=provider)
    running, key = await start_ops(tmp_path)
    try:
        async with MailEventsClient(running.address, key) as client:
            assert (await client.count()).total == 0
    finally:
        instrumentor.uninstrument()
        await running.stop(grace=0)
        tracing.disable()
        provider.shutdown()

    spans = exported.get_finished_spans()
    method = f"{SERVICE_NAME}/CountMessageEvents"
    server = next(s for s in spans if s.name == method and s.kind == SpanKind.SERVER)
    client_span = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert client_span.name.lstrip("/") == method
    assert server.context.trace_id == client_span.context.trace_id
    assert server.parent.span_id == client_span.context.span_id


def serve(database: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`mailevents serve` in `env`, its log (stderr too) on its stdout."""
    return subprocess.Popen(
        [
            str(MAILEVENTS),
            *("serve", "--database", database, "--grpc-address", f"127.0.0.1:{port}"),
            *("--http-address", "", "--metrics-address", "", "--log-level", "warning"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_serve_traces_when_the_otel_environment_says_so(tmp_path: Path) -> None:
    """`OTEL_TRACES_EXPORTER=console` and `OTEL_SERVICE_NAME`, read by `mailevents serve`."""
    database = str(tmp_path / "events.db")
    (key,) = await create_keys(database, "acme")
    port = free_port()
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "mailevents-under-test",
    }
    process = serve(database, port, env)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.channel_ready()
            await sgrpc.MessageEventServiceStub(channel).ListMessageEvents(
                spb.ListMessageEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    text = out.decode()
    assert f'"name": "{SERVICE_NAME}/ListMessageEvents"' in text
    assert '"name": "store.page"' in text
    assert '"service.name": "mailevents-under-test"' in text


async def test_without_the_otel_extra_serve_runs_untraced(tmp_path: Path) -> None:
    """Where OpenTelemetry is not installed, `OTEL_*` asking for traces gets one
    warning, and the service serves as usual."""
    hidden = tmp_path / "hide" / "opentelemetry"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not installed here')\n")
    database = str(tmp_path / "events.db")
    (key,) = await create_keys(database, "acme")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(hidden.parent), "OTEL_TRACES_EXPORTER": "console"}
    process = serve(database, port, env)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.channel_ready()
            response = await sgrpc.MessageEventServiceStub(channel).CountMessageEvents(
                spb.CountMessageEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
            assert response.total == 0
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    text = out.decode()
    assert "the otel extra is not installed: not tracing" in text
    assert '"name"' not in text  # no span was printed
    assert "Traceback" not in text
