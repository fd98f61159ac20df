"""Backing up the embedded store, and making any restored database safe to serve.

`backup` copies a SQLite database while the service runs, with `VACUUM
INTO`: one read transaction, so the copy is the database as of one commit
while writers go on (WAL lets them), and the copy is compact (no free
pages), which also makes it the way to shrink a database after retention.
SQLite's backup API would copy pages as they are, and, stepped through in
slices, be restarted by every concurrent commit. The copy is checked
(`PRAGMA quick_check`) under a temporary name and only then given its own,
so a file with that name is always a whole, checked copy.

`after_restore` is for any database put back from a backup, SQLite or
PostgreSQL: the store it replaces may have committed past the backup, and
live consumers may hold resume tokens from those lost commits. Restored as
it is, the database would hand the same positions out again to other events,
and a consumer resuming from such a token would skip every event committed
below it. A gap before the next commit keeps every new event above any such
token (see `Store.skip_positions`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mailevents_server.store import open_store
from mailevents_server.store.sqlite_writer import HIGHEST_ID

#: Positions left unused after a restore: more events than the lost store
#: could have committed since its backup (2^40, some 10^12), and still far
#: below the limits of ids (int64, and JSON numbers exact to 2^53).
RESTORE_GAP = 1 << 40


class BackupError(Exception):
    """Why a backup cannot be made; the message says what to do instead."""


@dataclass(frozen=True)
class Backup:
    """What a finished backup holds."""

    path: Path
    events: int
    highest_id: int
    size_bytes: int
    seconds: float


def backup(database: str, destination: Path) -> Backup:
    """Copy the SQLite database at `database` to `destination` (a new file)."""
    if "://" in database:
        raise BackupError(
            "mailevents backup copies SQLite databases; back PostgreSQL up with its own "
            "tools (pg_dump, or pg_basebackup with WAL archiving), and run "
            "`mailevents after-restore` on a restored one (docs/deploy.md)"
        )
    if not Path(database).is_file():
        raise BackupError(f"{database}: no such database file")
    if destination.exists():
        raise BackupError(f"{destination} exists: give the backup a new name")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        source = sqlite3.connect(f"file:{quote(database)}?mode=ro", uri=True)
        try:
            source.execute("PRAGMA busy_timeout = 10000")
            source.execute("VACUUM INTO ?", (str(partial),))
        finally:
            source.close()
        copy = sqlite3.connect(partial)
        try:
            (check,) = copy.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise BackupError(f"the copy failed its check ({check}); {database} may be damaged")
            (events,) = copy.execute("SELECT count(*) FROM events").fetchone()
            (highest,) = copy.execute(HIGHEST_ID).fetchone()
        finally:
            copy.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, destination)
    return Backup(
        destination,
        int(events),
        int(highest),
        destination.stat().st_size,
        time.perf_counter() - started,
    )


async def after_restore(database: str, gap: int = RESTORE_GAP) -> None:
    """Leave `gap` unused positions before every tenant's next commit; run it on
    a restored database before any server starts on it."""
    if gap < 1:
        raise ValueError("the gap must be at least 1")
    if "://" not in database and not Path(database).is_file():  # noqa: ASYNC240 - once, at start
        # Opening it would make a new, empty database: a mistyped path.
        raise BackupError(f"{database}: no such database file")
    store = open_store(database)
    await store.open()
    try:
        await store.skip_positions(gap)
    finally:
        await store.close()
