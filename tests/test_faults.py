"""Which failures are store faults (`faults.classify`), what status each becomes
(`errors.store_refusal`), and the client's retry rules (`_retry.Retries`).

The errors are real ones, raised by sqlite3 and the OS on real files and
sockets, not built by hand from what we expect them to look like.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from mailevents._retry import Retries, RetryPolicy
from mailevents.errors import MailEventsError
from mailevents_server.errors import store_refusal, to_rpc_status
from mailevents_server.faults import Fault, classify


def raised(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")


def test_sqlite_full_database_is_full(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute("PRAGMA max_page_count = 10")
    exc = raised(lambda: conn.execute("INSERT INTO t VALUES (zeroblob(100000))"))
    assert "full" in str(exc)
    assert classify(exc) is Fault.FULL


def test_sqlite_lock_held_elsewhere_is_transient(tmp_path: Path) -> None:
    first = sqlite3.connect(tmp_path / "db", isolation_level=None)
    second = sqlite3.connect(tmp_path / "db", isolation_level=None, timeout=0)
    first.execute("BEGIN IMMEDIATE")
    exc = raised(lambda: second.execute("BEGIN IMMEDIATE"))
    assert "locked" in str(exc)
    assert classify(exc) is Fault.TRANSIENT


def test_sqlite_bug_is_not_a_fault(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db")
    assert classify(raised(lambda: conn.execute("SELECT * FROM missing"))) is None
    assert classify(raised(lambda: conn.execute("SELEKT 1"))) is None


def test_os_errors() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]  # bound, not listening: refused
        with socket.socket() as client:
            refused = raised(lambda: client.connect(("127.0.0.1", port)))
    assert isinstance(refused, ConnectionRefusedError)
    assert classify(refused) is Fault.TRANSIENT
    assert classify(OSError(errno.ENOSPC, "No space left on device")) is Fault.FULL
    assert classify(FileNotFoundError(errno.ENOENT, "nope")) is None
    assert classify(ValueError("a bug")) is None


def test_refusals_carry_status_reason_and_retry_info(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute("PRAGMA max_page_count = 10")
    full = store_refusal(raised(lambda: conn.execute("INSERT INTO t VALUES (zeroblob(99999))")))
    assert full is not None
    assert full.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert full.reason == "STORAGE_FULL"
    assert full.message.startswith("storage is full")
    gone = store_refusal(ConnectionResetError(errno.ECONNRESET, "reset"))
    assert gone is not None
    assert gone.code == grpc.StatusCode.UNAVAILABLE
    status = to_rpc_status(gone)
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.RetryInfo()
    infos[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() > 0
    assert store_refusal(KeyError("a bug")) is None


def unavailable(retry_delay: float | None = None) -> MailEventsError:
    return MailEventsError(grpc.StatusCode.UNAVAILABLE, "x", retry_delay=retry_delay)


def test_retries_honour_retry_info_and_back_off() -> None:
    retries = Retries(RetryPolicy(total=60, initial=0.25, maximum=5))
    first = retries.next_delay(unavailable(1.0), reached=True)
    assert first is not None and 1.0 <= first <= 1.2
    plain = [retries.next_delay(unavailable(), reached=True) for _ in range(6)]
    assert all(d is not None for d in plain)
    assert max(d for d in plain if d is not None) <= 5
    assert plain[-1] is not None and plain[-1] >= 2.5  # grown to the cap's half at least


def test_retries_give_up_when_they_should() -> None:
    policy = RetryPolicy(total=30)
    # A server never reached, and no RetryInfo: report it at once.
    assert Retries(policy).next_delay(unavailable(), reached=False) is None
    # ...but a server that asks to be retried is there.
    assert Retries(policy).next_delay(unavailable(1.0), reached=False) is not None
    # Not retried: storage full, bad requests, bugs.
    for code in (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INTERNAL,
    ):
        error = MailEventsError(code, "x", retry_delay=30.0)
        assert Retries(policy).next_delay(error, reached=True) is None
    # The budget: a delay that would end past it is not waited.
    assert Retries(RetryPolicy(total=0.5)).next_delay(unavailable(1.0), reached=True) is None
    assert Retries(RetryPolicy(total=0)).next_delay(unavailable(), reached=True) is None
    # A count limit for dropped connections, lifted when the server asks.
    capped = Retries(policy, max_attempts=2)
    assert capped.next_delay(unavailable(), reached=True) is not None
    assert capped.next_delay(unavailable(), reached=True) is not None
    assert capped.next_delay(unavailable(), reached=True) is None
    assert capped.next_delay(unavailable(0.01), reached=True) is not None
    capped.progress()
    assert capped.next_delay(unavailable(), reached=True) is not None


@pytest.mark.parametrize(
    ("reason", "delay", "text"),
    [
        ("STORE_UNAVAILABLE", 2.2, "store unavailable, retrying in 2 s"),
        ("", 0.3, "server unavailable, retrying in 0.3 s"),
    ],
)
def test_retry_notice_text(reason: str, delay: float, text: str) -> None:
    from mailevents._retry import RetryNotice

    error = MailEventsError(grpc.StatusCode.UNAVAILABLE, "x", reason=reason)
    assert str(RetryNotice(error, delay, 1)) == text
