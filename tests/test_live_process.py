"""What must hold when processes die: real `mailevents serve` processes and real
consumers, killed with SIGKILL in the middle of their work.

- The server killed mid-ingest loses no acknowledged event; re-sending the
  unacknowledged ones (or everything) stores nothing twice.
- A consumer killed at any moment and resumed from its last token gets every
  event exactly once, in commit order.
- A watch and a producer ride out a server SIGKILL and restart on their own.
- A consumer that stops reading costs the server bounded memory, and gets
  everything once it reads again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from conftest import Server
from factories import event, events
from live_support import (
    ServeProcess,
    channel,
    create_keys,
    free_port,
    read,
    stub,
    watch_request,
)

from mailevents.client import MailEventsClient
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

CONSUMER = Path(__file__).with_name("live_consumer.py")


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[tuple[ServeProcess, str]]:
    database = str(tmp_path / "events.db")
    (key,) = await create_keys(database, "acme")
    process = ServeProcess(database, free_port())
    await process.start()
    try:
        yield process, key
    finally:
        process.stop()


async def stored_event_ids(address: str, key: str) -> list[str]:
    async with MailEventsClient(address, key, timeout=60) as client:
        return [ev.event_id async for ev in client.search(read_mask="event_id")]


async def test_sigkill_mid_ingest_loses_no_acknowledged_event(
    serve: tuple[ServeProcess, str],
) -> None:
    server, key = serve
    batches = [events(500, prefix=f"k{b}") for b in range(60)]
    acked: list[int] = []
    sent = 0
    async with channel(server.address) as chan:
        call = stub(chan).IngestMessageEventsStream(metadata=(("authorization", f"Bearer {key}"),))

        async def write() -> None:
            nonlocal sent
            for b, batch in enumerate(batches):
                await call.write(
                    spb.IngestMessageEventsStreamRequest(events=batch, batch_id=str(b))
                )
                sent += 1

        writer = asyncio.create_task(write())
        with pytest.raises(grpc.aio.AioRpcError):
            while True:
                ack = await read(call, 20)
                assert ack.stored == 500
                acked.append(int(ack.batch_id))
                if len(acked) == 8:
                    server.kill()
        writer.cancel()
    assert acked == list(range(len(acked))) and len(acked) >= 8
    assert sent > len(acked), "the kill came when nothing was in flight"

    await server.start()
    stored = await stored_event_ids(server.address, key)
    assert len(stored) == len(set(stored))
    missing = {ev.event_id for b in acked for ev in batches[b]} - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"

    # The producer re-sends everything it did not see acknowledged (here: all of it).
    async with MailEventsClient(server.address, key) as client:
        totals = [0, 0]
        async for ack in client.ingest_stream(batches):
            totals[0] += ack.stored
            totals[1] += ack.duplicates
    assert sum(totals) == 60 * 500
    assert totals[1] >= len(acked) * 500
    final = await stored_event_ids(server.address, key)
    assert len(final) == len(set(final)) == 60 * 500


def consumer(address: str, key: str, out: Path, token: str = "") -> subprocess.Popen[bytes]:
    args = [sys.executable, str(CONSUMER), address, key, str(out)]
    return subprocess.Popen([*args, token] if token else args)


def lines_of(out: Path) -> list[dict[str, object]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")]


async def wait_until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    for _ in itertools.count():
        if condition():
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_killed_consumer_resumes_from_its_last_token_missing_nothing(
    server: Server, tmp_path: Path
) -> None:
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    produced: list[str] = []

    async def produce(rounds: int, prefix: str) -> None:
        for r in range(rounds):
            batch = events(50, prefix=f"{prefix}{r}")
            await server.ingest(batch)
            produced.extend(ev.event_id for ev in batch)
            await asyncio.sleep(0.01)

    first = consumer(server.address, server.api_key, first_out)
    try:
        await wait_until(lambda: lines_of(first_out))  # connected: it has a position
        producing = asyncio.create_task(produce(40, "a"))
        await wait_until(lambda: sum(len(line["ids"]) for line in lines_of(first_out)) >= 300)  # type: ignore[arg-type]
        os.kill(first.pid, signal.SIGKILL)  # in the middle of the stream
        await producing
    finally:
        first.kill()
        first.wait()
    await produce(10, "b")  # while no consumer runs

    seen_first = lines_of(first_out)
    token = str(seen_first[-1]["token"])
    second = consumer(server.address, server.api_key, second_out, token)
    try:
        total = len(produced)
        await wait_until(
            lambda: (
                sum(len(line["ids"]) for line in [*seen_first, *lines_of(second_out)])  # type: ignore[arg-type]
                >= total
            )
        )
        await asyncio.sleep(0.3)  # anything extra would show up now
    finally:
        second.kill()
        second.wait()
    received = [i for line in [*seen_first, *lines_of(second_out)] for i in line["ids"]]  # type: ignore[attr-defined]
    assert received == produced  # every event, once, in commit order


async def test_a_watch_and_a_producer_ride_out_a_server_restart(
    serve: tuple[ServeProcess, str],
) -> None:
    server, key = serve
    produced = [events(200, prefix=f"r{b}") for b in range(30)]
    killed = asyncio.Event()

    async def produce() -> int:
        async with MailEventsClient(server.address, key, max_reconnects=10) as client:
            stored = 0
            async for ack in client.ingest_stream(iter(produced), window=2):
                stored += ack.stored + ack.duplicates
                if ack.sequence == 10:
                    server.kill()
                    killed.set()
                    await server.start()
            return stored

    async with MailEventsClient(server.address, key, max_reconnects=10) as client:
        watch = client.watch_batches(heartbeat_interval=0.5)
        await anext(watch)
        producer = asyncio.create_task(produce())
        received: list[str] = []
        async with asyncio.timeout(60):
            async for message in watch:
                received.extend(ev.event_id for ev in message.events)
                if len(received) >= 30 * 200:
                    break
        await watch.aclose()
        assert await producer == 30 * 200
    assert killed.is_set()
    expected = [ev.event_id for batch in produced for ev in batch]
    assert sorted(received) == sorted(expected)
    assert len(received) == len(set(received))


async def test_a_consumer_that_stops_reading_costs_bounded_server_memory(
    serve: tuple[ServeProcess, str],
) -> None:
    server, key = serve
    padding = json.dumps({"padding": "x" * 8000})
    metadata = (("authorization", f"Bearer {key}"),)

    def big(prefix: str, count: int) -> list[pb.MessageEvent]:
        return [event(f"{prefix}-{i}", extra_json=padding) for i in range(count)]

    async with channel(server.address) as chan:
        service = stub(chan)
        # Warm up: the server's heap after its first ingest and stream, as a baseline.
        await service.IngestMessageEvents(
            spb.IngestMessageEventsRequest(events=big("warm", 500)), metadata=metadata
        )
        stalled = service.WatchMessageEvents(watch_request(batch_size=500), metadata=metadata)
        await read(stalled)
        baseline = server.rss_anon_kib()

        # ~240 MB of events while the consumer reads nothing. Ingest alone grows
        # the heap by some 25 MiB (buffers, allocator); a stream that kept
        # what it could not send would grow by the whole volume.
        total = 0
        for b in range(60):
            await service.IngestMessageEvents(
                spb.IngestMessageEventsRequest(events=big(f"p{b}", 500)), metadata=metadata
            )
            total += 500
        await asyncio.sleep(1.0)  # let the stalled stream run into flow control
        grown_mib = (server.rss_anon_kib() - baseline) / 1024
        assert grown_mib < 80, f"server heap grew {grown_mib:.0f} MiB for a stalled consumer"

        # Nothing was dropped to keep memory down: reading again gets it all, once.
        ids: list[str] = []
        async with asyncio.timeout(60):
            while len(ids) < total:
                message = await stalled.read()
                ids.extend(ev.event_id for ev in message.events)
        assert len(ids) == len(set(ids)) == total
        stalled.cancel()


async def test_worker_processes_exit_when_the_server_is_killed(
    serve: tuple[ServeProcess, str],
) -> None:
    server, key = serve
    async with MailEventsClient(server.address, key, timeout=60) as client:
        await client.ingest(events(600, prefix="w"))  # over 256 events: a worker prepares them
    workers = server.children()
    assert workers, "the batch should have started a worker process"
    server.kill()
    await wait_until(lambda: not any(_running(p) for p in workers), within=10)


def _running(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has: only its parent,
    here init, has yet to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
