"""The benchmark database: N demo events in one SQLite file, built once and cached."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from mailevents_server.auth import hash_key, new_key
from mailevents_server.demo import generate_events
from mailevents_server.ingest import prepare
from mailevents_server.store.sqlite import SQLiteStore

CACHE = Path(".bench")
TENANT = "bench"


def database_for(count: int) -> tuple[Path, str]:
    """The path of a database holding `count` events, and an API key for it."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"events-{count}.db"
    key_file = path.with_suffix(".key")
    if not (path.exists() and key_file.exists() and _complete(path, count)):
        for stale in (path, key_file, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        key = asyncio.run(_build(path, count))
        key_file.write_text(key)
        print(
            f"built {path} with {count:,} events in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    else:
        # a cached database gets a fresh key: keys are shown once, never stored plain
        key = asyncio.run(_new_key(path))
    return path, key


def _complete(path: Path, count: int) -> bool:
    try:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0]) == count
    except sqlite3.Error:
        return False


async def _new_key(path: Path) -> str:
    store = SQLiteStore(str(path))
    await store.open()
    try:
        key = new_key()
        await store.create_key(TENANT, hash_key(key), "bench")
        return key
    finally:
        await store.close()


async def _build(path: Path, count: int) -> str:
    store = SQLiteStore(str(path), synchronous="OFF")
    await store.open()
    try:
        key = new_key()
        tenant_id = await store.create_key(TENANT, hash_key(key), "bench")
        batch = []
        for event in generate_events(count, seed=7):
            batch.append(event)
            if len(batch) == 10_000:
                await store.write(tenant_id, prepare(batch)[0])
                batch = []
        if batch:
            await store.write(tenant_id, prepare(batch)[0])
        return key
    finally:
        await store.close()
