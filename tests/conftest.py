"""Shared fixtures: a real gRPC server on 127.0.0.1:0 over a real SQLite file.

Nothing of ours is mocked: tests talk to the server through the generated
stub, exactly as a client in another process would.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, settings

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.auth import hash_key, new_key
from mailevents_server.server import RunningServer, ServerConfig, start_server

# Property-based tests: a small, derandomized budget by default, so the suite
# is quick on two cores and cannot flake; MAILEVENTS_FUZZ_EXAMPLES=N asks for
# N random examples per test instead (a longer hunt, run by hand).
settings.register_profile(
    "suite",
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "hunt",
    parent=settings.get_profile("suite"),
    max_examples=int(os.environ.get("MAILEVENTS_FUZZ_EXAMPLES") or 0) or 20,
    derandomize=False,
)
settings.load_profile("hunt" if os.environ.get("MAILEVENTS_FUZZ_EXAMPLES") else "suite")

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"


@dataclass
class Server:
    """A running server and what a test needs to talk to it."""

    running: RunningServer
    address: str
    database: str
    api_key: str  # tenant "acme"
    other_api_key: str  # tenant "other"
    channel: grpc.aio.Channel
    stub: sgrpc.MessageEventServiceStub

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.api_key}"),)

    async def ingest(
        self, events: Sequence[pb.MessageEvent], key: str | None = None
    ) -> spb.IngestMessageEventsResponse:
        """Ingest through the real RPC, in chunks of 10,000."""
        response = spb.IngestMessageEventsResponse()
        for start in range(0, len(events), 10_000):
            part = await self.stub.IngestMessageEvents(
                spb.IngestMessageEventsRequest(events=events[start : start + 10_000]),
                metadata=self.metadata(key),
            )
            response.results.extend(part.results)
            response.stored += part.stored
            response.duplicates += part.duplicates
            response.rejected += part.rejected
        return response


async def make_server(database: str) -> Server:
    running = await start_server(
        ServerConfig(grpc_address="127.0.0.1:0", database=database, http_address="")
    )
    keys = []
    for tenant in ("acme", "other"):
        key = new_key()
        await running.store.create_key(tenant, hash_key(key))
        keys.append(key)
    channel = grpc.aio.insecure_channel(
        running.address,
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    return Server(
        running,
        running.address,
        database,
        keys[0],
        keys[1],
        channel,
        sgrpc.MessageEventServiceStub(channel),
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server on SQLite; on a fresh PostgreSQL database (or Citus schema) instead
    when MAILEVENTS_TEST_STORE=postgres (or citus): the whole suite against it."""
    async with contextlib.AsyncExitStack() as stack:
        backend = os.environ.get("MAILEVENTS_TEST_STORE", "sqlite")
        if backend in ("postgres", "citus"):
            from pgtest import fresh_database

            database = await stack.enter_async_context(fresh_database(backend))
        else:
            database = str(tmp_path / "events.db")
        srv = await make_server(database)
        try:
            yield srv
        finally:
            await srv.channel.close()
            await srv.running.stop(grace=0)
