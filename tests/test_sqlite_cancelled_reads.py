"""A read cancelled mid-query (a client that hung up, a deadline) must not fail the next
caller that gets the same pooled SQLite connection."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from mailevents_server.store.sqlite import SQLiteStore


async def test_a_cancelled_read_leaves_the_pooled_connection_usable(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "cancel.db"), readers=1)
    await store.open()
    try:
        for _ in range(50):
            task = asyncio.create_task(store.last_id(1))
            await asyncio.sleep(0)  # inside its query
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert await store.last_id(1) == 0  # not sqlite3.OperationalError: interrupted
    finally:
        await store.close()
