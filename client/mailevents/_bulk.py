"""`mailevents ingest`, resumable: JSON lines streamed in batches, a checkpoint after each ack.

The import goes through `IngestMessageEventsStream`: batches are sent while
earlier ones are still being committed, and each is acknowledged once it is
durable. After every acknowledgement a checkpoint file records how far the
input is done: the byte offset of the end of the last line whose events are
all acknowledged, the counts so far, and how long the rejects file was then.
A run that stops for any reason (Ctrl-C, a crash, the server going away)
is continued by running the same command again: it skips what the checkpoint
covers, cuts the rejects file back to the checkpoint's length and goes on.
Whatever was sent after the checkpoint is sent again; the server stores each
event_id once, so nothing is doubled (such events count as duplicates).

Batches end at line ends, so that a checkpoint never falls inside a line;
only a line with more events than one request takes (10,000) is split.
Every reject, whether found here (not UTF-8, not JSON, not an event) or by
the server, is written when its batch is acknowledged, so the rejects file
and the checkpoint always agree.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from mailevents._ingest import IngestSummary, open_input
from mailevents.client import MAX_INGEST_BATCH, MailEventsClient, RetryNotice
from mailevents.sparkpost import event_from_sparkpost
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_pb2 import MessageEvent

_CHECKPOINT_VERSION = 1
#: The head of the input a checkpoint recognises it by.
_HEAD_BYTES = 64 * 1024


def default_checkpoint_path(source: str) -> Path | None:
    """FILE.checkpoint.json next to the input; none for stdin (pass --checkpoint)."""
    return None if source == "-" else Path(f"{source}.checkpoint.json")


@dataclass
class Checkpoint:
    """How far an import is done: everything before `offset` is stored or rejected."""

    head: str  # sha256 of the input's first 64 KiB (decompressed): the same input?
    offset: int = 0  # bytes of input (decompressed) done
    line: int = 0  # lines done
    rejects_size: int = 0  # length of the rejects file at that point
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    version: int = _CHECKPOINT_VERSION

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            checkpoint = cls(**data)
        except (OSError, ValueError, TypeError):
            return None
        return checkpoint if checkpoint.version == _CHECKPOINT_VERSION else None

    def save(self, path: Path) -> None:
        """Atomically: a crash leaves the old checkpoint or the new one, never half of one."""
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(asdict(self), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)


class Rejects:
    """The rejects file (created on the first reject), kept in step with the checkpoint."""

    def __init__(self, path: Path, keep: int | None) -> None:
        """`keep`: on a resumed run, the length to cut an existing file back to."""
        self.path = path
        self._file: IO[str] | None = None
        if keep is not None and path.exists():
            self._file = path.open("r+", encoding="utf-8")
            self._file.truncate(keep)
            self._file.seek(keep)

    def write(self, line: int, reason: str, source: dict[str, Any]) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        record = {"line": line, "reason": reason, **source}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def size(self) -> int:
        """The file's length with everything written so far flushed to it."""
        if self._file is None:
            return 0
        self._file.flush()
        return self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass
class Batch:
    """Events of whole lines (save one oversized line), with what to record on their ack."""

    events: list[MessageEvent] = field(default_factory=list)
    origins: list[tuple[int, Any]] = field(default_factory=list)  # (line, JSON value)
    #: Rejects found before sending: (line, reason, source).
    rejects: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    end_offset: int = 0
    end_line: int = 0


def read_batches(
    source: io.BufferedIOBase, offset: int, line: int, batch_size: int
) -> Iterator[Batch]:
    """Batches of about `batch_size` events from `source`, which is positioned at `offset`.

    Every line ends up in a batch, even one with no events (only rejects,
    or blank), so that the checkpoint moves past it.
    """
    batch = Batch(end_offset=offset, end_line=line)
    pending = False  # does `batch` hold a line not yet sent?
    for raw in source:
        line += 1
        offset += len(raw)
        events, origins, rejects = _parse_line(line, raw)
        if batch.events and len(batch.events) + len(events) > MAX_INGEST_BATCH:
            yield batch
            batch = Batch(end_offset=batch.end_offset, end_line=batch.end_line)
        while len(events) > MAX_INGEST_BATCH:  # one line larger than a request
            batch.events += events[:MAX_INGEST_BATCH]
            batch.origins += origins[:MAX_INGEST_BATCH]
            yield batch
            batch = Batch(end_offset=batch.end_offset, end_line=batch.end_line)
            events, origins = events[MAX_INGEST_BATCH:], origins[MAX_INGEST_BATCH:]
        batch.events += events
        batch.origins += origins
        batch.rejects += rejects
        batch.end_offset, batch.end_line = offset, line
        pending = True
        if len(batch.events) >= batch_size:
            yield batch
            batch = Batch(end_offset=offset, end_line=line)
            pending = False
    if pending:
        yield batch


def _parse_line(
    number: int, raw: bytes
) -> tuple[list[MessageEvent], list[tuple[int, Any]], list[tuple[int, str, dict[str, Any]]]]:
    """A line's events (and where each came from), and its rejects."""
    if not raw.strip():
        return [], [], []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8: {exc.reason} at byte {exc.start}"
        return [], [], [(number, reason, {"text": raw.decode("utf-8", "replace").rstrip("\r\n")})]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
        return [], [], [(number, reason, {"text": text.rstrip("\r\n")})]
    events: list[MessageEvent] = []
    origins: list[tuple[int, Any]] = []
    rejects: list[tuple[int, str, dict[str, Any]]] = []
    for item in value if isinstance(value, list) else [value]:
        try:
            events.append(event_from_sparkpost(item))
        except ValueError as exc:
            rejects.append((number, str(exc), {"event": item}))
            continue
        origins.append((number, item))
    return events, origins, rejects


def input_head(path: str) -> str:
    """The fingerprint a checkpoint keeps of its input."""
    with ExitStack() as stack:
        head = open_input(path, stack).read(_HEAD_BYTES)
    return hashlib.sha256(head).hexdigest()


def skip(source: io.BufferedIOBase, offset: int) -> None:
    """Position `source` at `offset`: a seek where it can, reading past otherwise (pipes)."""
    try:
        source.seek(offset)
        return
    except (OSError, ValueError):
        pass
    remaining = offset
    while remaining > 0:
        chunk = source.read(min(remaining, 1 << 20))
        if not chunk:
            break
        remaining -= len(chunk)


def raw_position(source: io.BufferedIOBase) -> int | None:
    """Where in the file (compressed, for gzip) reading has got to; None for a pipe."""
    raw: Any = source.fileobj if isinstance(source, gzip.GzipFile) else source
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(raw.tell())
    return None


async def run_import(
    client: MailEventsClient,
    source: io.BufferedIOBase,
    batches: Iterator[Batch],
    rejects: Rejects,
    summary: IngestSummary,
    checkpoint: Checkpoint,
    checkpoint_path: Path | None,
    *,
    progress: Any = None,
) -> None:
    """Stream the batches; on each acknowledgement record rejects, counts and the checkpoint."""
    in_flight: deque[Batch] = deque()
    last_position = raw_position(source) or 0

    def events_of_batches() -> Iterator[list[MessageEvent]]:
        for batch in batches:
            in_flight.append(batch)
            yield batch.events

    stream = client.ingest_stream(events_of_batches(), window=8)
    async with contextlib.aclosing(stream) as acknowledgements:
        async for ack in acknowledgements:
            batch = in_flight.popleft()
            _record(ack, batch, rejects, summary)
            checkpoint.offset, checkpoint.line = batch.end_offset, batch.end_line
            checkpoint.stored, checkpoint.duplicates = summary.stored, summary.duplicates
            checkpoint.rejected = summary.rejected
            checkpoint.rejects_size = rejects.size()
            if checkpoint_path is not None:
                checkpoint.save(checkpoint_path)
            if progress is not None:
                position = raw_position(source)
                if position is not None and progress.total:
                    progress.update(max(0, position - last_position))
                    last_position = position
                else:
                    progress.update(len(batch.events))
                progress.set_postfix_str(str(summary), refresh=False)


def _record(
    ack: pb.IngestMessageEventsStreamResponse,
    batch: Batch,
    rejects: Rejects,
    summary: IngestSummary,
) -> None:
    found = list(batch.rejects)
    for result in ack.results:
        if result.status == pb.INGEST_STATUS_REJECTED:
            number, value = batch.origins[result.index]
            found.append((number, result.reason, {"event": value}))
    found.sort(key=lambda reject: reject[0])
    for number, reason, source in found:
        rejects.write(number, reason, source)
    summary.stored += ack.stored
    summary.duplicates += ack.duplicates
    summary.rejected += len(found)


def retry_reporter(progress: Any, summary: IngestSummary) -> Callable[[RetryNotice], None]:
    """Shows each wait for the server ("store unavailable, retrying in 2 s"): in the
    progress line when there is one on a terminal, else as a line on stderr."""

    def report(notice: RetryNotice) -> None:
        if progress is not None and not getattr(progress, "disable", True):
            progress.set_postfix_str(f"{summary}; {notice}")
        else:
            note(f"{notice} ({summary} so far)")

    return report


def input_size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def note(text: str) -> None:
    print(text, file=sys.stderr)
