"""Closing the SQLite store leaves no aiosqlite connection behind.

A read still running on an aiosqlite thread (its caller cancelled: a refused REST
read's parallel count, a stream whose client left) when the store closes and the
event loop ends would answer a closed loop from its thread ("RuntimeError: Event
loop is closed", an unhandled thread exception) and leave its connection to the
GC ("was deleted before being closed"). Each scenario runs in an event loop of
its own that ends right after the store closes, as a test's or the server's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailevents_server.query.model import Query
from mailevents_server.store import sqlite as sqlite_store
from mailevents_server.store import sqlite_sql
from mailevents_server.store.sqlite import SQLiteStore

#: How long a query keeps its aiosqlite thread busy: longer than the scenario.
BUSY = 0.3


def _busy(seconds: float) -> int:
    time.sleep(seconds)  # a Python function: SQLite's interrupt cannot stop it
    return 1


@pytest.fixture
def slow_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    functions = (*sqlite_store._SQL_FUNCTIONS, ("test_busy", 1, _busy))
    monkeypatch.setattr(sqlite_store, "_SQL_FUNCTIONS", functions)
    slow = f"SELECT test_busy({BUSY}), 1, x'00'"
    monkeypatch.setattr(sqlite_sql, "select", lambda *a, **k: (slow, []))
    monkeypatch.setattr(sqlite_sql, "select_after", lambda *a, **k: (slow, []))


def _aiosqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


@contextlib.contextmanager
def _no_leftovers() -> Iterator[None]:
    """Fails on an aiosqlite thread still alive, its exception or a leaked connection."""
    before = _aiosqlite_threads()
    raised: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: raised.append(args.exc_value)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            alive = [t for t in _aiosqlite_threads() - before if t.is_alive()]
            time.sleep(BUSY * 2)  # what a leftover query would still do on its thread
            gc.collect()
    finally:
        threading.excepthook = hook
    assert raised == []
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]
    assert not alive, f"{len(alive)} aiosqlite thread(s) still running after close()"


def _run(scenario: Callable[[SQLiteStore], Awaitable[None]], path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(str(path), readers=1)
        await store.open()
        async with asyncio.timeout(10):  # a close that waits for a thread gone hangs
            try:
                await scenario(store)
            finally:
                await store.close()

    with _no_leftovers():
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()  # no shutdown of the default executor, no asyncgen cleanup


async def _cancel_mid_query(task: asyncio.Task[Any], times: int = 1) -> None:
    await asyncio.sleep(BUSY / 6)  # the query is running on the connection's thread
    for _ in range(times):
        task.cancel()
        await asyncio.sleep(0)


@pytest.mark.usefixtures("slow_queries")
def test_a_pooled_read_cancelled_right_before_close(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        task = asyncio.create_task(store.read_after(Query(1), 0, 10))
        await _cancel_mid_query(task)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    _run(scenario, tmp_path / "pooled.db")


@pytest.mark.usefixtures("slow_queries")
def test_a_pooled_read_cancelled_again_and_again(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        task = asyncio.create_task(store.read_after(Query(1), 0, 10))
        await _cancel_mid_query(task, times=4)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    _run(scenario, tmp_path / "pooled-again.db")


@pytest.mark.usefixtures("slow_queries")
def test_reads_cancelled_by_a_shutdown_that_does_not_wait_for_them(tmp_path: Path) -> None:
    """As a server's stop: its handlers are cancelled, the store closes at once."""

    async def consume(store: SQLiteStore) -> None:
        async for _ in store.read(Query(1), 100):
            pass

    async def scenario(store: SQLiteStore) -> None:
        tasks = [
            asyncio.create_task(store.read_after(Query(1), 0, 10)),
            asyncio.create_task(consume(store)),
        ]
        await asyncio.sleep(BUSY / 6)
        for task in tasks:
            task.cancel()
        await store.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    _run(scenario, tmp_path / "shutdown.db")


@pytest.mark.usefixtures("slow_queries")
def test_a_stream_cancelled_mid_query_right_before_close(tmp_path: Path) -> None:
    async def consume(store: SQLiteStore) -> None:
        async for _ in store.read(Query(1), 100):
            pass

    async def scenario(store: SQLiteStore) -> None:
        task = asyncio.create_task(consume(store))
        await _cancel_mid_query(task, times=3)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    _run(scenario, tmp_path / "stream.db")


@pytest.mark.usefixtures("slow_queries")
def test_an_abandoned_stream_at_close(tmp_path: Path) -> None:
    streams: list[Any] = []

    async def scenario(store: SQLiteStore) -> None:
        stream = store.read(Query(1), 100)
        streams.append(stream)  # never closed: its reader must not outlive the store
        first = asyncio.ensure_future(anext(stream))
        await _cancel_mid_query(first)
        with contextlib.suppress(asyncio.CancelledError):
            await first

    _run(scenario, tmp_path / "abandoned.db")
    streams.clear()


async def test_the_pool_still_answers_after_cancelled_reads(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "refill.db"), readers=2)
    await store.open()
    try:
        for _ in range(20):
            task = asyncio.create_task(store.last_id(1))
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        results = await asyncio.gather(*(store.last_id(1) for _ in range(10)))
        assert results == [0] * 10
    finally:
        await store.close()
