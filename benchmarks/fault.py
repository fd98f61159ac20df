"""The fault section of `make bench`: a continuous ingest through the client (retries
on) while PostgreSQL crashes and restarts (`pg_ctl stop -m immediate`, then start).

It runs on a PostgreSQL server of its own (scripts/postgres.sh with its own
state file), never on one other runs may share, and with synchronous_commit
on: the script's throwaway server turns it off for speed, and a crash would
then lose commits the service had already acknowledged.

Reported: events acknowledged and lost (must be 0), the longest stall
between two acknowledgements and the time from the crash to the next
acknowledgement, both next to the restart's own duration (the floor: no
client can do better than the database being back).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from benchmarks import pg
from benchmarks.process import ServerProcess
from mailevents.client import MailEventsClient, RetryNotice, RetryPolicy
from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.demo import generate_events

BATCH = 500
#: Seconds of ingest before the crash, and after the database is back.
BEFORE_SECONDS = 3.0
AFTER_SECONDS = 4.0


@contextlib.contextmanager
def own_server(directory: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A durable PostgreSQL of this run's own: its URL, and the environment that
    makes scripts/postgres.sh act on it."""
    env = {**os.environ, "MAILEVENTS_PG_STATE": str(directory / "pg.state")}
    url = _script("start", env).strip().splitlines()[-1]
    try:
        asyncio.run(_durable(url))
        yield url, env
    finally:
        _script("stop", env)


def _script(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", str(pg.SCRIPT), command], env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"scripts/postgres.sh {command} failed")
    return done.stdout


async def _durable(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER SYSTEM SET synchronous_commit = on")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@dataclass
class Run:
    """What one ingest across the crash saw."""

    acknowledged: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    retries: int = 0
    crash_at: float = 0.0
    down_at: float = 0.0  # the server is stopped: no commit from here on
    back_at: float = 0.0  # the server accepts connections again

    @property
    def restart_seconds(self) -> float:
        return self.back_at - self.crash_at

    def longest_stall(self) -> float:
        times = self.ack_times
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def recovery(self) -> float:
        """Seconds from the crash to the first acknowledgement of a commit made
        after it (acknowledgements on their way while the server stopped are of
        commits made before)."""
        after = [t for t in self.ack_times if t > self.down_at]
        return (after[0] - self.crash_at) if after else float("inf")


async def _ingest_across_a_crash(
    address: str, key: str, events: Sequence[pb.MessageEvent], env: dict[str, str]
) -> Run:
    run = Run()
    stop = asyncio.Event()

    def on_retry(_notice: RetryNotice) -> None:
        run.retries += 1

    async def batches() -> AsyncIterator[Sequence[pb.MessageEvent]]:
        for start in range(0, len(events), BATCH):
            if stop.is_set():
                return
            yield events[start : start + BATCH]

    async def script(command: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(pg.SCRIPT),
            command,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()

    async def crash() -> None:
        await asyncio.sleep(BEFORE_SECONDS)
        run.crash_at = time.monotonic()
        await script("halt")  # pg_ctl stop -m immediate
        run.down_at = time.monotonic()
        await script("resume")
        run.back_at = time.monotonic()
        await asyncio.sleep(AFTER_SECONDS)
        stop.set()

    client = MailEventsClient(address, key, retry=RetryPolicy(total=60), on_retry=on_retry)
    crasher = asyncio.create_task(crash())
    async with client:
        async for ack in client.ingest_stream(batches(), window=8):
            run.ack_times.append(time.monotonic())
            run.acknowledged += [r.event_id for r in ack.results]
        await crasher
    return run


async def _stored_ids(address: str, key: str) -> list[str]:
    async with MailEventsClient(address, key, timeout=120) as client:
        return [e.event_id async for e in client.search(read_mask="event_id", batch_size=10_000)]


def bench_fault(events: int = 400_000) -> None:
    print("\n## Faults: ingest through the client (retries on) across a PostgreSQL crash")
    stock = list(generate_events(events, seed=16))
    with (
        tempfile.TemporaryDirectory(prefix="mailevents-fault-") as directory,
        own_server(Path(directory)) as (url, env),
    ):
        _, key = pg.new_tenant(url)
        log = Path(directory) / "server.log"
        with ServerProcess(url, log=log) as server:
            run = asyncio.run(_ingest_across_a_crash(server.address, key, stock, env))
            stored = asyncio.run(_stored_ids(server.address, key))
        server_log = log.read_text(errors="replace")
    acknowledged = set(run.acknowledged)
    lost = len(acknowledged - set(stored))
    doubled = len(stored) - len(set(stored))
    floor = run.restart_seconds
    warnings = sum(
        " WARNING " in line or "WARNING" in line[:40] for line in server_log.splitlines()
    )
    tracebacks = server_log.count("Traceback")
    print(f"{'floor: the restart itself (stop -m immediate, start)':<56} {floor:>8.2f} s")
    print(f"{'events acknowledged':<56} {len(acknowledged):>8,}")
    print(f"{'events lost (acknowledged, not stored)':<56} {lost:>8,}")
    print(f"{'events stored twice':<56} {doubled:>8,}")
    stall, recovery = run.longest_stall(), run.recovery()
    for label, seconds in (
        ("longest stall between acknowledgements", stall),
        ("time to recover (crash to next acknowledgement)", recovery),
    ):
        print(f"{label:<56} {seconds:>8.2f} s = {seconds / floor:.1f} x floor")
    print(
        f"(client retries: {run.retries}; server log: {warnings} warning lines, "
        f"{tracebacks} tracebacks; {BATCH} events a batch, 8 in flight)"
    )
    if lost or doubled:
        raise SystemExit(f"fault section: {lost} events lost, {doubled} stored twice")
