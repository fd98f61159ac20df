"""Which store failures are faults of the moment, and how long a call may wait for the store.

A store that loses its server, runs out of disk or waits on a lock raises
whatever its driver raises (sqlite3, asyncpg, OS errors). Those are not bugs
of ours: a caller should send again later, and since ingest is idempotent on
`event_id` sending again is always safe. `classify` tells them apart from
everything else, so that `errors.store_refusal` can answer UNAVAILABLE or
RESOURCE_EXHAUSTED instead of INTERNAL. It recognises asyncpg's errors by
their SQLSTATE, without importing asyncpg, which is an optional dependency.

`call_budget` is how long the store may take for the call being served:
a little less than the call's deadline, so that a stalled store is answered
with UNAVAILABLE before the client gives up on its own, instead of a hang.
"""

from __future__ import annotations

import contextvars
import enum
import errno
import logging
import sqlite3
import time

#: Leave the call this much of its deadline (at most) to send the refusal.
_MARGIN_SECONDS = 0.5


class Fault(enum.Enum):
    """What kind of store fault an exception is."""

    TRANSIENT = "transient"  # connection lost, server restarting, lock timeout: retry soon
    FULL = "full"  # disk or quota full: an operator must act, retry later


# SQLite's primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_TRANSIENT = {
    5,  # SQLITE_BUSY: another connection holds the lock past busy_timeout
    6,  # SQLITE_LOCKED
    10,  # SQLITE_IOERR: a disk I/O error
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}
_SQLITE_FULL = 13  # SQLITE_FULL: disk full, or max_page_count reached

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_FULL = {"53100"}  # disk_full
_PG_TRANSIENT_CLASSES = ("08", "40", "58")  # connection; rollback (serialization, deadlock); I/O
_PG_TRANSIENT = {
    "25006",  # read_only_sql_transaction: a standby after a failover
    "53000",  # insufficient_resources
    "53200",  # out_of_memory
    "53300",  # too_many_connections
    "55P03",  # lock_not_available (lock_timeout)
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown (also pg_terminate_backend)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: starting up, recovering
    "57P05",  # idle_session_timeout
}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def classify(exc: BaseException) -> Fault | None:
    """The fault `exc` is, or None when it is not a store fault (then it is a bug)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        primary = int(code) & 0xFF
        if primary == _SQLITE_FULL:
            return Fault.FULL
        return Fault.TRANSIENT if primary in _SQLITE_TRANSIENT else None
    if type(exc).__module__.startswith("asyncpg"):
        return _asyncpg_fault(exc)
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return Fault.FULL
        # Refused, reset, broken pipe, timed out: the database server is away.
        if isinstance(exc, ConnectionError | TimeoutError) or exc.errno == errno.EIO:
            return Fault.TRANSIENT
    return None


def _asyncpg_fault(exc: BaseException) -> Fault | None:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        if state in _PG_FULL:
            return Fault.FULL
        if state in _PG_TRANSIENT or state.startswith(_PG_TRANSIENT_CLASSES):
            return Fault.TRANSIENT
        return None
    # asyncpg's own InterfaceError for a connection the server closed under it.
    text = str(exc).lower()
    if "connection" in text and ("closed" in text or "lost" in text):
        return Fault.TRANSIENT
    # A query on a connection the server has just terminated can find asyncpg's
    # protocol state confused ("cannot switch to state 12; another operation
    # (2) is in progress", MagicStack/asyncpg#1069): the connection is gone.
    if type(exc).__name__ == "InternalClientError" and "another operation" in text:
        return Fault.TRANSIENT
    return None


def cause(exc: BaseException) -> str:
    """The fault in one line, for the log: the driver's class and message."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:300]}"


class StoreClosed(ConnectionError):
    """The store has closed (the server is stopping): another replica, or this one
    once restarted, takes the call."""


class StoreTimeout(TimeoutError):
    """The store did not answer within the call's deadline (a lock, a stalled server)."""


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "mailevents_call_deadline", default=None
)


def set_call_deadline(seconds_left: float | None) -> None:
    """Called when a call starts: it has `seconds_left` (None: no deadline)."""
    _deadline.set(None if seconds_left is None else time.monotonic() + seconds_left)


def call_budget() -> float | None:
    """Seconds the store may still take for the current call (None: no bound)."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return max(0.01, left - min(_MARGIN_SECONDS, left / 10))


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed background step: a store fault as one WARNING line with its
    cause (it is not ours to debug), anything else with its traceback."""
    if classify(exc) is None:
        log.error(what, exc_info=exc)
    else:
        log.warning("%s: %s", what, cause(exc))
