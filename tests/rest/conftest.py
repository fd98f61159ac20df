"""The REST shim under test: the real aiohttp app on 127.0.0.1:0, talking to the
real gRPC server of the shared `server` fixture through the generated stub.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mailevents_server.rest import bound_port, start_rest


@dataclass
class Shim:
    """A running shim and an HTTP session to call it with."""

    base: str
    session: aiohttp.ClientSession
    server: Any  # the conftest `Server`: ingest(), api_key, other_api_key

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        """Status, parsed JSON body (None when empty) and the response."""
        async with self.session.get(self.base + path, **kwargs) as response:
            raw = await response.read()
            return response.status, _parse(raw), response

    async def get_raw(self, path: str, **kwargs: Any) -> tuple[int, bytes, aiohttp.ClientResponse]:
        async with self.session.get(self.base + path, **kwargs) as response:
            return response.status, await response.read(), response

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.post(self.base + path, **kwargs) as response:
            raw = await response.read()
            return response.status, _parse(raw), response


def _parse(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


@pytest.fixture
async def shim(server: Any) -> AsyncIterator[Shim]:
    runner: web.AppRunner = await start_rest(server.channel, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Shim(f"http://127.0.0.1:{bound_port(runner)}", session, server)
    finally:
        await runner.cleanup()
