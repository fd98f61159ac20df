"""Store metrics on PostgreSQL: its size and its connection pools, read at scrape time."""

from __future__ import annotations

import contextlib

import aiohttp
import grpc
from factories import events
from pgtest import fresh_database, requires_postgres

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.auth import hash_key, new_key
from mailevents_server.server import ServerConfig, start_server
from ops.conftest import Ops
from ops.test_metrics import value

pytestmark = requires_postgres


async def test_postgres_reports_its_size_and_connection_pools() -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database())
        running = await start_server(
            ServerConfig(
                grpc_address="127.0.0.1:0",
                database=url,
                http_address="",
                metrics_address="127.0.0.1:0",
            )
        )
        stack.push_async_callback(running.stop, 0)
        key = new_key()
        await running.store.create_key("acme", hash_key(key))
        async with grpc.aio.insecure_channel(running.address) as channel:
            await sgrpc.MessageEventServiceStub(channel).IngestMessageEvents(
                spb.IngestMessageEventsRequest(events=events(3)),
                metadata=(("authorization", f"Bearer {key}"),),
            )
        async with aiohttp.ClientSession() as session:
            ops = Ops(running, key, None, session)  # type: ignore[arg-type]
            m = await ops.scrape()
        assert value(m, "mailevents_store_database_bytes") > 0
        assert ("mailevents_store_wal_bytes", ()) not in m
        pool = "mailevents_store_pool_connections"
        assert value(m, pool, pool="queries", state="max") == 10
        assert value(m, pool, pool="queries", state="in_use") == 0
        assert value(m, pool, pool="streams", state="max") == 32
        assert value(m, "mailevents_store_commit_events_sum") == 3
