"""The `mailevents` command: search, get, count and ingest against a server; and the server itself.

Client subcommands talk gRPC through `MailEventsClient`. Server subcommands
(`serve`, `keys`, `demo`, `rest`) belong to the server package and are handed
to it untouched, so that one command covers both halves while the client
still installs and runs without the server.

Exit codes: 0 done, 1 the server refused or failed (the status and each field
violation on stderr), 2 bad usage, 3 an ingest that finished but rejected some
lines (they are in its rejects file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence

import grpc

from mailevents.cli.commands import Command, UsageError
from mailevents.cli.parser import SERVER_COMMANDS, build_parser
from mailevents.errors import MailEventsError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SERVER_COMMANDS:
        return _run_server_command(args_list)
    parser = build_parser()
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
