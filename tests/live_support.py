"""Helpers for the live-stream and streaming-ingest tests: reading streams with a
deadline, and real `mailevents serve` processes for the tests that need SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from conftest import Server, make_server
from google.protobuf.duration_pb2 import Duration
from pgtest import SERVER_BACKENDS, fresh_database

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.auth import hash_key, new_key
from mailevents_server.store import open_store

MAILEVENTS = Path(sys.executable).with_name("mailevents")


#: The stores live-stream tests run against: the ids-in-commit-order contract
#: is the store's, so it is checked on every backend.
BACKENDS = ["sqlite", *SERVER_BACKENDS]


@asynccontextmanager
async def backend_server(backend: str, directory: Path) -> AsyncIterator[Server]:
    """A real server (as conftest's `server`) on a fresh SQLite file or PostgreSQL database."""
    if backend == "sqlite":
        srv = await make_server(str(directory / "events.db"))
        try:
            yield srv
        finally:
            await srv.channel.close()
            await srv.running.stop(grace=0)
        return
    async with fresh_database(backend) as url:
        srv = await make_server(url)
        try:
            yield srv
        finally:
            await srv.channel.close()
            await srv.running.stop(grace=0)


def seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


async def read(call: Any, within: float = 5.0) -> Any:
    """The next message of a stream; fails the test when none comes `within` seconds."""
    async with asyncio.timeout(within):
        message = await call.read()
    assert message is not grpc.aio.EOF, "the stream ended"
    return message


async def read_events(call: Any, count: int, within: float = 10.0) -> list[Any]:
    """Messages until `count` events came (no more: a test fails on an extra one)."""
    messages = []
    got = 0
    async with asyncio.timeout(within):
        while got < count:
            message = await call.read()
            assert message is not grpc.aio.EOF, f"the stream ended after {got} of {count} events"
            messages.append(message)
            got += len(message.events)
    assert got == count, f"{got} events, expected {count}"
    return messages


async def read_to_end(call: Any, within: float = 10.0) -> list[Any]:
    """Every remaining message of a stream that ends."""
    messages = []
    async with asyncio.timeout(within):
        while (message := await call.read()) is not grpc.aio.EOF:
            messages.append(message)
    return messages


def ids_of(messages: Sequence[Any]) -> list[str]:
    return [ev.event_id for message in messages for ev in message.events]


def watch_request(**fields: Any) -> spb.WatchMessageEventsRequest:
    return spb.WatchMessageEventsRequest(**fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_keys(database: str, *tenants: str) -> list[str]:
    """API keys for the tenants, written straight into the database before a server starts."""
    store = open_store(database)
    await store.open()
    try:
        keys = []
        for tenant in tenants:
            key = new_key()
            await store.create_key(tenant, hash_key(key))
            keys.append(key)
        return keys
    finally:
        await store.close()


@dataclass
class ServeProcess:
    """`mailevents serve` in its own process, on a fixed port so that it can be restarted."""

    database: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    #: The REST shim and webhooks' port; 0 runs gRPC alone.
    http_port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = self._spawn()
        await self.wait_ready()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.database + ".log", "ab") as log:
            return subprocess.Popen(
                [
                    str(MAILEVENTS),
                    "serve",
                    "--database",
                    self.database,
                    "--grpc-address",
                    self.address,
                    "--http-address",
                    f"127.0.0.1:{self.http_port}" if self.http_port else "",
                    "--metrics-address",
                    "",
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=log,
            )

    async def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        async with grpc.aio.insecure_channel(self.address) as channel:
            while True:
                assert self.process is not None and self.process.poll() is None, self.log()
                try:
                    await asyncio.wait_for(channel.channel_ready(), 0.5)
                    return
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise AssertionError("server did not start\n" + self.log()) from None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def children(self) -> list[int]:
        """The server's child processes now (its workers), from /proc."""
        assert self.process is not None
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_anon_kib(self) -> int:
        """The server's anonymous resident memory (its heap), not mapped database pages."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        raise AssertionError("no RssAnon in /proc status")

    def log(self) -> str:
        path = Path(self.database + ".log")
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    )


def stub(chan: grpc.aio.Channel) -> sgrpc.MessageEventServiceStub:
    return sgrpc.MessageEventServiceStub(chan)  # type: ignore[no-untyped-call]


async def aiter_batches(
    batches: Sequence[Sequence[pb.MessageEvent]],
) -> AsyncIterator[spb.IngestMessageEventsStreamRequest]:
    for i, batch in enumerate(batches):
        yield spb.IngestMessageEventsStreamRequest(events=batch, batch_id=f"b{i}")
