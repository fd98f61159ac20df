"""PostgreSQL for `--store postgres`: a throwaway server (scripts/postgres.sh), scratch
databases on it, the SQLite bench events copied in, and the plain-asyncpg floor."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from mailevents.v1 import message_event_pb2 as pb
from mailevents_server import wire
from mailevents_server.auth import hash_key, new_key
from mailevents_server.ingest import prepare
from mailevents_server.store.postgres import PostgresStore

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
TENANT = "bench"

#: The rows a search reads, as stream.FLOOR_SQL does on SQLite.
PG_FLOOR_SQL = (
    "SELECT ts, id, data FROM events WHERE tenant_id = $1 AND id <= $2 ORDER BY ts DESC, id DESC"
)


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A running PostgreSQL (started, or shared with a run already using it); its URL."""
    url = _script("start").strip().splitlines()[-1]
    try:
        yield url
    finally:
        _script("stop")


def _script(command: str) -> str:
    done = subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"scripts/postgres.sh {command} failed")
    return done.stdout


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards; its URL. (The server's
    own `mailevents` database may be in use by tests: the bench never touches it.)"""
    name = f"mev_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name} TEMPLATE template0"))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def new_tenant(url: str) -> tuple[int, str]:
    """Migrates the database if needed, creates the bench tenant: (tenant id, API key)."""

    async def run() -> tuple[int, str]:
        store = PostgresStore(url)
        await store.open()
        try:
            key = new_key()
            return await store.create_key(TENANT, hash_key(key), "bench"), key
        finally:
            await store.close()

    return asyncio.run(run())


def copy_from_sqlite(sqlite_path: Path, url: str) -> tuple[int, str]:
    """The SQLite bench database's events (same events, same order) written into
    `url` through PostgresStore: (tenant id, API key)."""

    async def run() -> tuple[int, str]:
        store = PostgresStore(url, synchronous="OFF")
        await store.open()
        try:
            key = new_key()
            tenant_id = await store.create_key(TENANT, hash_key(key), "bench")
            with sqlite3.connect(sqlite_path) as conn:
                cursor = conn.execute("SELECT data FROM events WHERE tenant_id = 1 ORDER BY id")
                while rows := cursor.fetchmany(10_000):
                    await store.write(tenant_id, prepare([_event(data) for (data,) in rows])[0])
            return tenant_id, key
        finally:
            await store.close()

    started = time.perf_counter()
    result = asyncio.run(run())
    print(f"loaded {url} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def _event(stored: bytes) -> pb.MessageEvent:
    event = pb.MessageEvent.FromString(wire.event_payload(stored))
    event.ClearField("id")
    return event


def floor(url: str, tenant_id: int) -> tuple[int, float]:
    """Plain asyncpg reading the rows a search reads: (rows, rows/s), best of two."""
    return max((asyncio.run(_read_all(url, tenant_id)) for _ in range(2)), key=lambda r: r[1])


async def _read_all(url: str, tenant_id: int) -> tuple[int, float]:
    conn = await asyncpg.connect(url, server_settings={"jit": "off"})
    try:
        max_id = await conn.fetchval(
            "SELECT coalesce(max(last_id), 0) FROM tenant_positions WHERE tenant_id = $1", tenant_id
        )
        started = time.perf_counter()
        n = 0
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(PG_FLOOR_SQL, tenant_id, max_id)
            while rows := await cursor.fetch(1000):
                n += len(rows)
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return n, n / elapsed


@contextlib.contextmanager
def fresh(admin_url: str) -> Iterator[tuple[str, str]]:
    """An empty scratch database with the bench tenant: (URL, API key), for ingest.Fresh."""
    with scratch_database(admin_url) as url:
        yield url, new_tenant(url)[1]


def version(url: str) -> str:
    async def run() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(run())
