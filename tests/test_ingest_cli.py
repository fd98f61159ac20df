"""`mailevents ingest` resumability and `mailevents tail`, against a real server.

The import is killed with SIGKILL half-way (the console script, a real
process) and run again: it resumes from its checkpoint, and in the end every
event is stored once and every reject is recorded once.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Server
from factories import event, events, search_all

from mailevents.cli import main

SCRIPT = Path(sys.executable).with_name("mailevents")


def connect(server: Server) -> list[str]:
    return ["--address", server.address, "--api-key", server.api_key]


def sparkpost_line(n: int) -> str:
    return json.dumps(
        {
            "type": "delivery",
            "event_id": f"imp-{n}",
            "timestamp": f"2024-06-01T10:{n % 60:02d}:00Z",
            "rcpt_to": f"user{n}@example.org",
        }
    )


def big_input(lines: int, bad_every: int = 500) -> bytes:
    out = []
    for n in range(lines):
        out.append("{broken" if n % bad_every == 7 else sparkpost_line(n))
    return ("\n".join(out) + "\n").encode()


def checkpoint_line(path: Path) -> int:
    """The last line a checkpoint covers; -1 when there is none."""
    try:
        return int(read_json(path)["line"])
    except (OSError, ValueError):
        return -1


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def run(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT), *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
async def test_a_killed_import_resumes_where_it_stopped(
    server: Server, tmp_path: Path, compress: bool
) -> None:
    lines = 30_000
    data = big_input(lines)
    source = tmp_path / ("events.jsonl.gz" if compress else "events.jsonl")
    source.write_bytes(gzip.compress(data) if compress else data)
    checkpoint = Path(f"{source}.checkpoint.json")
    rejects = Path(f"{source}.rejected.jsonl")
    argv = ["ingest", *connect(server), str(source), "--batch-size", "200"]

    process = await asyncio.create_subprocess_exec(
        str(SCRIPT), *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(60):
            while checkpoint_line(checkpoint) < 5000:
                assert process.returncode is None, "finished before it could be killed"
                await asyncio.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        await process.wait()
    saved = read_json(checkpoint)
    assert 5000 <= saved["line"] < lines

    code, out, err = await run(*argv)
    assert code == 3, err  # done, with the input's rejected lines
    assert f"resuming after line {saved['line']}" in err
    bad = sum(1 for n in range(lines) if n % 500 == 7)
    good = lines - bad
    stored, duplicates, rejected = (int(word) for word in out.split()[0:6:2])
    assert stored + duplicates == good and rejected == bad
    assert checkpoint_line(checkpoint) == -1  # done: nothing to resume
    # Every reject once, in order, though the first run wrote some of them.
    recorded = [record["line"] for record in read_json_lines(rejects)]
    assert recorded == [n + 1 for n in range(lines) if n % 500 == 7]
    found = await search_all(server)
    assert len(found) == len({ev.event_id for ev in found}) == good


async def test_restart_and_a_checkpoint_of_another_input(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "small.jsonl"
    source.write_bytes(big_input(10))
    checkpoint = tmp_path / "cp.json"
    checkpoint.write_text(
        json.dumps(
            {
                "head": "not this file",
                "offset": 5,
                "line": 1,
                "rejects_size": 0,
                "stored": 1,
                "duplicates": 0,
                "rejected": 0,
                "version": 1,
            }
        )
    )
    code, out, err = await run(
        "ingest", *connect(server), str(source), "--checkpoint", str(checkpoint)
    )
    assert code == 3 and "is for another input: starting over" in err
    assert out.startswith("9 stored, 0 duplicates, 1 rejected")
    code, out, _ = await run("ingest", *connect(server), str(source), "--restart")
    assert out.startswith("0 stored, 9 duplicates, 1 rejected")


# -- tail ----------------------------------------------------------------------------------


async def tail(*argv: str) -> tuple[int, str, str]:
    """`mailevents tail` in a thread (main() runs its own loop); stdout and stderr captured."""
    return await asyncio.to_thread(_tail_in_thread, list(argv))


def _tail_in_thread(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["tail", *argv])
    return code, out.getvalue(), err.getvalue()


async def when_watching(token_file: Path) -> None:
    """A tail saves its position as soon as its stream is open."""
    async with asyncio.timeout(10):
        for _ in itertools.count():
            if await asyncio.to_thread(token_file.exists):
                return
            await asyncio.sleep(0.01)


async def test_tail_prints_new_events_and_resumes_from_its_saved_token(
    server: Server, tmp_path: Path
) -> None:
    await server.ingest(events(3, prefix="old"))  # before the tail: not shown
    token = tmp_path / "tail.token"
    args = [*connect(server), "--format", "jsonl", "--resume", str(token), "--type", "bounce"]
    first = asyncio.create_task(tail(*args, "--limit", "2", "--watermarks"))
    await when_watching(token)
    await server.ingest(
        [
            event("b1", type=3),
            event("d1"),
            event("b2", type=3),
            event("b3", type=3),
            event("b4", type=3),
        ]
    )
    code, out, err = await first
    assert code == 0, err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == ["b1", "b2"]
    assert "watermark: position" in err

    code, out, _ = await tail(*args, "--limit", "2")
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == ["b3", "b4"]


async def test_tail_with_history_prints_what_is_stored_then_follows(
    server: Server, tmp_path: Path
) -> None:
    await server.ingest(events(3, prefix="old"))
    token = tmp_path / "history.token"
    running = asyncio.create_task(
        tail(
            *connect(server),
            "--format",
            "jsonl",
            "--history",
            "--limit",
            "5",
            "--resume",
            str(token),
        )
    )
    await when_watching(token)
    await server.ingest(events(2, prefix="new"))
    code, out, err = await running
    assert code == 0, err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [
        "old-00000",
        "old-00001",
        "old-00002",
        "new-00000",
        "new-00001",
    ]
