"""The `mailevents` command: search, get, count and ingest against a server; and the server itself.

Client subcommands talk gRPC through `MailEventsClient`. Server subcommands
(`serve`, `keys`, `demo`, `rest`) belong to the server package and are handed
to it untouched, so that one command covers both halves while the client
still installs and runs without the server.

Exit codes: 0 done, 1 the server refused or failed (the status and each field
violation on stderr), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import ExitStack, aclosing, nullcontext
from pathlib import Path
from typing import Any

import grpc

from mailevents import __version__, _bulk, _ingest, _output
from mailevents.client import DEFAULT_ADDRESS, MailEventsClient, RetryNotice, RetryPolicy
from mailevents.errors import MailEventsError
from mailevents.query import conditions_in, parse_where, query
from mailevents.v1 import message_event_service_pb2 as pb

__all__ = ["main"]

SERVER_COMMANDS = {
    "serve": "run the gRPC service (and the REST shim)",
    "keys": "create, list and revoke API keys",
    "demo": "load demo events into a database",
    "rest": "run the REST shim against a remote service",
}

# (flag, MessageEvent field, help) of the filter shorthands; each is repeatable.
_FILTER_FLAGS = (
    ("--campaign", "campaign_id", "campaign id"),
    ("--template", "template_id", "template id"),
    ("--recipient", "recipient", "recipient address (exact)"),
    ("--domain", "recipient_domain", "recipient domain"),
    ("--message-id", "message_id", "message id"),
    ("--transmission-id", "transmission_id", "transmission id"),
)

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """Arguments that parse but do not make sense; exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SERVER_COMMANDS:
        return _run_server_command(args_list)
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exit_:  # --help, or argparse's own usage error
        return _exit_code(exit_)
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return asyncio.run(command(args))
    except UsageError as exc:
        print(f"mailevents {args.subcommand}: error: {exc}", file=sys.stderr)
        return 2
    except MailEventsError as exc:
        _print_error(exc, args)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`). Point stdout at nothing so that
        # the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _print_error(exc: MailEventsError, args: argparse.Namespace) -> None:
    # Violations get a line each; where the message repeats them, the headline
    # is the machine reason in words ("invalid query") instead.
    message = exc.message
    if exc.field_violations:
        field, description = exc.field_violations[0]
        if message.startswith(f"{field}: {description}"):
            message = exc.reason.replace("_", " ").lower() or "invalid request"
    print(f"error: {exc.code.name}: {message}", file=sys.stderr)
    for field, description in exc.field_violations:
        print(f"  {field}: {description}", file=sys.stderr)
    if exc.code == grpc.StatusCode.UNAUTHENTICATED and not args.api_key:
        print("hint: pass --api-key or set MAILEVENTS_API_KEY", file=sys.stderr)
    elif exc.code == grpc.StatusCode.UNAVAILABLE:
        print(f"hint: is a mailevents server running at {args.address}?", file=sys.stderr)


def _run_server_command(argv: list[str]) -> int:
    """Hand the whole command line to the server package, if it is installed.

    Imported by name rather than statically, because the client must work
    (and type-check) where the server package is absent.
    """
    try:
        commands = importlib.import_module("mailevents_server.commands")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "mailevents_server":
            print(
                f"error: `mailevents {argv[0]}` needs the mailevents server package, "
                "which is not installed here (install the full `mailevents` distribution)",
                file=sys.stderr,
            )
        else:
            print(
                f"error: the mailevents server needs {exc.name!r}, which is not installed",
                file=sys.stderr,
            )
        return 2
    server_main: Callable[[list[str]], int] = commands.main
    try:
        return server_main(argv)
    except SystemExit as exit_:  # its argparse: --help, or a usage error
        return _exit_code(exit_)
    except KeyboardInterrupt:
        return 130


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    print(exit_.code, file=sys.stderr)  # sys.exit("message") prints it and exits 1
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailevents",
        description="Query and load email message events on a mailevents server.",
        epilog="Exit codes: 0 ok, 1 server error, 2 usage error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"mailevents {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    connection = _connection_options()
    filters = _filter_options()

    search = sub.add_parser(
        "search",
        parents=[connection, filters],
        help="stream matching events",
        description="Stream every matching event, newest first unless --order asc.",
    )
    search.add_argument("--order", choices=("asc", "desc"), default="desc")
    search.add_argument(
        "--limit",
        type=_non_negative,
        default=0,
        metavar="N",
        help="stop after N events (default: all)",
    )
    search.add_argument("--fields", metavar="A,B,C", help="return only these fields")
    search.add_argument(
        "--format",
        choices=("table", "jsonl"),
        help="table on a terminal, else jsonl: one JSON object per event, "
        'proto field names, "type" as its lowercase name',
    )
    search.add_argument(
        "--batch-size",
        type=_non_negative,
        default=1000,
        metavar="N",
        help="events per streamed message (default: 1000)",
    )
    search.set_defaults(command=_search, subcommand="search")

    get = sub.add_parser(
        "get",
        parents=[connection],
        help="print one event as JSON",
        description="Print one event, by store id or by --event-id, as JSON.",
    )
    get.add_argument("id", nargs="?", type=int, help="the store-assigned id")
    get.add_argument("--event-id", help="the producer's event id")
    get.add_argument("--fields", metavar="A,B,C", help="return only these fields")
    get.set_defaults(command=_get, subcommand="get")

    count = sub.add_parser(
        "count",
        parents=[connection, filters],
        help="count matching events, grouped",
        description="Count matching events, in total and grouped by --by dimensions.",
    )
    count.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="DIMS",
        help="comma-separated: type, campaign, domain, hour, day",
    )
    count.add_argument(
        "--max-buckets",
        type=_non_negative,
        default=0,
        metavar="N",
        help="buckets per group (default: the server's, 1000)",
    )
    count.add_argument("--format", choices=("table", "json"), help="table on a terminal, else json")
    count.set_defaults(command=_count, subcommand="count")

    ingest = sub.add_parser(
        "ingest",
        parents=[connection],
        help="load SparkPost events from JSON lines",
        description="Load JSON lines (gzipped or not; - for stdin), each a SparkPost event, "
        "a webhook's msys wrapper, or an array of them. Lines that cannot be stored are "
        "written with their line number and reason to the rejects file.",
    )
    ingest.add_argument("file", metavar="FILE", help="JSON lines file, .gz too, - for stdin")
    ingest.add_argument(
        "--rejects",
        metavar="PATH",
        help="where to write rejected lines (default: FILE.rejected.jsonl)",
    )
    ingest.add_argument(
        "--batch-size",
        type=_batch_size,
        default=1000,
        metavar="N",
        help="events per call (default: 1000)",
    )
    ingest.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="where progress is saved after every acknowledged batch, so that running the "
        "same command again resumes there (default: FILE.checkpoint.json; none for stdin "
        "unless given); removed when the import completes",
    )
    ingest.add_argument(
        "--restart",
        action="store_true",
        help="ignore an existing checkpoint and start from the beginning",
    )
    ingest.set_defaults(command=_ingest_command, subcommand="ingest")

    tail = sub.add_parser(
        "tail",
        parents=[connection, filters],
        help="print matching events as they are committed",
        description="Follow the store: print each new matching event the moment it is "
        "committed, in commit order, until interrupted. With --resume FILE the position "
        "is kept in FILE, and running the command again (also after a server restart) "
        "continues with exactly the events committed since.",
    )
    tail.add_argument(
        "--resume",
        metavar="FILE",
        help="continue from the position saved in FILE (if it exists) and keep saving it there",
    )
    tail.add_argument(
        "--history",
        action="store_true",
        help="first print the matching events already stored, oldest first, then follow",
    )
    tail.add_argument("--fields", metavar="A,B,C", help="print only these fields")
    tail.add_argument(
        "--format",
        choices=("table", "jsonl"),
        help="table on a terminal, else jsonl (as search prints)",
    )
    tail.add_argument(
        "--limit",
        type=_non_negative,
        default=0,
        metavar="N",
        help="stop after N events (default: never)",
    )
    tail.add_argument(
        "--heartbeat",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how often the server confirms an idle stream (default: the server's, 5)",
    )
    tail.add_argument(
        "--watermarks",
        action="store_true",
        help="print each message's watermark (how complete the output is) to stderr",
    )
    tail.set_defaults(command=_tail, subcommand="tail")

    for name, help_text in SERVER_COMMANDS.items():
        # Listed for --help only: main() hands these to the server before parsing.
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _connection_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    group.add_argument(
        "--address",
        default=os.environ.get("MAILEVENTS_ADDRESS", DEFAULT_ADDRESS),
        help="server host:port (env MAILEVENTS_ADDRESS; default %(default)s)",
    )
    group.add_argument(
        "--api-key",
        default=os.environ.get("MAILEVENTS_API_KEY"),
        help="API key (env MAILEVENTS_API_KEY)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS")
    group.add_argument("--ca-cert", metavar="FILE", help="trust this CA (PEM); implies --tls")
    group.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="per call, and per batch of a search; 0 waits forever (default: %(default)g)",
    )
    group.add_argument(
        "--retry-for",
        type=float,
        # A string: argparse converts it like a flag's value, and reports a bad one.
        default=os.environ.get("MAILEVENTS_RETRY_SECONDS", "30"),
        metavar="SECONDS",
        help="keep sending again for this long while the server's store is unavailable "
        "(env MAILEVENTS_RETRY_SECONDS; 0: never; default: %(default)s)",
    )
    return options


def _filter_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("filters (ANDed; repeat a flag to match any of its values)")
    group.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="TYPE[,TYPE...]",
        help="event type, e.g. bounce,delay",
    )
    for flag, _, help_text in _FILTER_FLAGS:
        group.add_argument(flag, action="append", default=[], help=help_text)
    group.add_argument("--since", metavar="WHEN", help="from this time on: 2h, 7d, or RFC 3339")
    group.add_argument("--until", metavar="WHEN", help="before this time: 2h, 7d, or RFC 3339")
    group.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="'FIELD[:PART] OP [VALUE]'",
        help="any condition, e.g. 'reason icontains mailbox', 'bulk_email_id in 1,2', "
        "'recipient is_null', 'timestamp:hour gte 9'",
    )
    group.add_argument(
        "--tz",
        default="",
        metavar="ZONE",
        help="IANA time zone for date parts and hour/day buckets (default: UTC)",
    )
    return options


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _batch_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be 1..10000: {value}")
    return value


def _client(
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


def _query(args: argparse.Namespace, order: str = "desc") -> pb.EventQuery:
    """The EventQuery the filter flags describe."""
    try:
        types = [t.strip() for value in args.type for t in value.split(",")]
        shorthands = [conditions_in("type", types)]
        shorthands += [
            conditions_in(field, getattr(args, _dest(flag))) for flag, field, _ in _FILTER_FLAGS
        ]
        conditions = [c for c in shorthands if c is not None]
        conditions += [parse_where(text, time_zone=args.tz) for text in args.where]
        return query(*conditions, since=args.since, until=args.until, order=order)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # a stream's batches should show as they arrive, even in a pipe


async def _search(args: argparse.Namespace) -> int:
    event_query = _query(args, args.order)
    table = (args.format or ("table" if sys.stdout.isatty() else "jsonl")) == "table"
    async with _client(args) as client:
        batches = client.search_batches(
            event_query,
            read_mask=args.fields,
            batch_size=args.batch_size,
            max_events=args.limit,
        )
        if table:
            _write(_output.table_header() + "\n")
        async with aclosing(batches):
            async for response in batches:
                if response.events and table:
                    _write(_output.table_rows(response.events))
                elif response.events:
                    _write("".join(_json_line(e) for e in response.events))
                if table and response.HasField("stats"):
                    stats = response.stats
                    elapsed = stats.elapsed.ToTimedelta().total_seconds()
                    print(f"{stats.events} events in {elapsed:.2f}s", file=sys.stderr)
    return 0


def _json_line(event: Any) -> str:
    return json.dumps(_output.event_to_dict(event), ensure_ascii=False) + "\n"


async def _get(args: argparse.Namespace) -> int:
    if (args.id is None) == (args.event_id is None):
        raise UsageError("pass an ID or --event-id, not both or neither")
    async with _client(args) as client:
        event = await client.get(args.id, event_id=args.event_id, read_mask=args.fields)
    _write(json.dumps(_output.event_to_dict(event), ensure_ascii=False, indent=2) + "\n")
    return 0


async def _count(args: argparse.Namespace) -> int:
    event_query = _query(args)
    group_by = [g.strip() for value in args.by for g in value.split(",") if g.strip()]
    table = (args.format or ("table" if sys.stdout.isatty() else "json")) == "table"
    async with _client(args) as client:
        try:
            response = await client.count(
                event_query, group_by, args.tz, max_buckets=args.max_buckets
            )
        except ValueError as exc:  # an unknown --by name
            raise UsageError(f"--by: {exc}") from None
    if table:
        _write(_output.count_table(response))
    else:
        _write(json.dumps(_output.count_to_dict(response), ensure_ascii=False) + "\n")
    return 0


async def _ingest_command(args: argparse.Namespace) -> int:
    rejects_path = Path(args.rejects) if args.rejects else _ingest.default_rejects_path(args.file)
    checkpoint_path = (
        Path(args.checkpoint) if args.checkpoint else _bulk.default_checkpoint_path(args.file)
    )
    try:
        head = "" if args.file == "-" else _bulk.input_head(args.file)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror}") from None
    saved = None
    if checkpoint_path is not None and not args.restart:
        saved = _bulk.Checkpoint.load(checkpoint_path)
        if saved is not None and saved.head != head:
            print(f"{checkpoint_path} is for another input: starting over", file=sys.stderr)
            saved = None
    checkpoint = saved or _bulk.Checkpoint(head=head)
    summary = _ingest.IngestSummary(checkpoint.stored, checkpoint.duplicates, checkpoint.rejected)
    with ExitStack() as stack:
        try:
            source = _ingest.open_input(args.file, stack)
        except OSError as exc:
            raise UsageError(f"{args.file}: {exc.strerror}") from None
        if saved is not None:
            _bulk.skip(source, saved.offset)
            print(f"resuming after line {saved.line}: {summary} so far", file=sys.stderr)
        rejects = _bulk.Rejects(rejects_path, saved.rejects_size if saved else None)
        stack.callback(rejects.close)
        progress = stack.enter_context(_progress_bar(_bulk.input_size(args.file)))
        if progress is not None and progress.total:
            progress.update(_bulk.raw_position(source) or 0)
        batches = _bulk.read_batches(source, checkpoint.offset, checkpoint.line, args.batch_size)
        try:
            async with _client(args, _bulk.retry_reporter(progress, summary)) as client:
                await _bulk.run_import(
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
    return 0


async def _tail(args: argparse.Namespace) -> int:
    # Ascending, so that the history of --history comes oldest first, and so
    # that a token saved with or without --history is bound to the same query.
    event_query = _query(args, "asc")
    table = (args.format or ("table" if sys.stdout.isatty() else "jsonl")) == "table"
    token_file = Path(args.resume) if args.resume else None
    token = ""
    if token_file is not None and token_file.exists():
        token = token_file.read_text(encoding="utf-8").strip()
    async with _client(args) as client:
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
            _write(_output.table_header() + "\n")
        async with aclosing(stream):
            async for response in stream:
                if response.events:
                    if table:
                        _write(_output.table_rows(response.events))
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
