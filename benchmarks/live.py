"""Ingest throughput and live-tail latency, for `make bench`.

- `executemany_floor`: plain sqlite3 `executemany` of ready-made rows into the
  same schema (WAL, synchronous=FULL, 10,000 rows per transaction): the floor
  the ingest paths are compared with.
- `ingest_stream_rate`: IngestMessageEventsStream from this process into a
  `mailevents serve` process (`MailEventsClient.ingest_stream`).
- `webhook_rate`: SparkPost webhook batches POSTed to `/webhooks/sparkpost`.
- `tail_latency`: a WatchMessageEvents consumer in this process; a producer
  ingests one event at a time; how long until the consumer has it (p50, p99),
  optionally while a bulk producer keeps the server busy.

Each takes a server that is already running (`process.ServerProcess`) on a
fresh database (`fresh_database`) so that ingest figures are not flattered by
duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from mailevents.client import MailEventsClient
from mailevents.sparkpost import event_to_sparkpost
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import wire
from mailevents_server.auth import hash_key, new_key
from mailevents_server.ingest import prepare
from mailevents_server.ingest.receivers import add_webhook_routes, through_service
from mailevents_server.store.sqlite import SQLiteStore
from mailevents_server.store.sqlite_schema import MIGRATIONS
from mailevents_server.store.sqlite_writer import INSERT
from mailevents_server.workers import owned_by


def fresh_database(directory: Path | str | None = None, tenant: str = "bench") -> tuple[Path, str]:
    """An empty database with one tenant, and its API key."""
    path = Path(directory or tempfile.mkdtemp(prefix="mailevents-bench-")) / "ingest.db"

    async def build() -> str:
        store = SQLiteStore(str(path))
        await store.open()
        try:
            key = new_key()
            await store.create_key(tenant, hash_key(key), "bench")
            return key
        finally:
            await store.close()

    return path, asyncio.run(build())


def executemany_floor(events: Sequence[pb.MessageEvent], batch: int = 10_000) -> float:
    """Rows/s of plain sqlite3 executemany into the same schema; rows are built beforehand."""
    ready, _ = prepare(events)
    rows = [
        (i + 1, 1, *ev.columns, wire.stored_event(i + 1, ev.body)) for i, ev in enumerate(ready)
    ]
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for statement in ";".join(MIGRATIONS).split(";"):
            if statement.strip():
                conn.execute(statement)
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows[start : start + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return len(rows) / elapsed


def ingest_stream_rate(
    address: str,
    key: str,
    events: Sequence[pb.MessageEvent],
    *,
    batch_size: int = 1000,
    window: int = 8,
    producers: int = 1,
) -> float:
    """Events/s stored through IngestMessageEventsStream by `producers` concurrent streams."""

    async def produce(part: Sequence[pb.MessageEvent]) -> int:
        async with MailEventsClient(address, key, timeout=300) as client:
            batches = (part[i : i + batch_size] for i in range(0, len(part), batch_size))
            stored = 0
            async for ack in client.ingest_stream(batches, window=window):
                stored += ack.stored
            return stored

    async def run() -> float:
        # Untimed: a batch large enough to start the server's ingest workers,
        # all rejected (no event_id), so nothing is stored.
        async with MailEventsClient(address, key, timeout=300) as client:
            async for _ in client.ingest_stream([[pb.MessageEvent()] * 1000], window=1):
                pass
        parts = [events[i::producers] for i in range(producers)]
        started = time.perf_counter()
        stored = sum(await asyncio.gather(*(produce(part) for part in parts)))
        elapsed = time.perf_counter() - started
        assert stored == len(events), f"stored {stored} of {len(events)}: not a fresh database?"
        return stored / elapsed

    return asyncio.run(run())


def sparkpost_bodies(events: Sequence[pb.MessageEvent], batch_size: int = 1000) -> list[bytes]:
    """Webhook POST bodies: SparkPost's msys batches of `batch_size` events."""
    bodies = []
    for start in range(0, len(events), batch_size):
        batch = [
            {"msys": {ev.event_category or "message_event": event_to_sparkpost(ev, lossless=True)}}
            for ev in events[start : start + batch_size]
        ]
        bodies.append(json.dumps(batch).encode())
    return bodies


def webhook_rate(url: str, key: str, bodies: Sequence[bytes], *, concurrency: int = 4) -> float:
    """Events/s stored by POSTing `bodies` to a webhook URL, `concurrency` at a time.

    `url`: e.g. http://127.0.0.1:8080/webhooks/sparkpost (see `start_webhooks`).
    """

    async def run() -> float:
        queue = list(reversed(bodies))
        stored = 0
        # Untimed: the first large batch starts the server's conversion worker.
        async with aiohttp.ClientSession() as session:
            async with session.post(
                url,
                data=b"[" + b",".join([b'{"msys": {}}'] * 30_000) + b"]",
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                assert response.status == 200, await response.text()

        async def post(session: aiohttp.ClientSession) -> None:
            nonlocal stored
            while queue:
                body = queue.pop()
                async with session.post(
                    url, data=body, headers={"Authorization": f"Bearer {key}"}
                ) as response:
                    answer = await response.json()
                    assert response.status == 200, answer
                    stored += answer["stored"]

        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            started = time.perf_counter()
            await asyncio.gather(*(post(session) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        return stored / elapsed

    return asyncio.run(run())


@contextlib.asynccontextmanager
async def start_webhooks(grpc_address: str) -> Any:
    """The webhook routes on their own aiohttp server in this process, for as long as the
    `async with` lasts; yields the base URL. (For when `serve` does not mount them.)"""
    from aiohttp import web

    channel = grpc.aio.insecure_channel(grpc_address)
    app = web.Application()
    add_webhook_routes(app, through_service(channel, owned_by(app)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await channel.close()


def tail_latency(
    address: str,
    key: str,
    *,
    samples: int = 500,
    gap: float = 0.005,
    load: Sequence[pb.MessageEvent] = (),
) -> dict[str, float]:
    """Seconds from ingest to a live consumer: p50 and p99, over `samples` single events.

    `from_send`: from just before the producer's IngestMessageEvents call (so it
    includes the commit's fsync); `from_ack`: from the producer's acknowledgement
    (negative when the consumer had it first); `ack`: the producer's own call,
    send to acknowledgement. With `load`, a bulk producer streams those events
    meanwhile. `probe_seconds`: how long the probing took; `load_seconds`: how
    long the bulk producer took (absent when it had not finished by then).
    """

    async def run() -> dict[str, float]:
        sent: dict[str, float] = {}
        acked: dict[str, float] = {}
        seen: dict[str, float] = {}
        probe = spb.EventQuery(
            conditions=[
                spb.Condition(
                    field="campaign_id", operator=spb.OPERATOR_EXACT, values=["latency-probe"]
                )
            ]
        )
        async with MailEventsClient(address, key, timeout=300) as client:
            watch = client.watch_batches(probe, heartbeat_interval=1.0)
            await anext(watch)  # the stream is open and positioned

            async def consume() -> None:
                async for message in watch:
                    now = time.perf_counter()
                    for ev in message.events:
                        seen[ev.event_id] = now
                    if len(seen) >= samples:
                        return

            async def bulk() -> None:
                batches = (load[i : i + 1000] for i in range(0, len(load), 1000))
                async for _ in client.ingest_stream(batches):
                    pass
                spans["load_seconds"] = time.perf_counter() - started

            spans: dict[str, float] = {}
            started = time.perf_counter()
            consumer = asyncio.create_task(consume())
            loader = asyncio.create_task(bulk()) if load else None
            for n in range(samples):
                ev = pb.MessageEvent(
                    event_id=f"probe-{n}-{time.time_ns()}",
                    type=pb.EVENT_TYPE_DELIVERY,
                    campaign_id="latency-probe",
                )
                ev.timestamp.GetCurrentTime()
                sent[ev.event_id] = time.perf_counter()
                await client.ingest([ev])
                acked[ev.event_id] = time.perf_counter()
                await asyncio.sleep(gap)
            await asyncio.wait_for(consumer, 60)
            spans["probe_seconds"] = time.perf_counter() - started
            if loader is not None:
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await loader
            await watch.aclose()
        from_send = sorted(seen[i] - sent[i] for i in seen)
        from_ack = sorted(seen[i] - acked[i] for i in seen)
        round_trip = sorted(acked[i] - sent[i] for i in acked)
        return {
            **spans,
            "ack_p50": statistics.median(round_trip),
            "ack_p99": round_trip[int(len(round_trip) * 0.99) - 1],
            "from_send_p50": statistics.median(from_send),
            "from_send_p99": from_send[int(len(from_send) * 0.99) - 1],
            "from_ack_p50": statistics.median(from_ack),
            "from_ack_p99": from_ack[int(len(from_ack) * 0.99) - 1],
        }

    return asyncio.run(run())
