"""What the store-fault tests share: a PostgreSQL server a test may crash, and the
checks every fault test makes (the refusal's status and RetryInfo, a log
without tracebacks, every acknowledged event stored once)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from factories import error_details, rich_status, search_all
from google.rpc import error_details_pb2

from mailevents.client import RetryNotice
from mailevents.v1 import message_event_pb2 as pb

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


class DedicatedPostgres:
    """A throwaway PostgreSQL of its own (scripts/postgres.sh with its own state
    file), so that crashing and restarting it disturbs no other test or run
    sharing the suite's server."""

    def __init__(self, directory: Path) -> None:
        self._env = {**os.environ, "MAILEVENTS_PG_STATE": str(directory / "pg.state")}
        self.url = ""

    def start(self) -> str:
        self.url = self._run("start").strip().splitlines()[-1]
        # The script's server trades durability for speed (synchronous_commit
        # off): a crash would lose commits already acknowledged. Not this one.
        asyncio.run(self._durable())
        return self.url

    async def _durable(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    def stop(self) -> None:
        self._run("stop")

    def _run(self, command: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), command], env=self._env, capture_output=True, text=True
        )
        if done.returncode:
            pytest.fail(f"scripts/postgres.sh {command} failed: {done.stderr}")
        return done.stdout

    async def command(self, command: str) -> None:
        """`halt` (an immediate-mode stop: a crash), `resume` or `restart`, without
        blocking the event loop the service under test runs on."""
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(SCRIPT),
            command,
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await process.communicate()
        assert process.returncode == 0, f"postgres.sh {command}: {stderr.decode()}"


class Notices:
    """A client's `on_retry`: keeps every RetryNotice, and `first` is set on the first."""

    def __init__(self) -> None:
        self.seen: list[RetryNotice] = []
        self.first = asyncio.Event()

    def __call__(self, notice: RetryNotice) -> None:
        self.seen.append(notice)
        self.first.set()


async def first_retry(notices: Notices, call: asyncio.Task[Any], within: float = 30.0) -> None:
    """Wait until the client retries `call` once; fail (never hang) if `call`
    ends first (with its own error, if it has one) or nothing happens in time."""
    retried = asyncio.ensure_future(notices.first.wait())
    try:
        done, _ = await asyncio.wait(
            {retried, call}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        retried.cancel()
    if call in done:
        call.result()
        raise AssertionError("the call ended without retrying")
    assert retried in done, f"no retry within {within:g}s"


def retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay (seconds) of a refusal, None without one."""
    for detail in rich_status(err).details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds() / 1e9)
    return None


def assert_store_unavailable(err: grpc.aio.AioRpcError) -> None:
    """A transient store fault, answered as one: UNAVAILABLE, its reason, a RetryInfo."""
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    info, _ = error_details(err)
    assert info.reason == "STORE_UNAVAILABLE"
    assert (retry_delay(err) or 0) > 0


def assert_clean_log(records: Iterable[logging.LogRecord]) -> list[str]:
    """No traceback and no error beyond WARNING in the log; its warnings' text."""
    warnings = []
    for record in records:
        assert record.exc_info is None, f"traceback logged: {record.getMessage()}"
        assert record.levelno <= logging.WARNING, record.getMessage()
        text = record.getMessage()
        assert "Traceback" not in text
        assert "cannot rollback" not in text
        if record.levelno == logging.WARNING:
            warnings.append(text)
    return warnings


async def assert_stored_once(server: object, acknowledged: Iterable[str]) -> list[pb.MessageEvent]:
    """Every acknowledged event_id is in the store, and no event_id is there twice."""
    stored = await search_all(server)
    ids = [event.event_id for event in stored]
    assert len(ids) == len(set(ids)), "an event is stored twice"
    missing = set(acknowledged) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events are missing"
    return stored
