"""The PostgreSQL store's connection pools: how they are made and closed, and the
pool as calls use it, every wait bounded by the call's deadline.

Without a bound, a call meets a stalled database (a lock held by someone
else, a server that accepts connections but does not answer, a pool whose
connections are all busy) by waiting until the client's deadline passes,
and the client learns nothing but DEADLINE_EXCEEDED. Bounded a little below
that deadline (`faults.call_budget`), the wait ends in a `StoreTimeout` the
service answers with UNAVAILABLE and a RetryInfo. asyncpg cancels a timed-out
query on the server, so the connection stays usable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from mailevents_server import faults

log = logging.getLogger(__name__)

#: Session settings for every connection: JIT compiles long queries for tens of
#: milliseconds, a loss for the short indexed queries this service runs.
SESSION = {"jit": "off", "application_name": "mailevents"}
#: How long closing waits for connections still in use before cutting them.
CLOSE_SECONDS = 5.0


async def create(url: str, size: int, settings: dict[str, str] = SESSION) -> asyncpg.Pool:
    """A pool of up to `size` connections with the session `settings`."""
    return await asyncpg.create_pool(
        url,
        # No floor: asyncpg would restore it in the background after the
        # server restarts, logging a traceback for every failed attempt.
        min_size=0,
        max_size=size,
        server_settings=settings,
    )


async def close(pools: Iterable[asyncpg.Pool | None]) -> None:
    """Close each pool, cutting connections still busy after CLOSE_SECONDS."""
    for pool in pools:
        if pool is not None:
            try:
                # Waits for connections still in use by calls being cancelled.
                await asyncio.wait_for(pool.close(), CLOSE_SECONDS)
            except TimeoutError:
                log.warning("connections still busy after %ss; terminating them", CLOSE_SECONDS)
                pool.terminate()


class BoundedPool:
    """The few `asyncpg.Pool` methods the store calls, each within the call's budget."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def acquire(self) -> Any:
        """A connection (`async with`); waiting for one counts against the budget."""
        return self._pool.acquire(timeout=faults.call_budget())

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", query, args)  # type: ignore[no-any-return]

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", query, args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._run("execute", query, args)  # type: ignore[no-any-return]

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        try:
            async with self._pool.acquire(timeout=faults.call_budget()) as conn:
                # The budget again, for what is left of it after the acquire.
                return await getattr(conn, method)(query, *args, timeout=faults.call_budget())
        except TimeoutError:
            if faults.call_budget() is None:
                raise
            raise faults.StoreTimeout(
                "the database did not answer within the call's deadline"
            ) from None
