"""SQLite store faults, injected for real: a database that runs out of room (the
writer's `max_page_count`, as a full disk or quota would) and a write lock held
by another connection longer than a call's deadline.

What callers must see: RESOURCE_EXHAUSTED "storage is full" or UNAVAILABLE,
both with a RetryInfo, never INTERNAL; every acknowledged event stored once;
reads going on; the log one WARNING line per refusal, without tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import Server, make_server
from factories import error_details, events
from fault_support import (
    Notices,
    assert_clean_log,
    assert_store_unavailable,
    assert_stored_once,
    first_retry,
    retry_delay,
)

from mailevents import MailEventsClient, MailEventsError
from mailevents.client import RetryNotice, RetryPolicy
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.store.sqlite import SQLiteStore


@pytest.fixture
async def sqlite_server(tmp_path: Path) -> AsyncIterator[Server]:
    """Always SQLite, whatever store the suite runs against."""
    srv = await make_server(str(tmp_path / "events.db"))
    try:
        yield srv
    finally:
        await srv.channel.close()
        await srv.running.stop(grace=0)


async def limit_pages(server: Server, extra: int | None) -> None:
    """Let the writer's connection grow the database by `extra` pages at most
    (None: as far as SQLite allows). `max_page_count` is per connection, so it
    is set on the store's own writer, on its thread."""
    store = server.running.store
    assert isinstance(store, SQLiteStore)

    def limit(conn: sqlite3.Connection) -> None:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {pages + extra if extra else 4_294_967_294}")

    assert store._writer is not None
    await store._writer.run(limit)


def batch(number: int, size: int = 500) -> list:
    # Wide events fill pages fast.
    return events(size, prefix=f"b{number:03d}", campaign_id="c" * 200, friendly_from="s" * 300)


async def test_full_database_is_resource_exhausted_and_ingest_resumes_when_room_is_made(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await sqlite_server.ingest(batch(0))
    acknowledged = [f"b000-{i:05d}" for i in range(500)]
    await limit_pages(sqlite_server, 300)
    refused_at = None
    for number in range(1, 60):
        try:
            response = await sqlite_server.ingest(batch(number))
        except grpc.aio.AioRpcError as err:
            refused_at, refusal = number, err
            break
        assert response.stored == 500
        acknowledged += [r.event_id for r in response.results]
    assert refused_at is not None, "the database never filled up"
    assert refused_at > 1, "nothing fitted"
    assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, _ = error_details(refusal)
    assert info.reason == "STORAGE_FULL"
    assert "storage is full" in (refusal.details() or "")
    assert (retry_delay(refusal) or 0) > 0

    # Reads go on while nothing more fits; a second try is refused the same way.
    count = await sqlite_server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(), metadata=sqlite_server.metadata()
    )
    assert count.total == len(acknowledged)
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await sqlite_server.ingest(batch(refused_at))
    assert again.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # Room is made: the refused batch goes in whole, nothing before it twice.
    await limit_pages(sqlite_server, None)
    response = await sqlite_server.ingest(batch(refused_at))
    assert response.stored == 500
    acknowledged += [r.event_id for r in response.results]
    stored = await assert_stored_once(sqlite_server, acknowledged)
    assert len(stored) == len(acknowledged)

    warnings = assert_clean_log(caplog.records)
    refusals = [w for w in warnings if "refused with RESOURCE_EXHAUSTED" in w]
    assert len(refusals) == 2, warnings  # one line per refused call
    assert all("database or disk is full" in w for w in refusals)


async def test_client_does_not_retry_a_full_store_and_loses_nothing(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Full storage needs an operator: the client reports it at once (a retry
    budget spent waiting would only delay that), and a rerun stores the rest."""
    notices: list[RetryNotice] = []
    async with MailEventsClient(
        sqlite_server.address, sqlite_server.api_key, on_retry=notices.append
    ) as client:
        first = await client.ingest(batch(0))
        await limit_pages(sqlite_server, 300)
        sent = []
        acknowledged = [r.event_id for r in first.results]
        with pytest.raises(MailEventsError) as refused:
            for number in range(1, 60):
                sent += batch(number)
                started = time.monotonic()
                response = await client.ingest(sent[-500:])
                acknowledged += [r.event_id for r in response.results]
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.reason == "STORAGE_FULL"
        assert refused.value.retry_delay
        assert time.monotonic() - started < 10
        assert notices == []
        await limit_pages(sqlite_server, None)
        rerun = await client.ingest(sent)  # what the first attempt stored: duplicates
    assert rerun.stored + rerun.duplicates == len(sent)
    assert rerun.duplicates == len(acknowledged) - 500 > 0
    acknowledged += [r.event_id for r in rerun.results]
    stored = await assert_stored_once(sqlite_server, acknowledged)
    assert len(stored) == len(set(acknowledged))
    assert_clean_log(caplog.records)


async def test_write_lock_held_past_the_deadline_is_unavailable_in_time_and_retried(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds SQLite's write lock longer than a call's deadline: the
    call is refused with UNAVAILABLE before its deadline (not DEADLINE_EXCEEDED,
    not a hang), reads go on, and a client with retries gets its events in once
    the lock is released."""
    caplog.set_level(logging.INFO)
    await sqlite_server.ingest(events(10, prefix="before"))
    other = sqlite3.connect(sqlite_server.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sqlite_server.stub.IngestMessageEvents(
                spb.IngestMessageEventsRequest(events=events(5, prefix="refused")),
                metadata=sqlite_server.metadata(),
                timeout=1.5,
            )
        assert time.monotonic() - started < 1.5
        assert_store_unavailable(refused.value)
        page = await sqlite_server.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(), metadata=sqlite_server.metadata(), timeout=1.5
        )
        assert len(page.events) == 10

        notices = Notices()
        client = MailEventsClient(
            sqlite_server.address,
            sqlite_server.api_key,
            timeout=1.5,
            retry=RetryPolicy(total=30),
            on_retry=notices,
        )
        async with client:
            ingest = asyncio.create_task(client.ingest(events(300, prefix="retried")))
            await first_retry(notices, ingest)
            other.execute("ROLLBACK")
            response = await ingest
    finally:
        other.close()
    assert response.stored + response.duplicates == 300
    assert str(notices.seen[0]).startswith("store unavailable, retrying in ")
    acknowledged = [f"before-{i:05d}" for i in range(10)]
    acknowledged += [r.event_id for r in response.results]
    await assert_stored_once(sqlite_server, acknowledged)
    warnings = assert_clean_log(caplog.records)
    assert any("refused with UNAVAILABLE" in w and "deadline" in w for w in warnings)
