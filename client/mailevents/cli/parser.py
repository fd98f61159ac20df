"""The command line's grammar: subcommands, their flags and the environment they read.

Kept apart from what the commands do (`commands.py`) so that `--help` text
and defaults can be read, and changed, in one place.
"""

from __future__ import annotations

import argparse
import os

from mailevents import __version__
from mailevents.cli import commands
from mailevents.cli.commands import FILTER_FLAGS
from mailevents.client import DEFAULT_ADDRESS

__all__ = ["SERVER_COMMANDS", "build_parser"]

SERVER_COMMANDS = {
    "serve": "run the gRPC service (and the REST shim)",
    "keys": "create, list and revoke API keys",
    "demo": "load demo events into a database",
    "backup": "copy a SQLite database while it serves",
    "after-restore": "make a database restored from a backup safe to serve",
    "rest": "run the REST shim against a remote service",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailevents",
        description="Query and load email message events on a mailevents server.",
        epilog="Exit codes: 0 ok, 1 server error, 2 usage error, 3 ingest finished but "
        "rejected some lines, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"mailevents {__version__}")
    _connection_options(parser, defaults=True)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    connection = argparse.ArgumentParser(add_help=False)
    _connection_options(connection, defaults=False)
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
    search.set_defaults(command=commands.search, subcommand="search")

    get = sub.add_parser(
        "get",
        parents=[connection],
        help="print one event as JSON",
        description="Print one event, by store id or by --event-id, as JSON.",
    )
    get.add_argument("id", nargs="?", type=int, help="the store-assigned id")
    get.add_argument("--event-id", help="the producer's event id")
    get.add_argument("--fields", metavar="A,B,C", help="return only these fields")
    get.set_defaults(command=commands.get, subcommand="get")

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
    count.set_defaults(command=commands.count, subcommand="count")

    ingest = sub.add_parser(
        "ingest",
        parents=[connection],
        help="load SparkPost events from JSON lines",
        description="Load JSON lines (gzipped or not; - for stdin), each a SparkPost event, "
        "a webhook's msys wrapper, or an array of them. Lines that cannot be stored are "
        "written with their line number and reason to the rejects file, and the exit "
        "code is then 3.",
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
    ingest.set_defaults(command=commands.ingest, subcommand="ingest")

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
    tail.set_defaults(command=commands.tail, subcommand="tail")

    for name, help_text in SERVER_COMMANDS.items():
        # Listed for --help only: main() hands these to the server before parsing.
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _connection_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The connection flags, accepted before the command (`mailevents --address X
    search`) and after it. Only the top-level parser sets their defaults: a
    subcommand's parser would otherwise overwrite a value given before it."""
    address = os.environ.get("MAILEVENTS_ADDRESS", DEFAULT_ADDRESS)
    retry = os.environ.get("MAILEVENTS_RETRY_SECONDS", "30")
    group = parser.add_argument_group("connection (before or after the command)")

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    group.add_argument(
        "--address",
        default=default(address),
        help=f"server host:port (env MAILEVENTS_ADDRESS; default {address})",
    )
    group.add_argument(
        "--api-key",
        default=default(os.environ.get("MAILEVENTS_API_KEY")),
        help="API key (env MAILEVENTS_API_KEY)",
    )
    group.add_argument(
        "--tls", action="store_true", default=default(False), help="connect with TLS"
    )
    group.add_argument(
        "--ca-cert",
        metavar="FILE",
        default=default(None),
        help="trust this CA (PEM); implies --tls",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=default(30.0),
        metavar="SECONDS",
        help="per call, and per batch of a search; 0 waits forever (default: 30)",
    )
    group.add_argument(
        "--retry-for",
        type=float,
        # A string: argparse converts it like a flag's value, and reports a bad one.
        default=default(retry),
        metavar="SECONDS",
        help="keep sending again for this long while the server's store is unavailable "
        f"(env MAILEVENTS_RETRY_SECONDS; 0: never; default: {retry})",
    )


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
    for flag, _, help_text in FILTER_FLAGS:
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
