"""The SQLite store's aiosqlite connections: the reader pool, streams' and admin ones.

Every connection opened is tracked until it is closed, once, and its thread
has ended; `close` returns only then. A query left running on an aiosqlite
thread (a cancelled caller's, an abandoned stream's) would otherwise answer an
event loop that is gone ("Event loop is closed" on that thread) and leave its
connection to the garbage collector. A reader whose caller was cancelled
mid-query is interrupted and replaced rather than handed to the next caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosqlite

from mailevents_server import faults

log = logging.getLogger(__name__)

SqlFunctions = tuple[tuple[str, int, Callable[..., Any]], ...]


class Connections:
    """The aiosqlite connections of one store, and their lifecycle."""

    def __init__(self, path: str, readers: int, functions: SqlFunctions) -> None:
        self.path = path
        self._reader_count = readers
        self._functions = functions
        #: The pooled readers; None once closed (each waiter wakes, and raises).
        self._readers: asyncio.Queue[aiosqlite.Connection | None] = asyncio.Queue()
        #: Every aiosqlite connection opened and not closed yet
        #: (pooled readers, streams' readers, admin connections).
        self._connections: set[aiosqlite.Connection] = set()
        #: Each connection's one close, started once (aiosqlite must not be
        #: closed twice: the second stop would wait for a thread already gone).
        self._closes: dict[aiosqlite.Connection, asyncio.Task[None]] = {}
        #: Opens, closes and pool refills in flight: close() waits for them all.
        self._background: set[asyncio.Future[Any]] = set()
        self._closed = False

    def reopen(self) -> None:
        """Before the store opens (again): a fresh, empty pool."""
        self._closed = False
        self._readers = asyncio.Queue()

    async def fill(self) -> None:
        """Open the pooled readers."""
        for _ in range(self._reader_count):
            self._readers.put_nowait(await self.open_connection())

    def closing(self) -> None:
        """From now on no new connection is handed out."""
        self._closed = True

    async def close(self) -> None:
        """Close every connection opened; return when their threads have ended."""
        self._closed = True
        while self._connections or self._background:
            for conn in list(self._connections):
                self._close_connection(conn)
            await asyncio.gather(*self._background, return_exceptions=True)
        while not self._readers.empty():  # closed: no caller may get one
            self._readers.get_nowait()
        self._readers.put_nowait(None)  # wakes a waiter, which passes it on

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def open_connection(self, *, reader: bool = True) -> aiosqlite.Connection:
        """A new connection, opened in a task of its own that close() waits for.

        A caller cancelled meanwhile does not cancel the opening: the
        connection is closed once open instead of being leaked.
        """
        opening = asyncio.ensure_future(self._connect(reader=reader))
        self._track(opening)
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._close_when_opened)
            raise

    def _close_when_opened(self, opening: asyncio.Future[aiosqlite.Connection]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            self._close_connection(opening.result())

    async def _connect(self, *, reader: bool = True) -> aiosqlite.Connection:
        """A connection (read-only unless `reader` is false), tracked until closed."""
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn  # starts its thread
        except BaseException:
            # aiosqlite has queued the thread's stop: wait for the thread to end.
            await _join(conn)
            raise
        self._connections.add(conn)
        try:
            await conn.execute("PRAGMA busy_timeout = 10000")
            if reader:
                await conn.execute("PRAGMA query_only = 1")
                await conn.execute("PRAGMA mmap_size = 1073741824")
                await conn.execute("PRAGMA cache_size = -32768")
                for name, arity, function in self._functions:
                    await conn.create_function(name, arity, function, deterministic=True)
            if self._closed:
                raise faults.StoreClosed("store is closed")
        except BaseException:
            await self._close_connection(conn)
            raise
        return conn

    def _close_connection(self, conn: aiosqlite.Connection) -> asyncio.Task[None]:
        """Close `conn` once, in a task close() waits for; awaiting it is optional.

        aiosqlite queues the close behind whatever the connection's thread is
        still running (a cancelled caller's query goes on there), so when the
        task is done no call of that thread is left to reach the event loop.
        """
        task = self._closes.get(conn)
        if task is None:
            task = asyncio.ensure_future(self._close_and_join(conn))
            self._closes[conn] = task
            self._track(task)
        return task

    async def _close_and_join(self, conn: aiosqlite.Connection) -> None:
        try:
            await conn.close()
        except Exception as exc:
            faults.log_failure(log, "closing a SQLite reader connection failed", exc)
        finally:
            await _join(conn)
            self._connections.discard(conn)
            self._closes.pop(conn, None)

    async def release(self, conn: aiosqlite.Connection) -> None:
        """Close `conn`; a caller cancelled meanwhile leaves the close to close()."""
        await asyncio.shield(self._close_connection(conn))

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._readers.get()
        if conn is None:
            self._readers.put_nowait(None)
            raise faults.StoreClosed("store is closed")
        try:
            yield conn
        except asyncio.CancelledError:
            # A cancelled caller must not leave a long query running on a
            # connection the next caller will wait for. The interrupt would also
            # fail the next caller's statement (the cancelled statement stays
            # active in the connection's cache), so the connection is replaced:
            # closed once its thread is done with the query, and a new one
            # opened for the pool, both in tasks close() waits for. The
            # cancelled caller waits for neither.
            interrupt(conn)
            self._close_connection(conn)
            self._track(asyncio.ensure_future(self._refill()))
            raise
        except BaseException:
            self._readers.put_nowait(conn)
            raise
        else:
            self._readers.put_nowait(conn)

    async def _refill(self) -> None:
        """One new reader in the pool, in place of one closed after a cancellation."""
        if self._closed:
            return
        try:
            conn = await self._connect()
        except Exception as exc:
            if not self._closed:
                faults.log_failure(log, "could not replace an interrupted reader connection", exc)
                # Callers wait for a reader: try again rather than shrink the pool.
                await asyncio.sleep(1.0)
                self._track(asyncio.ensure_future(self._refill()))
            return
        self._readers.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[aiosqlite.Connection]:
        """A short-lived writing connection for rare admin writes (keys).

        Not the event writer's connection: its transactions are the write
        queue's, and a key created meanwhile would collide with one in flight.
        SQLite's own lock (with busy_timeout) orders the two.
        """
        conn = await self.open_connection(reader=False)
        try:
            yield conn
        finally:
            await self.release(conn)


def interrupt(conn: aiosqlite.Connection) -> None:
    """Stop `conn`'s running statement, if it is still open."""
    raw = conn._connection  # aiosqlite's interrupt() raises once it is closed
    if raw is not None:
        raw.interrupt()


async def _join(conn: aiosqlite.Connection) -> None:
    """Wait for `conn`'s thread (its stop is queued) to have finished."""
    thread = conn._thread
    # Its last act is to answer the stop through the loop, so it ends right
    # after: polled (bounded) rather than joined in an executor that may be
    # shut down already.
    for _ in range(10_000):
        if thread.ident is None or not thread.is_alive():
            return
        await asyncio.sleep(0.001)
    log.warning("an aiosqlite thread did not end within 10 s of its close")
