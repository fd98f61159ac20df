"""`mailevents serve` processes as replicas behind a load balancer, for tests that run
several against one PostgreSQL or Citus database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc

MAILEVENTS = str(Path(sys.executable).parent / "mailevents")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_text(path: Path) -> str:
    return path.read_text(errors="replace")


@dataclass
class Replica:
    process: asyncio.subprocess.Process
    channel: grpc.aio.Channel
    stub: sgrpc.MessageEventServiceStub
    key: str

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.key}"),)

    async def ingest(self, events: list[object]) -> spb.IngestMessageEventsResponse:
        return await self.stub.IngestMessageEvents(  # type: ignore[no-any-return]
            spb.IngestMessageEventsRequest(events=events), metadata=self.metadata(), timeout=30
        )


async def start_replica(url: str, key: str, log: Path) -> Replica:
    port = free_port()
    with open(log, "wb") as out:  # noqa: ASYNC230 - a local file, once
        process = await asyncio.create_subprocess_exec(
            *(MAILEVENTS, "serve", "--database", url, "--grpc-address", f"127.0.0.1:{port}"),
            env={
                **os.environ,
                "MAILEVENTS_HTTP_ADDRESS": "",
                "MAILEVENTS_METRICS_ADDRESS": "",
                "MAILEVENTS_LOG_LEVEL": "warning",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = sgrpc.MessageEventServiceStub(channel)
    replica = Replica(process, channel, stub, key)
    for _ in range(300):
        if process.returncode is not None:
            raise AssertionError(f"serve exited: {log_text(log)}")
        try:
            await stub.CountMessageEvents(
                spb.CountMessageEventsRequest(), metadata=replica.metadata(), timeout=1
            )
            return replica
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"serve did not answer: {log_text(log)}")


async def stop_replica(replica: Replica) -> None:
    await replica.channel.close()
    replica.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(replica.process.wait(), 15)
    except TimeoutError:
        replica.process.kill()
        await replica.process.wait()
    assert replica.process.returncode == 0
