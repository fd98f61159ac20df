"""Worker processes for the CPU-bound Python work of one server process.

Three jobs are pure Python per event and would otherwise take turns with
everything else for the GIL: preparing large ingest batches (`ingest.pool`),
turning large webhook bodies into ingest requests (`webhooks`) and rendering
large REST pages (`rest.render`). Each sends bytes to a worker and gets bytes
or plain tuples back. `mailevents serve` runs one set of workers for all
three; `mailevents rest` (the shim alone) has its own.

The processes start with the first job, as fresh interpreters ("spawn", not
a fork of a process running gRPC threads). Where there are none (`count` 0)
or they cannot run (a worker died), jobs run in a thread instead: slower
under load, never wrong.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from aiohttp import web

from mailevents_server import runtime
from mailevents_server.metrics import UNSERVED, Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


def default_count() -> int:
    """The cores left beside the server's own process, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class Workers:
    """A lazily started process pool, with a thread as the fallback."""

    def __init__(self, count: int, metrics: Metrics = UNSERVED) -> None:
        self.count = max(0, count)
        self.metrics = metrics
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker process (`fn` and `args` must pickle)."""
        metrics = self.metrics
        metrics.worker_queue.inc()
        started = time.perf_counter()
        try:
            return await self._run(fn, *args)
        finally:
            metrics.worker_queue.dec()
            metrics.worker_seconds.labels(fn.__name__).observe(time.perf_counter() - started)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.count == 0:
            return await asyncio.to_thread(fn, *args)
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.count,
                mp_context=context,
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:
            log.exception("a worker process died; this job runs in a thread")
            broken, self._pool = self._pool, None  # the next job starts new workers
            broken.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


#: How often a worker looks whether its server is gone, where the kernel does not say.
_PARENT_POLL_SECONDS = 0.1
_PR_SET_PDEATHSIG = 1


def _start_worker(parent: int) -> None:
    """In each worker, at its start: the serving process's collector settings
    (`runtime`), and exit once the server process is gone.

    A pool's worker holds both ends of its own job queue, so it never reads
    end-of-file when the server dies without closing the pool (SIGKILL, the
    OOM killer): it would wait forever, and multiprocessing's resource
    tracker with it. On Linux the kernel kills the worker the moment the
    server dies (PR_SET_PDEATHSIG), busy or not; elsewhere, and as a fallback,
    a thread that sleeps otherwise looks ten times a second.
    """
    _die_with_parent()
    if os.getppid() != parent:  # the server died before the line above
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    runtime.tune_gc()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError, ctypes.ArgumentError):
        pass  # the watching thread still ends the worker


def owned_by(app: web.Application) -> Workers:
    """Workers for an aiohttp app run without a server's (the shim or webhooks
    alone), stopped on the app's cleanup."""
    workers = Workers(default_count())

    async def close(_app: web.Application) -> None:
        workers.close()

    app.on_cleanup.append(close)
    return workers
