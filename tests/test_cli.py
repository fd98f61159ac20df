"""The `mailevents` command against a real server: in-process `main()`, and the console script.

`main()` runs its own event loop, so in-process runs go through a thread while
the server keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Server
from test_client import make_events

from mailevents.cli import main
from mailevents.v1 import message_event_pb2 as pb

SCRIPT = Path(sys.executable).with_name("mailevents")


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]


Invoke = Callable[..., Awaitable[Run]]


@pytest.fixture
def mailevents(capsys: pytest.CaptureFixture[str]) -> Invoke:
    """Run `main(argv)` in a thread; returns its exit code and what it printed."""

    async def run(*argv: str) -> Run:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def connect(server: Server, key: str | None = None) -> list[str]:
    return ["--address", server.address, "--api-key", key or server.api_key]


@pytest.fixture
async def loaded(server: Server) -> list[pb.MessageEvent]:
    events = make_events(25)
    await server.ingest(events)
    return events


# -- search ----------------------------------------------------------------------


async def test_search_prints_json_lines(server: Server, loaded: object, mailevents: Invoke) -> None:
    run = await mailevents("search", *connect(server), "--type", "bounce,delay", "--order", "asc")
    assert run.code == 0, run.err
    rows = run.json_lines()
    assert [r["event_id"] for r in rows][:4] == ["ev-0", "ev-2", "ev-3", "ev-5"]
    assert {r["type"] for r in rows} == {"bounce", "delay"}
    assert all(isinstance(r["id"], int) for r in rows)


async def test_search_shorthands_where_limit_and_fields(
    server: Server,
    loaded: object,
    mailevents: Invoke,
) -> None:
    run = await mailevents(
        "search",
        *connect(server),
        "--campaign", "campaign-0",
        "--where", "reason icontains MAILBOX FULL",
        "--where", "msg_size is_null",
        "--limit", "2",
        "--fields", "event_id,type,campaign_id",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.json_lines() == [
        {"event_id": "ev-24", "type": "bounce", "campaign_id": "campaign-0"},
        {"event_id": "ev-18", "type": "bounce", "campaign_id": "campaign-0"},
    ]


async def test_search_time_window(server: Server, loaded: object, mailevents: Invoke) -> None:
    run = await mailevents(
        "search",
        *connect(server),
        "--since", "2024-05-01T00:10:00Z",
        "--until", "2024-05-01T02:20:00+02:00",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert [r["event_id"] for r in run.json_lines()] == [f"ev-{i}" for i in range(19, 9, -1)]


async def test_search_table(server: Server, loaded: object, mailevents: Invoke) -> None:
    run = await mailevents("search", *connect(server), "--format", "table", "--limit", "3")
    assert run.code == 0, run.err
    header, first, *rest = run.out.splitlines()
    assert header.split() == ["TIMESTAMP", "TYPE", "RECIPIENT", "CAMPAIGN", "DETAIL"]
    assert first.split() == [
        "2024-05-01T00:24:00Z",
        "bounce",
        "user24@example.com",
        "campaign-0",
        "550",
        "mailbox",
        "full",
    ]
    assert first.index("bounce") == header.index("TYPE")
    assert first.index("campaign-0") == header.index("CAMPAIGN")
    assert len(rest) == 2
    assert run.err.startswith("3 events in ")


# -- errors and usage ---------------------------------------------------------------


async def test_server_errors_show_status_and_field_violations(
    server: Server,
    mailevents: Invoke,
) -> None:
    run = await mailevents("search", *connect(server), "--where", "nosuch exact 1")
    assert run.code == 1
    lines = run.err.splitlines()
    assert lines[0].startswith("error: INVALID_ARGUMENT: ")
    assert lines[1].startswith("  query.conditions[0].field: unknown field 'nosuch'")
    assert "Traceback" not in run.err
    assert run.out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--where", "reason like x"], "unknown operator 'like'"),
        (["search", "--since", "yesterday"], "invalid time 'yesterday'"),
        (["search", "--since", "1h", "--until", "2h"], "must be before"),
        (["count", "--by", "week"], "unknown group_by 'week'"),
        (["get"], "pass an ID or --event-id"),
        (["get", "1", "--event-id", "x"], "pass an ID or --event-id"),
        (["ingest", "/nonexistent/events.jsonl"], "No such file"),
        (["search", "--limit", "-1"], "must not be negative"),
        (["search", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "usage: mailevents"),
    ],
)
async def test_usage_errors_exit_2(
    server: Server,
    mailevents: Invoke,
    argv: list[str],
    message: str,
) -> None:
    run = await mailevents(*argv[:1], *(connect(server) if argv else []), *argv[1:])
    assert run.code == 2
    assert message in run.err
    assert "Traceback" not in run.err


async def test_bad_or_missing_key(
    server: Server,
    mailevents: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = await mailevents("count", *connect(server, key="wrong"))
    assert run.code == 1
    assert run.err.startswith("error: UNAUTHENTICATED: ")
    monkeypatch.delenv("MAILEVENTS_API_KEY", raising=False)
    run = await mailevents("count", "--address", server.address)
    assert run.code == 1
    assert "hint: pass --api-key or set MAILEVENTS_API_KEY" in run.err


async def test_connection_from_the_environment(
    server: Server,
    loaded: object,
    mailevents: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAILEVENTS_ADDRESS", server.address)
    monkeypatch.setenv("MAILEVENTS_API_KEY", server.api_key)
    run = await mailevents("count", "--format", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out) == {"total": 25, "groups": {}}


# -- get and count --------------------------------------------------------------------


async def test_get(server: Server, mailevents: Invoke) -> None:
    stored = await server.ingest(make_events(3))
    run = await mailevents("get", *connect(server), "--event-id", "ev-2")
    assert run.code == 0, run.err
    event = json.loads(run.out)
    assert event["event_id"] == "ev-2"
    assert event["type"] == "delay"
    assert event["timestamp"] == "2024-05-01T00:02:00Z"
    run = await mailevents("get", *connect(server), str(stored.results[2].id), "--fields", "id")
    assert json.loads(run.out) == {"id": stored.results[2].id}
    run = await mailevents("get", *connect(server), "--event-id", "nope")
    assert run.code == 1
    assert run.err.startswith("error: NOT_FOUND: ")


async def test_connection_flags_before_the_command(
    server: Server, loaded: object, mailevents: Invoke
) -> None:
    """`mailevents --address A --api-key K count` works as well as after the
    command; given in both places, the one after the command wins."""
    before = await mailevents(*connect(server), "count", "--format", "json")
    assert before.code == 0, before.err
    assert json.loads(before.out)["total"] == 25
    both = await mailevents(
        "--address", "127.0.0.1:1", "--api-key", "wrong",
        "count", *connect(server), "--format", "json",
    )  # fmt: skip
    assert both.code == 0, both.err
    assert json.loads(both.out)["total"] == 25
    wrong = await mailevents("--api-key", "wrong", "count", "--address", server.address)
    assert wrong.code == 1
    assert "UNAUTHENTICATED" in wrong.err


async def test_count(server: Server, loaded: object, mailevents: Invoke) -> None:
    run = await mailevents(
        "count", *connect(server), "--by", "type,domain", "--by", "day", "--format", "json"
    )
    assert run.code == 0, run.err
    assert json.loads(run.out) == {
        "total": 25,
        "groups": {
            "type": {"bounce": 9, "delivery": 8, "delay": 8},
            "domain": {"example.com": 25},
            "day": {"2024-05-01": 25},
        },
    }
    run = await mailevents(
        "count", *connect(server), "--type", "bounce", "--by", "type", "--format", "table"
    )
    assert run.out.splitlines() == ["total  9", "", "by type", "  bounce  9"]


# -- ingest ----------------------------------------------------------------------------


def sparkpost(event_id: str | None, minute: int, kind: str = "delivery") -> dict[str, object]:
    event: dict[str, object] = {
        "type": kind,
        "timestamp": f"2024-06-01T10:{minute:02d}:00Z",
        "rcpt_to": f"{event_id}@example.org",
        "campaign_id": "import",
    }
    if event_id is not None:
        event["event_id"] = event_id
    return event


def ingest_input() -> bytes:
    """Six good events on five lines, and four lines that cannot be stored."""
    lines = [
        json.dumps(sparkpost("a", 1)),
        json.dumps(sparkpost("b", 2, "bounce")),
        "",
        json.dumps({"msys": {"message_event": sparkpost("c", 3)}}),
        "{not json",
        json.dumps([sparkpost("d", 4), {"msys": {"track_event": sparkpost("e", 5, "open")}}]),
        "42",
        json.dumps(sparkpost(None, 6)),  # parses, but the server needs an event_id
        json.dumps(sparkpost("f", 7)),
    ]
    return "\n".join(lines).encode() + b"\n\xff\xfe\n"


async def test_ingest_file(server: Server, tmp_path: Path, mailevents: Invoke) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(ingest_input())
    run = await mailevents("ingest", *connect(server), str(source), "--batch-size", "2")
    assert run.code == 3, run.err  # finished, with rejected lines
    rejects_path = tmp_path / "events.jsonl.rejected.jsonl"
    assert run.out == f"6 stored, 0 duplicates, 4 rejected (see {rejects_path})\n"
    records = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    by_line = {r["line"]: r for r in records}
    assert sorted(by_line) == [5, 7, 8, 10]
    assert by_line[5]["reason"].startswith("invalid JSON: ")
    assert by_line[5]["text"] == "{not json"
    assert by_line[7]["reason"] == "a SparkPost event must be a JSON object, got int"
    assert by_line[8]["event"] == sparkpost(None, 6)  # refused by the server, with its reason
    assert by_line[8]["reason"]
    assert by_line[10]["reason"].startswith("not UTF-8: ")

    again = await mailevents("ingest", *connect(server), str(source))
    assert again.out.startswith("0 stored, 6 duplicates, 4 rejected")

    search = await mailevents("search", *connect(server), "--campaign", "import", "--order", "asc")
    assert [r["event_id"] for r in search.json_lines()] == ["a", "b", "c", "d", "e", "f"]
    assert search.json_lines()[4]["type"] == "open"


async def test_ingest_gzip_with_rejects_path(
    server: Server,
    tmp_path: Path,
    mailevents: Invoke,
) -> None:
    source = tmp_path / "events.data"  # gzip is recognised by content, not by name
    source.write_bytes(gzip.compress(ingest_input()))
    rejects = tmp_path / "bad.jsonl"
    run = await mailevents("ingest", *connect(server), str(source), "--rejects", str(rejects))
    assert run.code == 3, run.err
    assert run.out.startswith("6 stored, 0 duplicates, 4 rejected")
    assert len(rejects.read_text().splitlines()) == 4


async def test_clean_ingest_leaves_no_rejects_file(
    server: Server,
    tmp_path: Path,
    mailevents: Invoke,
) -> None:
    source = tmp_path / "clean.jsonl.gz"
    source.write_bytes(gzip.compress(json.dumps(sparkpost("x", 1)).encode()))
    run = await mailevents("ingest", *connect(server), str(source))
    assert run.code == 0, run.err
    assert run.out == "1 stored, 0 duplicates, 0 rejected\n"
    assert not (tmp_path / "clean.jsonl.gz.rejected.jsonl").exists()


# -- the console script ------------------------------------------------------------------


async def script(
    *argv: str, stdin: bytes = b"", cwd: Path | None = None, env: dict[str, str] | None = None
) -> Run:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_script_ingests_stdin(server: Server, tmp_path: Path) -> None:
    run = await script("ingest", *connect(server), "-", stdin=ingest_input(), cwd=tmp_path)
    assert run.code == 3, run.err
    assert run.out.startswith("6 stored, 0 duplicates, 4 rejected (see stdin.rejected.jsonl)")
    assert len((tmp_path / "stdin.rejected.jsonl").read_text().splitlines()) == 4


def first_line_then_hang_up(*argv: str) -> tuple[bytes, int, bytes]:
    """Read one line of the script's output and close the pipe, as `| head -1` does."""
    with subprocess.Popen([SCRIPT, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()
        child.stdout.close()
        return first, child.wait(timeout=60), child.stderr.read()


async def test_script_stops_quietly_when_the_reader_goes_away(server: Server) -> None:
    await server.ingest(make_events(5000, prefix="many"))
    first, code, err = await asyncio.to_thread(
        first_line_then_hang_up, "search", *connect(server), "--batch-size", "100"
    )
    assert json.loads(first)["event_id"] == "many-4999"
    assert code == 141
    assert err == b""


async def test_script_interrupted_exits_130_quietly() -> None:
    # A listener that never speaks HTTP/2: the search hangs until interrupted.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "search",
            "--address",
            f"127.0.0.1:{silent.getsockname()[1]}",
            "--api-key",
            "k",
            "--timeout",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # past start-up, into the call
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), timeout=10)
    assert process.returncode == 130
    assert err == b""


async def test_server_commands_are_handed_to_the_server(
    tmp_path: Path,
    mailevents: Invoke,
) -> None:
    database = str(tmp_path / "keys.db")
    run = await mailevents("keys", "create", "--database", database, "--tenant", "acme")
    assert run.code == 0, run.err
    assert run.out.strip().splitlines()[-1]


async def test_server_commands_without_the_server_package(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['mailevents_server'] = None; "
        "from mailevents.cli import main; sys.exit(main(['serve']))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE, env=dict(os.environ)
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert b"needs the mailevents server package" in err
