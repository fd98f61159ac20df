"""`mailevents ingest`: JSON lines of SparkPost events, sent in batches, bad lines set aside.

One bad line must not stop an import of millions, and must not vanish
either: every line that cannot be stored (not UTF-8, not JSON, not an event,
refused by the server) is written to a rejects file with its line number and
reason, ready to be fixed and fed back. Re-running an import is safe, since
the server stores each `event_id` once.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

from mailevents.client import MailEventsClient
from mailevents.sparkpost import event_from_sparkpost
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_pb2 import MessageEvent

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class IngestSummary:
    """What became of the input's events."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0

    def __str__(self) -> str:
        return f"{self.stored} stored, {self.duplicates} duplicates, {self.rejected} rejected"


@dataclass
class _Pending:
    """Events parsed but not yet sent, with where each came from (for the rejects file)."""

    events: list[MessageEvent] = field(default_factory=list)
    origins: list[tuple[int, Any]] = field(default_factory=list)  # (line number, JSON value)


class RejectsFile:
    """The rejects file, created on the first reject so that a clean run leaves none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, line: int, reason: str, **source: Any) -> None:
        """Record one rejected input; `source` is `event=<JSON value>` or `text=<raw line>`."""
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        record = {"line": line, "reason": reason, **source}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()


def default_rejects_path(source: str) -> Path:
    """FILE.rejected.jsonl next to the input; stdin.rejected.jsonl for `-`."""
    return Path("stdin.rejected.jsonl" if source == "-" else f"{source}.rejected.jsonl")


def open_input(source: str, stack: ExitStack) -> io.BufferedIOBase:
    """The input as bytes, gunzipped when it starts like gzip (whatever its name)."""
    raw = sys.stdin.buffer if source == "-" else stack.enter_context(open(source, "rb"))
    # peek() looks at the first bytes without consuming them, even on a pipe.
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        unzipped = gzip.GzipFile(fileobj=buffered, mode="rb")
        stack.callback(unzipped.close)
        return unzipped
    return buffered


def _lines(source: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield number, line


async def ingest_lines(
    client: MailEventsClient,
    source: Iterable[bytes],
    rejects: RejectsFile,
    summary: IngestSummary,
    *,
    batch_size: int,
    progress: Any = None,
) -> None:
    """Parse, send in batches of `batch_size`, record rejects, and add up `summary`.

    A line may hold one event object (or webhook wrapper), or a JSON array of
    them, as a webhook POST body is. `summary` is the caller's so that it
    still tells what was stored when a call fails halfway.
    """
    pending = _Pending()
    for number, line in _lines(source):
        for value in _parse_line(number, line, rejects, summary):
            try:
                event = event_from_sparkpost(value)
            except ValueError as exc:
                summary.rejected += 1
                rejects.write(number, str(exc), event=value)
                continue
            pending.events.append(event)
            pending.origins.append((number, value))
            if len(pending.events) >= batch_size:
                await _send(client, pending, rejects, summary, progress)
                pending = _Pending()
    if pending.events:
        await _send(client, pending, rejects, summary, progress)


def _parse_line(
    number: int, line: bytes, rejects: RejectsFile, summary: IngestSummary
) -> list[Any]:
    """The JSON values on a line, or none after recording why it is unreadable."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        summary.rejected += 1
        rejects.write(
            number,
            f"not UTF-8: {exc.reason} at byte {exc.start}",
            text=line.decode("utf-8", "replace"),
        )
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        summary.rejected += 1
        rejects.write(
            number, f"invalid JSON: {exc.msg} at column {exc.colno}", text=text.rstrip("\r\n")
        )
        return []
    return value if isinstance(value, list) else [value]


async def _send(
    client: MailEventsClient,
    pending: _Pending,
    rejects: RejectsFile,
    summary: IngestSummary,
    progress: Any,
) -> None:
    response = await client.ingest(pending.events)
    summary.stored += response.stored
    summary.duplicates += response.duplicates
    summary.rejected += response.rejected
    for result in response.results:
        if result.status == pb.INGEST_STATUS_REJECTED:
            number, value = pending.origins[result.index]
            rejects.write(number, result.reason, event=value)
    if progress is not None:
        progress.update(len(pending.events))
        progress.set_postfix_str(str(summary), refresh=False)
