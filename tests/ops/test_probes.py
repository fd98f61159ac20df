"""/healthz and /readyz on the shim's port, and gRPC health while draining."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mailevents_server.rest import bound_port, start_rest
from mailevents_server.server import SERVICE_NAME, ServerConfig, client_channel, start_server
from mailevents_server.store.sqlite import SQLiteStore
from ops.conftest import Ops


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with session.get(url) as response:
        return response.status, await response.json()


async def test_ready_while_serving_and_503_with_not_serving_while_draining(ops: Ops) -> None:
    assert await get(ops.session, ops.http + "/healthz") == (200, {"status": "ok"})
    assert await get(ops.session, ops.http + "/readyz") == (200, {"status": "ready"})
    async with grpc.aio.insecure_channel(ops.running.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        assert (await health.Check(request)).status == health_pb2.HealthCheckResponse.SERVING

        await ops.running.drain()  # what SIGTERM does first

        assert (await health.Check(request)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    status, body = await get(ops.session, ops.http + "/readyz")
    assert status == 503
    assert body == {"status": "not ready", "reason": "service NOT_SERVING"}
    assert (await get(ops.session, ops.http + "/healthz"))[0] == 200


def reserved_port() -> socket.socket:
    """A loopback port held (bound, not listening: connections are refused) until closed.

    Held rather than picked and let go, so that no other server of a busy test
    run takes it before the service under test binds it.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


async def test_shim_alone_is_not_ready_until_the_service_has_opened_its_store(
    tmp_path: Path,
) -> None:
    """`mailevents rest` against a service that has not opened its store yet (it
    is not listening): 503; once the service is up: 200."""
    reserved = reserved_port()
    port = int(reserved.getsockname()[1])
    channel = client_channel(f"127.0.0.1:{port}")
    runner = await start_rest(channel, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound_port(runner)}/readyz"
    running = None
    try:
        async with aiohttp.ClientSession() as session:
            status, body = await get(session, url)
            assert status == 503
            assert body["reason"].startswith("service unreachable")
            reserved.close()
            running = await start_server(
                ServerConfig(
                    grpc_address=f"127.0.0.1:{port}",
                    database=str(tmp_path / "events.db"),
                    http_address="",
                )
            )
            for _ in range(100):  # the channel reconnects with backoff
                status, body = await get(session, url)
                if status == 200:
                    break
                await asyncio.sleep(0.1)
            assert (status, body) == (200, {"status": "ready"})
            await running.drain()
            assert (await get(session, url))[0] == 503
    finally:
        reserved.close()
        await runner.cleanup()
        await channel.close()
        if running is not None:
            await running.stop(grace=0)


async def test_serve_answers_503_while_its_store_is_opening(tmp_path: Path) -> None:
    """`serve` listens on the shim's port before its store opens: while migrations
    wait (here: for another process's write lock), /readyz and the dialects say 503."""
    database = str(tmp_path / "events.db")
    store = SQLiteStore(database)
    await store.open()  # an existing database, as on a restart
    await store.close()
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    reserved = reserved_port()
    port = int(reserved.getsockname()[1])
    config = ServerConfig(
        grpc_address="127.0.0.1:0", database=database, http_address=f"127.0.0.1:{port}"
    )
    reserved.close()
    starting = asyncio.create_task(start_server(config))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    status, body = await get(session, base + "/readyz")
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            assert status == 503
            assert body == {"status": "not ready", "reason": "starting: the store is not open yet"}
            async with session.get(base + "/api/v1/message-events") as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
            assert (await get(session, base + "/healthz"))[0] == 200
            assert not starting.done()

            blocker.execute("ROLLBACK")
            running = await asyncio.wait_for(starting, 30)
            try:
                assert await get(session, base + "/readyz") == (200, {"status": "ready"})
            finally:
                await running.stop(grace=0)
    finally:
        blocker.close()
        if not starting.done():
            starting.cancel()
