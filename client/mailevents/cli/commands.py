"""What each client subcommand does: search, get, count, ingest and tail over gRPC.

Each takes the parsed arguments and returns the exit code; failures of the
service come out as `MailEventsError`, bad combinations of arguments as
`UsageError`, and `main` (in `__init__`) turns both into messages and codes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from contextlib import ExitStack, aclosing, nullcontext
from pathlib import Path
from typing import Any

from mailevents.cli import bulk, inputs, output
from mailevents.client import MailEventsClient
from mailevents.errors import MailEventsError
from mailevents.query import conditions_in, parse_where, query
from mailevents.retry import RetryNotice, RetryPolicy
from mailevents.v1 import message_event_service_pb2 as pb

# (flag, MessageEvent field, help) of the filter shorthands; each is repeatable.
FILTER_FLAGS = (
    ("--campaign", "campaign_id", "campaign id"),
    ("--template", "template_id", "template id"),
    ("--recipient", "recipient", "recipient address (exact)"),
    ("--domain", "recipient_domain", "recipient domain"),
    ("--message-id", "message_id", "message id"),
    ("--transmission-id", "transmission_id", "transmission id"),
)

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


#: `mailevents ingest`'s exit code when it finished but some lines were rejected.
REJECTED_EXIT = 3


class UsageError(Exception):
    """Arguments that parse but do not make sense; exit code 2."""


def client_for(
    args: argparse.Namespace, on_retry: Callable[[RetryNotice], None] | None = None
) -> MailEventsClient:
    root_certificates = None
    if args.ca_cert:
        try:
            with open(args.ca_cert, "rb") as file:
                root_certificates = file.read()
        except OSError as exc:
            raise UsageError(f"--ca-cert: {exc.strerror}: {args.ca_cert}") from None
    return MailEventsClient(
        args.address,
        args.api_key,
        root_certificates=root_certificates,
        tls=args.tls,
        timeout=args.timeout or None,
        retry=RetryPolicy(total=args.retry_for) if args.retry_for > 0 else None,
        on_retry=on_retry or _note_retry,
    )


def _note_retry(notice: RetryNotice) -> None:
    """Say on stderr that a call is being sent again, and when."""
    print(f"{notice}", file=sys.stderr, flush=True)


def query_of(args: argparse.Namespace, order: str = "desc") -> pb.EventQuery:
    """The EventQuery the filter flags describe."""
    try:
        types = [t.strip() for value in args.type for t in value.split(",")]
        shorthands = [conditions_in("type", types)]
        shorthands += [
            conditions_in(field, getattr(args, dest(flag))) for flag, field, _ in FILTER_FLAGS
        ]
        conditions = [c for c in shorthands if c is not None]
        conditions += [parse_where(text, time_zone=args.tz) for text in args.where]
        return query(*conditions, since=args.since, until=args.until, order=order)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # a stream's batches should show as they arrive, even in a pipe


async def search(args: argparse.Namespace) -> int:
    event_query = query_of(args, args.order)
    table = (args.format or ("table" if sys.stdout.isatty() else "jsonl")) == "table"
    async with client_for(args) as client:
        batches = client.search_batches(
            event_query,
            read_mask=args.fields,
            batch_size=args.batch_size,
            max_events=args.limit,
        )
        if table:
            _write(output.table_header() + "\n")
        async with aclosing(batches):
            async for response in batches:
                if response.events and table:
                    _write(output.table_rows(response.events))
                elif response.events:
                    _write("".join(_json_line(e) for e in response.events))
                if table and response.HasField("stats"):
                    stats = response.stats
                    elapsed = stats.elapsed.ToTimedelta().total_seconds()
                    print(f"{stats.events} events in {elapsed:.2f}s", file=sys.stderr)
    return 0


def _json_line(event: Any) -> str:
    return json.dumps(output.event_to_dict(event), ensure_ascii=False) + "\n"


async def get(args: argparse.Namespace) -> int:
    if (args.id is None) == (args.event_id is None):
        raise UsageError("pass an ID or --event-id, not both or neither")
    async with client_for(args) as client:
        event = await client.get(args.id, event_id=args.event_id, read_mask=args.fields)
    _write(json.dumps(output.event_to_dict(event), ensure_ascii=False, indent=2) + "\n")
    return 0


async def count(args: argparse.Namespace) -> int:
    event_query = query_of(args)
    group_by = [g.strip() for value in args.by for g in value.split(",") if g.strip()]
    table = (args.format or ("table" if sys.stdout.isatty() else "json")) == "table"
    async with client_for(args) as client:
        try:
            response = await client.count(
                event_query, group_by, args.tz, max_buckets=args.max_buckets
            )
        except ValueError as exc:  # an unknown --by name
            raise UsageError(f"--by: {exc}") from None
    if table:
        _write(output.count_table(response))
    else:
        _write(json.dumps(output.count_to_dict(response), ensure_ascii=False) + "\n")
    return 0


async def ingest(args: argparse.Namespace) -> int:
    rejects_path = Path(args.rejects) if args.rejects else inputs.default_rejects_path(args.file)
    checkpoint_path = (
        Path(args.checkpoint) if args.checkpoint else bulk.default_checkpoint_path(args.file)
    )
    try:
        head = "" if args.file == "-" else bulk.input_head(args.file)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror}") from None
    saved = None
    if checkpoint_path is not None and not args.restart:
        saved = bulk.Checkpoint.load(checkpoint_path)
        if saved is not None and saved.head != head:
            print(f"{checkpoint_path} is for another input: starting over", file=sys.stderr)
            saved = None
    checkpoint = saved or bulk.Checkpoint(head=head)
    summary = inputs.IngestSummary(checkpoint.stored, checkpoint.duplicates, checkpoint.rejected)
    with ExitStack() as stack:
        try:
            source = inputs.open_input(args.file, stack)
        except OSError as exc:
            raise UsageError(f"{args.file}: {exc.strerror}") from None
        if saved is not None:
            bulk.skip(source, saved.offset)
            print(f"resuming after line {saved.line}: {summary} so far", file=sys.stderr)
        rejects = bulk.Rejects(rejects_path, saved.rejects_size if saved else None)
        stack.callback(rejects.close)
        progress = stack.enter_context(_progress_bar(bulk.input_size(args.file)))
        if progress is not None and progress.total:
            progress.update(bulk.raw_position(source) or 0)
        batches = bulk.read_batches(source, checkpoint.offset, checkpoint.line, args.batch_size)
        try:
            async with client_for(args, bulk.retry_reporter(progress, summary)) as client:
                await bulk.run_import(
                    client,
                    source,
                    batches,
                    rejects,
                    summary,
                    checkpoint,
                    checkpoint_path,
                    progress=progress,
                )
        except (MailEventsError, asyncio.CancelledError):  # Ctrl-C cancels the run
            # Say what is already stored, and how to go on: a rerun resumes at
            # the checkpoint, and re-sent events are only counted as duplicates.
            print(f"stopped after {summary}", file=sys.stderr)
            if checkpoint_path is not None:
                print(f"run the same command again to resume ({checkpoint_path})", file=sys.stderr)
            raise
    if checkpoint_path is not None:
        checkpoint_path.unlink(missing_ok=True)
    line = str(summary)
    if summary.rejected:
        line += f" (see {rejects_path})"
    print(line)
    # Everything else is stored, but a script must not take rejected lines for done.
    return REJECTED_EXIT if summary.rejected else 0


async def tail(args: argparse.Namespace) -> int:
    # Ascending, so that the history of --history comes oldest first, and so
    # that a token saved with or without --history is bound to the same query.
    event_query = query_of(args, "asc")
    table = (args.format or ("table" if sys.stdout.isatty() else "jsonl")) == "table"
    token_file = Path(args.resume) if args.resume else None
    token = ""
    if token_file is not None and token_file.exists():
        token = token_file.read_text(encoding="utf-8").strip()
    async with client_for(args) as client:
        stream: Any
        if args.history:
            stream = client.search_batches(
                event_query,
                read_mask=args.fields,
                max_events=args.limit,
                resume_token=token,
                follow=True,
                heartbeat_interval=args.heartbeat,
            )
        else:
            stream = client.watch_batches(
                event_query,
                read_mask=args.fields,
                resume_token=token,
                heartbeat_interval=args.heartbeat,
                max_events=args.limit,
            )
        if table:
            _write(output.table_header() + "\n")
        async with aclosing(stream):
            async for response in stream:
                if response.events:
                    if table:
                        _write(output.table_rows(response.events))
                    else:
                        _write("".join(_json_line(e) for e in response.events))
                if args.watermarks and response.HasField("watermark"):
                    print(_watermark_text(response.watermark), file=sys.stderr, flush=True)
                # After the events are out: a kill in between prints them again
                # on resume, rather than losing them.
                if token_file is not None and response.resume_token:
                    _save_token(token_file, response.resume_token)
    return 0


def _watermark_text(watermark: Any) -> str:
    text = f"watermark: position {watermark.position}"
    if watermark.HasField("time"):
        text += f", complete up to {watermark.time.ToJsonString()}"
    return text


def _save_token(path: Path, token: str) -> None:
    """Replace the token file atomically: it holds the old token or the new one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(token + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _progress_bar(total: int | None = None) -> Any:
    """A tqdm bar on stderr (hidden when stderr is not a terminal), or nothing without tqdm.

    In bytes of the input when its size is known, in events otherwise.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return nullcontext()
    if total:
        return tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            file=sys.stderr,
            disable=None,
            dynamic_ncols=True,
        )
    return tqdm(unit=" events", file=sys.stderr, disable=None, dynamic_ncols=True)
