"""Hearing every replica's commits: LISTEN on the channel the writer NOTIFYs.

Every commit (postgres_writer) NOTIFYs `mailevents_commits` with its schema,
the tenant and its new position, so live tails on other replicas wake without polling.
One connection per store listens and publishes what it hears to the store's
`TenantCommits`, where the waiters are. It is apart from the writer, which
only sends, because it is the other end: a connection of its own, kept for
the store's lifetime and reconnected when the link drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from mailevents_server.store.commits import TenantCommits
from mailevents_server.store.postgres_writer import CHANNEL, parse_payload

log = logging.getLogger(__name__)


class CommitListener:
    """One LISTEN connection, publishing the positions it hears to `commits`."""

    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], commits: TenantCommits
    ) -> None:
        self._connect = connect
        self._commits = commits
        self._task: asyncio.Task[None] | None = None
        #: Where our tables are: the channel is the database's, and deployments in
        #: other schemas of it (with the same tenant ids) notify it too.
        self._schema = ""

    async def start(self) -> None:
        """Listen, returning once the first connection listens (or raising why it cannot)."""
        listening = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen(listening), name="postgres-listen")
        await listening

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """Hear every replica's commits (NOTIFY), reconnecting when the link drops.

        While the link is down, waiters still wake by their timeout and
        re-read the position, so nothing is missed, only later.
        """
        delay = 0.5
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                self._schema = str(await conn.fetchval("SELECT current_schema()"))
                await conn.add_listener(CHANNEL, self._heard)
                # Commits made while we were not listening, of the tenants followed here.
                for tenant_id, position in await conn.fetch(
                    "SELECT tenant_id, last_id FROM tenant_positions "
                    "WHERE tenant_id = ANY($1::bigint[])",
                    self._commits.tenants(),
                ):
                    self._commits.publish(int(tenant_id), int(position))
                if not ready.done():
                    ready.set_result(None)
                delay = 0.5
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not ready.done():
                    ready.set_exception(exc)
                    return
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        parsed = parse_payload(payload, self._schema)
        if parsed is not None:
            self._commits.publish(*parsed)
