"""PostgreSQL faults, injected for real under a running service: the server crashed
and restarted in immediate mode (on a server of this module's own, never the
suite's shared one), the service's connections killed with
pg_terminate_backend, and a lock held past a call's deadline.

Each test checks what callers meet: refusals are UNAVAILABLE with a RetryInfo
(never INTERNAL, never a hang past the deadline), a client with retries loses
nothing, every acknowledged event is stored once, and the log holds one
WARNING line per refusal and no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest
from conftest import Server, make_server
from factories import events
from fault_support import (
    DedicatedPostgres,
    Notices,
    assert_clean_log,
    assert_store_unavailable,
    assert_stored_once,
    first_retry,
)
from pgtest import fresh_database, requires_postgres

from mailevents import MailEventsClient
from mailevents.client import RetryNotice, RetryPolicy
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.auth import KeyResolver
from mailevents_server.rest import bound_port, start_rest
from mailevents_server.rest.tastypie import CANNED_ERROR

pytestmark = requires_postgres


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DedicatedPostgres]:
    """A PostgreSQL server for this module alone: its tests crash it."""
    server = DedicatedPostgres(tmp_path_factory.mktemp("own-postgres"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def service_on(url: str) -> AsyncIterator[Server]:
    srv = await make_server(url)
    try:
        yield srv
    finally:
        await srv.channel.close()
        await srv.running.stop(grace=0)


@contextlib.asynccontextmanager
async def own_database(postgres: DedicatedPostgres) -> AsyncIterator[str]:
    """A fresh database on the module's own server, for one test."""
    admin = await asyncpg.connect(postgres.url)
    name = f"mev_fault_{time.monotonic_ns()}"
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.close()


def retrying_client(srv: Server, notices: Notices, timeout: float = 5.0) -> MailEventsClient:
    return MailEventsClient(
        srv.address,
        srv.api_key,
        timeout=timeout,
        retry=RetryPolicy(total=60),
        on_retry=notices,
    )


async def test_crashed_server_refuses_with_unavailable_and_clients_ride_it_out(
    own_postgres: DedicatedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with own_database(own_postgres) as url, service_on(url) as srv:
        await srv.ingest(events(100, prefix="before"))
        await own_postgres.command("halt")
        try:
            # Writes and reads are refused at once, as retryable.
            for call in (
                srv.stub.IngestMessageEvents(
                    spb.IngestMessageEventsRequest(events=events(5, prefix="refused")),
                    metadata=srv.metadata(),
                    timeout=5,
                ),
                srv.stub.ListMessageEvents(
                    spb.ListMessageEventsRequest(), metadata=srv.metadata(), timeout=5
                ),
                srv.stub.CountMessageEvents(
                    spb.CountMessageEventsRequest(), metadata=srv.metadata(), timeout=5
                ),
            ):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert time.monotonic() - started < 4
                assert_store_unavailable(refused.value)

            # A client with retries waits for the store to come back.
            notices = Notices()
            client = retrying_client(srv, notices)
            ingest = asyncio.create_task(client.ingest(events(200, prefix="waited")))
            await first_retry(notices, ingest)
        finally:
            await own_postgres.command("resume")
        async with client:
            response = await ingest
        assert response.stored == 200
        assert str(notices.seen[0]).startswith("store unavailable, retrying in ")
        acknowledged = [f"before-{i:05d}" for i in range(100)]
        acknowledged += [r.event_id for r in response.results]
        stored = await assert_stored_once(srv, acknowledged)
        assert {e.event_id for e in stored} <= set(acknowledged) | {
            f"refused-{i:05d}" for i in range(5)
        }
    warnings = assert_clean_log(caplog.records)
    assert sum("refused with UNAVAILABLE" in w for w in warnings) >= 3


async def test_restart_in_immediate_mode_mid_ingest_loses_nothing(
    own_postgres: DedicatedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """`pg_ctl restart -m immediate` while an ingest stream runs: every batch is
    acknowledged in the end, each event stored once."""
    caplog.set_level(logging.INFO)
    async with own_database(own_postgres) as url, service_on(url) as srv:
        notices = Notices()
        batches = [events(250, prefix=f"s{n:03d}") for n in range(40)]
        acknowledged: list[str] = []
        some_acknowledged, restarted = asyncio.Event(), asyncio.Event()

        async def restart_after_some() -> None:
            await some_acknowledged.wait()
            await own_postgres.command("restart")
            restarted.set()

        restarter = asyncio.create_task(restart_after_some())

        async def slow_batches() -> AsyncIterator[list]:
            for number, batch in enumerate(batches):
                if number > 6 and not restarted.is_set():
                    async with asyncio.timeout(30):  # the rest go while the store recovers
                        await restarted.wait()
                yield batch

        async with retrying_client(srv, notices) as client:
            async for ack in client.ingest_stream(slow_batches(), window=4):
                assert ack.stored + ack.duplicates == 250
                acknowledged += [r.event_id for r in ack.results]
                if len(acknowledged) >= 1000:
                    some_acknowledged.set()
        await restarter
        assert len(acknowledged) == 40 * 250
        stored = await assert_stored_once(srv, acknowledged)
        assert len(stored) == 40 * 250
    assert_clean_log(caplog.records)


async def test_search_cut_by_a_crash_resumes_from_its_last_token(
    own_postgres: DedicatedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with own_database(own_postgres) as url, service_on(url) as srv:
        await srv.ingest(events(10_000, prefix="e", friendly_from="f" * 2000))
        notices: list[RetryNotice] = []
        received: list[str] = []
        resumed = asyncio.Event()

        def on_retry(notice: RetryNotice) -> None:
            notices.append(notice)
            if not resumed.is_set():
                resumed.set()
                asyncio.get_running_loop().create_task(own_postgres.command("resume"))

        client = MailEventsClient(
            srv.address, srv.api_key, retry=RetryPolicy(total=60), on_retry=on_retry
        )
        async with client:
            batches = client.search_batches(batch_size=200)
            async with contextlib.aclosing(batches):
                async for response in batches:
                    received += [e.event_id for e in response.events]
                    if len(received) == 400:
                        await own_postgres.command("halt")
        assert resumed.is_set(), "the crash did not cut the stream"
        assert len(received) == 10_000
        assert len(set(received)) == 10_000
    assert_clean_log(caplog.records)


async def test_terminated_connections_are_unavailable_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pg_terminate_backend on every connection of the service (in this test's own
    database on the shared server: nobody else's), twice during an ingest."""
    caplog.set_level(logging.INFO)
    async with fresh_database() as url, service_on(url) as srv:
        admin = await asyncpg.connect(url)
        database = await admin.fetchval("SELECT current_database()")

        async def terminate() -> int:
            killed = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            return len(killed)

        refusals: list[grpc.StatusCode] = []
        notices = Notices()
        acknowledged: list[str] = []
        try:
            async with retrying_client(srv, notices) as client:
                for number in range(12):
                    if number in (3, 8):
                        assert await terminate() > 0
                        # A caller without retries meets UNAVAILABLE, or nothing
                        # at all when its connection was already replaced.
                        try:
                            await srv.stub.ListMessageEvents(
                                spb.ListMessageEventsRequest(),
                                metadata=srv.metadata(),
                                timeout=5,
                            )
                        except grpc.aio.AioRpcError as err:
                            assert_store_unavailable(err)
                            refusals.append(err.code())
                    response = await client.ingest(events(300, prefix=f"t{number:02d}"))
                    acknowledged += [r.event_id for r in response.results]
        finally:
            await admin.close()
        assert len(acknowledged) == 12 * 300
        stored = await assert_stored_once(srv, acknowledged)
        assert len(stored) == 12 * 300
    assert_clean_log(caplog.records)


async def test_lock_held_past_the_deadline_is_unavailable_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another session holds an ACCESS EXCLUSIVE lock on the events longer than a
    call's deadline: reads and writes are refused with UNAVAILABLE before the
    deadline, and a client with retries gets its events in once it is released."""
    caplog.set_level(logging.INFO)
    async with fresh_database() as url, service_on(url) as srv:
        await srv.ingest(events(10, prefix="before"))
        locker = await asyncpg.connect(url)
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        try:
            for call in (
                srv.stub.ListMessageEvents(
                    spb.ListMessageEventsRequest(), metadata=srv.metadata(), timeout=2
                ),
                srv.stub.IngestMessageEvents(
                    spb.IngestMessageEventsRequest(events=events(5, prefix="refused")),
                    metadata=srv.metadata(),
                    timeout=2,
                ),
            ):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert time.monotonic() - started < 2
                assert_store_unavailable(refused.value)

            notices = Notices()
            async with retrying_client(srv, notices, timeout=2) as client:
                ingest = asyncio.create_task(client.ingest(events(100, prefix="retried")))
                await first_retry(notices, ingest)
                await transaction.rollback()
                response = await ingest
        finally:
            await locker.close()
        assert response.stored + response.duplicates == 100
        acknowledged = [f"before-{i:05d}" for i in range(10)]
        acknowledged += [r.event_id for r in response.results]
        await assert_stored_once(srv, acknowledged)
    warnings = assert_clean_log(caplog.records)
    assert any("refused with UNAVAILABLE" in w and "deadline" in w for w in warnings)


async def test_rest_dialects_answer_503_with_retry_after_in_their_own_shape(
    own_postgres: DedicatedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """While the store is down, each dialect says "try again later" the way a
    client of its provider (and any HTTP proxy) understands: 503 + Retry-After,
    in the dialect's own error JSON."""
    caplog.set_level(logging.INFO)
    async with own_database(own_postgres) as url, service_on(url) as srv:
        await srv.ingest(events(5, prefix="e"))
        store = srv.running.store
        # The webhooks as `serve` mounts them: straight into the store, with a
        # key resolver of their own (its cache empty: the key lookup fails too).
        runner = await start_rest(srv.channel, "127.0.0.1", 0, local=(store, KeyResolver(store)))
        base = f"http://127.0.0.1:{bound_port(runner)}"
        await own_postgres.command("halt")
        try:
            async with aiohttp.ClientSession() as session:
                requests = [
                    (
                        "GET",
                        "/api/v1/message-events",
                        {"headers": {"Authorization": srv.api_key}},
                        {
                            "errors": [
                                {
                                    "message": "Failed to read from database",
                                    "description": "Please try again later.",
                                    "code": "1501",
                                }
                            ]
                        },
                    ),
                    (
                        "GET",
                        f"/api/messageevent/?username=u&api_key={srv.api_key}",
                        {},
                        {"error_message": CANNED_ERROR},
                    ),
                    (
                        "GET",
                        f"/v1/message/m1/events?access_token={srv.api_key}&start=2023-11-01",
                        {},
                        {"error": {"message": "Service unavailable"}},
                    ),
                    (
                        "POST",
                        "/api/3.0/messages/interaction-data/1",
                        {
                            "headers": {"Authorization": f"Bearer {srv.api_key}"},
                            "json": {
                                "interactionType": "sends",
                                "fromDate": "1972-01-01",
                                "toDate": "2023-12-31",
                                "order": "asc",
                            },
                        },
                        {"result": "error", "status": "Service unavailable", "code": 503},
                    ),
                ]
                requests.append(
                    (
                        "POST",
                        "/webhooks/sparkpost",
                        {
                            "headers": {"Authorization": f"Bearer {srv.api_key}"},
                            "json": [
                                {
                                    "msys": {
                                        "message_event": {
                                            "type": "delivery",
                                            "event_id": "hook-1",
                                            "timestamp": "1700000000",
                                        }
                                    }
                                }
                            ],
                        },
                        {"errors": [{"message": "events could not be stored now; retry later"}]},
                    )
                )
                for method, path, options, expected in requests:
                    async with session.request(method, base + path, **options) as response:
                        assert response.status == 503, path
                        assert int(response.headers["Retry-After"]) >= 1
                        assert await response.json() == expected, path
        finally:
            await own_postgres.command("resume")
            await runner.cleanup()
    assert_clean_log(caplog.records)


async def test_cli_ingest_waits_for_the_store_and_says_so(
    own_postgres: DedicatedPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`mailevents ingest` started while the store is down: it says it is waiting
    ("store unavailable, retrying in 1 s"), and imports everything once it is back."""
    caplog.set_level(logging.INFO)
    lines = [
        json.dumps(
            {"type": "delivery", "event_id": f"cli-{n}", "timestamp": "2024-06-01T10:00:00Z"}
        )
        for n in range(3000)
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    async with own_database(own_postgres) as url, service_on(url) as srv:
        await own_postgres.command("halt")
        try:
            process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("mailevents")),
                "ingest",
                str(source),
                "--address",
                srv.address,
                "--api-key",
                srv.api_key,
                "--batch-size",
                "500",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stderr is not None
            async with asyncio.timeout(30):
                while b"store unavailable, retrying in " not in (
                    line := await process.stderr.readline()
                ):
                    assert line, "the import ended without waiting for the store"
        finally:
            await own_postgres.command("resume")
        out, rest = await process.communicate()
        assert process.returncode == 0, rest.decode()
        assert out.decode().strip() == "3000 stored, 0 duplicates, 0 rejected"
        await assert_stored_once(srv, [f"cli-{n}" for n in range(3000)])
    assert_clean_log(caplog.records)
