"""A real `mailevents serve` killed with SIGKILL while all three producers write:
the bidi ingest stream, unary IngestMessageEvents and the SparkPost webhook.
Every acknowledged event is stored once after the restart, and re-sending
everything stores nothing twice. Busy worker processes die with their server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from factories import events
from live_support import ServeProcess, channel, create_keys, free_port, stub

from mailevents.client import MailEventsClient
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

BATCH = 200
BATCHES = 40  # per producer: far more than are written before the kill


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[tuple[ServeProcess, str]]:
    database = str(tmp_path / "events.db")
    (key,) = await create_keys(database, "acme")
    process = ServeProcess(database, free_port(), http_port=free_port())
    await process.start()
    try:
        yield process, key
    finally:
        process.stop()


def metadata(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def sparkpost_body(batch: list[pb.MessageEvent]) -> bytes:
    return json.dumps(
        [
            {
                "msys": {
                    "message_event": {
                        "type": "delivery",
                        "event_id": ev.event_id,
                        "timestamp": str(ev.timestamp.seconds),
                    }
                }
            }
            for ev in batch
        ]
    ).encode()


class Producers:
    """The three producers' batches, and which of them were acknowledged."""

    def __init__(self) -> None:
        self.batches = {
            name: [events(BATCH, prefix=f"{name}{b}") for b in range(BATCHES)]
            for name in ("stream", "unary", "hook")
        }
        self.acked: dict[str, list[int]] = {name: [] for name in self.batches}

    def acked_ids(self) -> set[str]:
        return {
            ev.event_id
            for name, numbers in self.acked.items()
            for b in numbers
            for ev in self.batches[name][b]
        }

    def all_ids(self) -> set[str]:
        return {ev.event_id for batches in self.batches.values() for b in batches for ev in b}


async def stream_producer(server: ServeProcess, key: str, p: Producers) -> None:
    async with channel(server.address) as chan:
        call = stub(chan).IngestMessageEventsStream(metadata=metadata(key))

        async def write() -> None:
            for b, batch in enumerate(p.batches["stream"]):
                await call.write(
                    spb.IngestMessageEventsStreamRequest(events=batch, batch_id=str(b))
                )
            await call.done_writing()

        writer = asyncio.create_task(write())
        try:
            async for ack in call:
                assert ack.stored + ack.duplicates == BATCH
                p.acked["stream"].append(int(ack.batch_id))
        finally:
            writer.cancel()


async def unary_producer(server: ServeProcess, key: str, p: Producers) -> None:
    async with channel(server.address) as chan:
        for b, batch in enumerate(p.batches["unary"]):
            response = await stub(chan).IngestMessageEvents(
                spb.IngestMessageEventsRequest(events=batch), metadata=metadata(key), timeout=30
            )
            assert response.stored + response.duplicates == BATCH
            p.acked["unary"].append(b)


async def hook_producer(server: ServeProcess, key: str, p: Producers) -> None:
    url = f"http://127.0.0.1:{server.http_port}/webhooks/sparkpost"
    async with aiohttp.ClientSession() as session:
        for b, batch in enumerate(p.batches["hook"]):
            async with session.post(
                url, data=sparkpost_body(batch), headers={"Authorization": f"Bearer {key}"}
            ) as response:
                body = await response.json()
                assert response.status == 200, body
            assert body["stored"] + body["duplicates"] == BATCH
            p.acked["hook"].append(b)


PRODUCERS = (stream_producer, unary_producer, hook_producer)


async def stored_ids(server: ServeProcess, key: str) -> list[str]:
    async with MailEventsClient(server.address, key, timeout=60) as client:
        return [ev.event_id async for ev in client.search(read_mask="event_id")]


async def until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    for _ in itertools.count():
        if condition():
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_sigkill_while_three_producers_write_loses_and_doubles_nothing(
    serve: tuple[ServeProcess, str],
) -> None:
    server, key = serve
    p = Producers()
    tasks = [asyncio.create_task(produce(server, key, p)) for produce in PRODUCERS]
    await until(lambda: all(len(a) >= 3 for a in p.acked.values()), within=60)
    server.kill()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:  # each producer saw the server die (or had finished)
        assert result is None or isinstance(result, grpc.aio.AioRpcError | aiohttp.ClientError)

    await server.start()
    stored = await stored_ids(server, key)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = p.acked_ids() - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"

    # Every producer re-sends everything: nothing is stored twice.
    p.acked = {name: [] for name in p.batches}
    await asyncio.gather(
        stream_producer(server, key, p),
        unary_producer(server, key, p),
        hook_producer(server, key, p),
    )
    final = await stored_ids(server, key)
    assert len(final) == len(set(final))
    assert set(final) == p.all_ids()


def workers_of(server: ServeProcess) -> list[int]:
    """The server's worker processes: its children but multiprocessing's resource
    tracker, which exits by itself once every holder of its pipe has."""
    workers = []
    for pid in server.children():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue  # gone already
        if b"resource_tracker" not in command:
            workers.append(pid)
    return workers


def _running(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_busy_worker_processes_exit_at_once_when_the_server_is_killed(
    serve: tuple[ServeProcess, str],
) -> None:
    server, key = serve

    def ingest(chan: grpc.aio.Channel, n: int) -> Any:
        # Large batches keep the workers preparing events (over 256 go to a worker).
        return stub(chan).IngestMessageEvents(
            spb.IngestMessageEventsRequest(events=events(10_000, prefix=f"busy{n}-")),
            metadata=metadata(key),
            timeout=60,
        )

    async with channel(server.address) as chan:
        await ingest(chan, 0)  # the workers are up (a worker starting up is not busy yet)
        workers = workers_of(server)
        assert workers
        calls = [ingest(chan, n) for n in range(1, 7)]
        await asyncio.sleep(0.3)  # they are busy now
        assert any(not c.done() for c in calls), "the work ended before the kill"
        server.kill()
        for call in calls:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call
    # The kernel ends them with their parent, at once; the bound is slack for a
    # loaded machine (a worker that looked for its parent once a second often
    # outlived it by most of that second).
    try:
        await until(lambda: not any(_running(pid) for pid in workers), within=0.8)
    except AssertionError:
        alive = [pid for pid in workers if _running(pid)]
        raise AssertionError(f"workers still running: {alive}") from None
