"""The commit hub: how a store's writer wakes the live streams waiting for news.

The writer calls `publish(position)` after each commit; every stream waiting
in `wait` wakes at once (one event set wakes them all, however many there
are) and reads what is new itself. Nothing is queued per stream, so a slow
or stalled stream costs the hub no memory: it simply has not asked again yet.

A hub only hears commits made in its own process. Waiting is therefore
always bounded by a timeout, after which the caller re-reads the store, so
commits made elsewhere (another process on the same SQLite file, another
replica on PostgreSQL) are still seen, within that timeout.
"""

from __future__ import annotations

import asyncio
import contextlib


class CommitHub:
    """The highest committed position of this process, and a way to wait for a higher one."""

    def __init__(self, position: int = 0) -> None:
        self.position = position
        self._changed = asyncio.Event()

    def publish(self, position: int) -> None:
        """A commit made every id up to `position` visible: wake every waiter."""
        if position <= self.position:
            return
        self.position = position
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, position: int, max_wait: float) -> None:
        """Return when a position beyond `position` is published, or after `max_wait` s."""
        if self.position > position:
            return
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await changed.wait()


class TenantCommits:
    """A commit hub per tenant, for stores whose commit order is per tenant.

    A commit of one tenant wakes only that tenant's streams. Hubs are made
    on first use (a publish or a wait), one small object per tenant seen.
    """

    def __init__(self) -> None:
        self._hubs: dict[int, CommitHub] = {}

    def _hub(self, tenant_id: int) -> CommitHub:
        hub = self._hubs.get(tenant_id)
        if hub is None:
            hub = self._hubs[tenant_id] = CommitHub()
        return hub

    def publish(self, tenant_id: int, position: int) -> None:
        self._hub(tenant_id).publish(position)

    async def wait(self, tenant_id: int, position: int, max_wait: float) -> None:
        await self._hub(tenant_id).wait(position, max_wait)

    def tenants(self) -> list[int]:
        """The tenants with a hub: those a reconnected listener must catch up on."""
        return list(self._hubs)
