"""`mailevents backup` of a serving SQLite store, and a restore that loses nothing
for live consumers: after `mailevents after-restore`, a consumer resuming with a
token from commits the restored database lost gets every event committed since.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import make_server
from factories import events
from live_support import MAILEVENTS, ids_of, read, read_events, watch_request

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.backups import BackupError, backup


async def run(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(MAILEVENTS), *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_backup_taken_during_ingest_is_one_consistent_moment(tmp_path: Path) -> None:
    database = str(tmp_path / "events.db")
    srv = await make_server(database)
    acked = 0
    stop, started = asyncio.Event(), asyncio.Event()

    async def produce() -> None:
        nonlocal acked
        n = 0
        while not stop.is_set():
            await srv.ingest(events(200, prefix=f"b{n}-"))
            acked += 200
            n += 1
            if acked >= 2000:
                started.set()

    producer = asyncio.create_task(produce())
    try:
        await started.wait()
        before = acked
        code, out, err = await run("backup", "--database", database, str(tmp_path / "copy.db"))
        after = acked
        assert code == 0, err
        assert out.startswith("backed up ") and out.rstrip().endswith("checked")
    finally:
        stop.set()
        await producer
        await srv.channel.close()
        await srv.running.stop(grace=0)

    with sqlite3.connect(tmp_path / "copy.db") as copy:
        (count,) = copy.execute("SELECT count(*) FROM events").fetchone()
        (top,) = copy.execute("SELECT max(id) FROM events").fetchone()
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Whole batches as of one commit: every event up to the highest id, nothing torn.
    assert before <= count <= after + 200 and count % 200 == 0
    assert top == count
    assert not (tmp_path / "copy.db.partial").exists()
    # The copy serves.
    restored = await make_server(str(tmp_path / "copy.db"))
    try:
        total = await restored.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(), metadata=restored.metadata()
        )
        assert total.total == count
    finally:
        await restored.channel.close()
        await restored.running.stop(grace=0)


def put_back(copy: Path, database: Path) -> None:
    """The disaster: the database is gone; the backup is put in its place."""
    for leftover in ("", "-wal", "-shm"):
        Path(f"{database}{leftover}").unlink(missing_ok=True)
    shutil.copy(copy, database)


async def test_after_restore_a_token_from_lost_commits_misses_nothing(tmp_path: Path) -> None:
    database = tmp_path / "events.db"
    srv = await make_server(str(database))
    try:
        call = srv.stub.WatchMessageEvents(watch_request(), metadata=srv.metadata())
        await read(call)
        await srv.ingest(events(3, prefix="kept"))
        await read_events(call, 3)
        made = backup(str(database), tmp_path / "backup.db")
        assert (made.events, made.highest_id) == (3, 3)
        await srv.ingest(events(3, prefix="lost"))  # committed after the backup
        token = (await read_events(call, 3))[-1].resume_token  # at position 6
        call.cancel()
    finally:
        await srv.channel.close()
        await srv.running.stop(grace=0)

    put_back(tmp_path / "backup.db", database)
    code, out, err = await run("after-restore", "--database", str(database))
    assert code == 0, err
    assert "safe to use" in out

    again = await make_server(str(database))
    try:
        # Without the gap these would take positions 4 and 5 again, below the
        # token: resuming from it would skip them without a word.
        await again.ingest(events(2, prefix="new"))
        call = again.stub.WatchMessageEvents(
            watch_request(resume_token=token), metadata=again.metadata()
        )
        assert ids_of(await read_events(call, 2)) == ["new-00000", "new-00001"]
        call.cancel()
        # What the backup held is all there, at its old ids.
        kept = await again.stub.GetMessageEvent(
            spb.GetMessageEventRequest(event_id="kept-00002"), metadata=again.metadata()
        )
        assert kept.event.id == 3
    finally:
        await again.channel.close()
        await again.running.stop(grace=0)


@pytest.mark.parametrize(
    ("database", "destination", "message"),
    [
        ("postgresql://localhost/db", "copy.db", "back PostgreSQL up with its own tools"),
        ("missing.db", "copy.db", "no such database file"),
        ("events.db", "events.db", "exists: give the backup a new name"),
    ],
)
def test_backups_that_cannot_be_made_say_why(
    tmp_path: Path, database: str, destination: str, message: str
) -> None:
    sqlite3.connect(tmp_path / "events.db").close()
    source = database if "://" in database else str(tmp_path / database)
    with pytest.raises(BackupError, match=message):
        backup(source, tmp_path / destination)


async def test_after_restore_refuses_a_database_that_is_not_there(tmp_path: Path) -> None:
    """A mistyped path is an error, not a new empty database."""
    missing = tmp_path / "typo.db"
    code, _, err = await run("after-restore", "--database", str(missing))
    assert code == 2 and "no such database file" in err
    assert not missing.exists()
