"""The server-side subcommands of the `mailevents` CLI: serve, rest, keys, backup,
after-restore, demo.

Every flag has a MAILEVENTS_* environment variable as its alternative, and the
defaults are safe (loopback addresses). Operations scripts drive these, so
names and flags are kept stable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailevents_server import logs, runtime, tracing
from mailevents_server.auth import hash_key, new_key
from mailevents_server.backups import RESTORE_GAP, BackupError, after_restore, backup
from mailevents_server.server import ServerConfig, serve
from mailevents_server.store import open_store

DEFAULTS = ServerConfig()
DEFAULT_METRICS_ADDRESS = "127.0.0.1:9464"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MAILEVENTS_{name}", default)


def _database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=_env("DATABASE", DEFAULTS.database),
        help="SQLite path or postgresql:// URL (env MAILEVENTS_DATABASE; default %(default)s)",
    )


def _operations_flags(parser: argparse.ArgumentParser) -> None:
    """Logging and metrics flags, the same for `serve` and `rest`."""
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", DEFAULTS.log_level),
        choices=["debug", "info", "warning", "error"],
        help="(env MAILEVENTS_LOG_LEVEL; default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=list(logs.FORMATS),
        help="text lines or one JSON object a line (env MAILEVENTS_LOG_FORMAT;"
        " default %(default)s)",
    )
    parser.add_argument(
        "--metrics-address",
        default=_env("METRICS_ADDRESS", DEFAULT_METRICS_ADDRESS),
        help="host:port of the Prometheus /metrics endpoint, '' to disable"
        " (env MAILEVENTS_METRICS_ADDRESS; default %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailevents")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gRPC service (and the REST shim)")
    s.add_argument(
        "--grpc-address",
        default=_env("GRPC_ADDRESS", DEFAULTS.grpc_address),
        help="host:port to listen on (env MAILEVENTS_GRPC_ADDRESS; default %(default)s)",
    )
    _database_flag(s)
    s.add_argument(
        "--http-address",
        default=_env("HTTP_ADDRESS", DEFAULTS.http_address),
        help="REST shim host:port, '' to disable"
        " (env MAILEVENTS_HTTP_ADDRESS; default %(default)s)",
    )
    s.add_argument(
        "--tls-cert", default=_env("TLS_CERT", ""), help="PEM certificate (env MAILEVENTS_TLS_CERT)"
    )
    s.add_argument(
        "--tls-key", default=_env("TLS_KEY", ""), help="PEM private key (env MAILEVENTS_TLS_KEY)"
    )
    _operations_flags(s)
    s.add_argument(
        "--metrics-tenant-label",
        action="store_true",
        default=_env("METRICS_TENANT_LABEL", "") in ("1", "true", "yes"),
        help="label request and ingest metrics with the tenant id; for few tenants only"
        " (env MAILEVENTS_METRICS_TENANT_LABEL=true)",
    )
    s.add_argument(
        "--grace-seconds",
        type=float,
        default=float(_env("GRACE_SECONDS", str(DEFAULTS.grace_seconds))),
        help="on SIGTERM, how long running calls may finish"
        " (env MAILEVENTS_GRACE_SECONDS; default %(default)s)",
    )
    s.add_argument(
        "--retention",
        default=_env("RETENTION", DEFAULTS.retention),
        help="remove events older than this, e.g. 30d or 12h; '' keeps all "
        "(env MAILEVENTS_RETENTION)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=_optional_int(_env("WORKERS", "")),
        help="processes for large ingest batches, webhook bodies and REST pages;"
        " 0: a thread does (env MAILEVENTS_WORKERS; default: one per core beyond the first,"
        " 1 to 4)",
    )

    r = sub.add_parser("rest", help="run the REST shim alone, against a remote service")
    r.add_argument(
        "--target",
        default=_env("TARGET", DEFAULTS.grpc_address),
        help="the service's gRPC host:port (env MAILEVENTS_TARGET; default %(default)s)",
    )
    r.add_argument(
        "--http-address",
        default=_env("HTTP_ADDRESS", DEFAULTS.http_address),
        help="host:port to listen on (env MAILEVENTS_HTTP_ADDRESS; default %(default)s)",
    )
    r.add_argument("--tls", action="store_true", help="reach the service over TLS")
    r.add_argument(
        "--ca-cert", default=_env("CA_CERT", ""), help="trust this CA (PEM); implies --tls"
    )
    _operations_flags(r)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser(
        "create", help="create an API key for a tenant; prints it once, on the last line"
    )
    _database_flag(kc)
    kc.add_argument("--tenant", required=True, help="tenant name (created if new)")
    kc.add_argument("--label", default="", help="a note to tell keys apart")
    kl = ksub.add_parser("list", help="list keys (their ids, tenants and labels, never the keys)")
    _database_flag(kl)
    kr = ksub.add_parser(
        "revoke", help="revoke a key by its id from `keys list` (servers forget it within 30 s)"
    )
    _database_flag(kr)
    kr.add_argument("key_id", help="the key id shown by `keys list`")

    b = sub.add_parser(
        "backup",
        help="copy a SQLite database while it serves, to a new compact file (checked)",
        description="Copy the SQLite database to DEST as of one moment, while servers go on "
        "reading and writing it; the copy is checked before it gets its name. To restore: "
        "stop the servers, put the copy in place of the database (and remove the old "
        "database's -wal and -shm files), run `mailevents after-restore`, start the servers.",
    )
    _database_flag(b)
    b.add_argument("destination", metavar="DEST", help="the new file to write")
    a = sub.add_parser(
        "after-restore",
        help="make a database restored from a backup safe to serve (before servers start)",
        description="Leave a gap of unused positions before every tenant's next commit, so "
        "that consumers holding resume tokens from commits the restored database lost "
        "miss none of the events committed from now on. Run it once per restore, before "
        "any server starts on the database.",
    )
    _database_flag(a)
    a.add_argument(
        "--gap",
        type=int,
        default=RESTORE_GAP,
        help="positions to leave unused (default %(default)s, 2^40)",
    )

    d = sub.add_parser("demo", help="load realistic demo events; prints a key for the tenant last")
    _database_flag(d)
    d.add_argument("--tenant", default="demo", help="tenant name (default %(default)s)")
    d.add_argument("--events", type=int, default=100_000, help="how many (default %(default)s)")
    d.add_argument("--seed", type=int, default=42, help="random seed (default %(default)s)")
    return parser


def _optional_int(text: str) -> int | None:
    """An environment default: unset is None, anything else must be an integer."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"error: not an integer: {text!r}") from None


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        if args.command == "serve":
            logs.configure(args.log_level, args.log_format)
            tracing.configure_from_environment()
            config = ServerConfig(
                grpc_address=args.grpc_address,
                database=args.database,
                http_address=args.http_address,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                log_level=args.log_level,
                grace_seconds=args.grace_seconds,
                retention=args.retention,
                workers=args.workers,
                metrics_address=args.metrics_address,
                metrics_tenant_label=args.metrics_tenant_label,
            )
            runtime.tune_for_serving()
            asyncio.run(serve(config))
        elif args.command == "rest":
            logs.configure(args.log_level, args.log_format)
            tracing.configure_from_environment()
            runtime.tune_gc()
            asyncio.run(
                run_rest(
                    args.target, args.http_address, args.tls, args.ca_cert, args.metrics_address
                )
            )
        elif args.command == "keys":
            return asyncio.run(_keys(args))
        elif args.command == "backup":
            return _backup(args.database, Path(args.destination))
        elif args.command == "after-restore":
            try:
                asyncio.run(after_restore(args.database, args.gap))
            except ValueError as exc:  # the gap
                print(f"error: --gap: {exc}", file=sys.stderr)
                return 2
            except BackupError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(
                f"{args.database}: every tenant's next commit starts {args.gap:,} positions on; "
                "resume tokens from the commits it lost are safe to use"
            )
        elif args.command == "demo":
            if args.events < 0:
                print("error: --events must not be negative", file=sys.stderr)
                return 2
            key = asyncio.run(load_demo(args.database, args.tenant, args.events, args.seed))
            print(key)
    except KeyboardInterrupt:
        return 130
    return 0


def _backup(database: str, destination: Path) -> int:
    # One step with no progress to tell: a few seconds a GiB on a local disk.
    print(f"copying {database} to {destination}, then checking the copy ...", file=sys.stderr)
    try:
        made = backup(database, destination)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"backed up {made.events:,} events (up to id {made.highest_id:,}; "
        f"{made.size_bytes / 2**20:,.1f} MiB) to {made.path} in {made.seconds:.1f} s, checked"
    )
    return 0


async def run_rest(
    target: str, http_address: str, tls: bool, ca_cert: str, metrics_address: str = ""
) -> None:
    """The shim alone, until SIGTERM or SIGINT."""
    import contextlib

    import grpc

    from mailevents_server.metrics import Metrics
    from mailevents_server.metrics_http import start_metrics
    from mailevents_server.rest import start_rest
    from mailevents_server.server import client_channel, split_address, until_signalled

    host, port = split_address(http_address, "--http-address")
    credentials = None
    if tls or ca_cert:
        root = Path(ca_cert).read_bytes() if ca_cert else None  # noqa: ASYNC240 (startup)
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
    metrics = Metrics()
    channel = client_channel(target, credentials)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(channel.close)
        if metrics_address:
            mhost, mport = split_address(metrics_address, "--metrics-address")
            stack.push_async_callback((await start_metrics(mhost, mport, metrics)).cleanup)
        runner = await start_rest(channel, host, port, metrics=metrics)
        stack.push_async_callback(runner.cleanup)
        await until_signalled()


async def _keys(args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        key = await create_key(args.database, args.tenant, args.label)
        print(f"API key for tenant {args.tenant!r} (shown once, store it now):", file=sys.stderr)
        print(key)
        return 0
    store = open_store(args.database)
    await store.open()
    try:
        if args.keys_command == "list":
            print(f"{'KEY ID':<14}{'TENANT':<20}{'CREATED (UTC)':<22}LABEL")
            for info in await store.list_keys():
                created = datetime.fromtimestamp(info.created_us / 1e6, UTC)
                print(
                    f"{info.key_id:<14}{info.tenant:<20}{created:%Y-%m-%d %H:%M:%S}   {info.label}"
                )
            return 0
        try:
            revoked = await store.revoke_key(args.key_id)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not revoked:
            print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {revoked} key(s)")
        return 0
    finally:
        await store.close()


async def create_key(database: str, tenant: str, label: str = "") -> str:
    """A new key for `tenant`, stored hashed; the plain key is returned once."""
    _ensure_parent(database)
    store = open_store(database)
    await store.open()
    try:
        key = new_key()
        await store.create_key(tenant, hash_key(key), label)
        return key
    finally:
        await store.close()


async def load_demo(database: str, tenant: str, count: int, seed: int = 42) -> str:
    """Generate `count` demo events into the store for `tenant`; returns a new key."""
    from tqdm import tqdm

    from mailevents_server.demo import generate_events
    from mailevents_server.ingest import prepare

    _ensure_parent(database)
    store = open_store(database, synchronous="NORMAL")
    await store.open()
    try:
        key = new_key()
        tenant_id = await store.create_key(tenant, hash_key(key), "demo")
        batch = []
        with tqdm(total=count, unit="ev", desc="demo events", file=sys.stderr, disable=None) as bar:
            for event in generate_events(count, seed=seed):
                batch.append(event)
                if len(batch) == 5000:
                    ready, _ = prepare(batch)
                    await store.write(tenant_id, ready)
                    bar.update(len(batch))
                    batch = []
            if batch:
                ready, _ = prepare(batch)
                await store.write(tenant_id, ready)
                bar.update(len(batch))
        return key
    finally:
        await store.close()


def _ensure_parent(database: str) -> None:
    if "://" not in database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
