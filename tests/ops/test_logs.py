"""`mailevents serve --log-format json`: every line is one JSON object, calls leave
one access line each, and no line holds key material."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import grpc
from live_support import MAILEVENTS, create_keys, free_port

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.server import SERVICE_NAME


async def test_json_lines_with_access_lines_and_no_key_material(tmp_path: Path) -> None:
    database = str(tmp_path / "events.db")
    (key,) = await create_keys(database, "acme")
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:  # noqa: ASYNC230 - a local file, once
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
            [
                str(MAILEVENTS),
                *("serve", "--database", database, "--grpc-address", f"127.0.0.1:{grpc_port}"),
                *("--http-address", f"127.0.0.1:{http_port}", "--metrics-address", ""),
                *("--log-format", "json", "--log-level", "info", "--workers", "0"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            await channel.channel_ready()
            stub = sgrpc.MessageEventServiceStub(channel)
            await stub.ListMessageEvents(
                spb.ListMessageEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
            wrong = key[:-4] + "AAAA"  # near a real key: its prefix must not show either
            try:
                await stub.ListMessageEvents(
                    spb.ListMessageEventsRequest(),
                    metadata=(("authorization", f"Bearer {wrong}"),),
                )
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        base = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(50):  # the shim starts just after gRPC
                try:
                    async with session.get(
                        base + "/api/messageevent/", params={"api_key": key, "username": "u"}
                    ) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    time.sleep(0.1)  # noqa: ASYNC251 - a short poll in a test
            async with session.get(base + "/v1/message/m1/events", params={"access_token": key}):
                pass
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    secret = key.removeprefix("mek_")
    assert secret[:8] not in text
    access = [line for line in lines if line["logger"] == "mailevents.access"]
    method = f"/{SERVICE_NAME}/ListMessageEvents"
    grpc_lines = [a for a in access if a.get("method") == method]
    assert sorted(a["status"] for a in grpc_lines) == ["OK", "UNAUTHENTICATED"]
    assert all(a["level"] == "INFO" and a["duration_ms"] >= 0 for a in grpc_lines)
    rest_lines = [a for a in access if a.get("route") == "/api/messageevent/"]
    assert [(a["dialect"], a["status"]) for a in rest_lines] == [("tastypie", 200)]
    assert any(a.get("route") == "/v1/message/{message_id}/events" for a in access)
