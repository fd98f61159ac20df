"""A whole `serve` in this process: gRPC, the shim and /metrics on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.auth import hash_key, new_key
from mailevents_server.server import RunningServer, ServerConfig, start_server


@dataclass
class Ops:
    running: RunningServer
    key: str
    stub: sgrpc.MessageEventServiceStub
    session: aiohttp.ClientSession

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.running.http_port}"

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.key}"),)

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics: (name, sorted labels) -> value."""
        url = f"http://127.0.0.1:{self.running.metrics_port}/metrics"
        async with self.session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


async def start_ops(tmp_path: Path, **options: object) -> tuple[RunningServer, str]:
    running = await start_server(
        ServerConfig(
            grpc_address="127.0.0.1:0",
            database=str(tmp_path / "events.db"),
            http_address="127.0.0.1:0",
            metrics_address="127.0.0.1:0",
            workers=0,
            **options,  # type: ignore[arg-type]
        )
    )
    key = new_key()
    await running.store.create_key("acme", hash_key(key))
    return running, key


@pytest.fixture
async def ops(tmp_path: Path) -> AsyncIterator[Ops]:
    running, key = await start_ops(tmp_path)
    try:
        async with (
            grpc.aio.insecure_channel(running.address) as channel,
            aiohttp.ClientSession() as session,
        ):
            yield Ops(running, key, sgrpc.MessageEventServiceStub(channel), session)
    finally:
        await running.stop(grace=0)
