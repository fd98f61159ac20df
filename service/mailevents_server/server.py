"""Assembles and runs the gRPC server: store, servicer, auth, health, reflection.

`start_server` is what tests use (port 0, in-process); `serve` adds signal
handling and graceful shutdown for the console script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mailevents_server import tracing
from mailevents_server.auth import KeyResolver, TenantInterceptor
from mailevents_server.grpc_observe import CallObserver, tracing_interceptors
from mailevents_server.grpc_observe import access as access_log
from mailevents_server.grpclog import quiet_gone_clients
from mailevents_server.metrics import Metrics
from mailevents_server.metrics_http import start_metrics
from mailevents_server.query.tokens import TokenCodec
from mailevents_server.rest import bound_port, probes, start_rest
from mailevents_server.retention import parse_duration
from mailevents_server.retention import run_forever as run_retention
from mailevents_server.servicer import SERVICE_NAME, MessageEventServicer, handlers
from mailevents_server.store import open_store
from mailevents_server.store.base import Store
from mailevents_server.workers import Workers, default_count

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class ServerConfig:
    """Everything `mailevents serve` can be told, by flag or MAILEVENTS_* variable."""

    grpc_address: str = "127.0.0.1:50051"
    database: str = "data/mailevents.db"
    #: The REST-compat shim's address; empty to run gRPC only.
    http_address: str = "127.0.0.1:8080"
    tls_cert: str = ""
    tls_key: str = ""
    log_level: str = "info"
    #: How long running calls may go on after SIGTERM before they are cancelled.
    grace_seconds: float = 10.0
    #: Remove events older than this ("30d", "12h"; "" keeps everything).
    retention: str = ""
    #: Processes for CPU-bound work: large ingest batches, webhook bodies and
    #: REST pages (0: a thread does it); None: one per core beyond the first,
    #: 1 to 4 (see workers.py).
    workers: int | None = None
    #: Where Prometheus scrapes /metrics ("" for nowhere; `mailevents serve`
    #: defaults to 127.0.0.1:9464).
    metrics_address: str = ""
    #: Label request and ingest metrics with the tenant (few tenants only).
    metrics_tenant_label: bool = False
    store_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    store: Store
    health: health.aio.HealthServicer
    metrics: Metrics
    http_port: int = 0
    metrics_port: int = 0
    _stoppers: list[Any] = field(default_factory=list)
    #: Closed once the gRPC server has stopped (its last calls may use them).
    _after_stop: list[Any] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def drain(self) -> None:
        """Tell load balancers to go elsewhere: gRPC health NOT_SERVING, /readyz 503."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop taking calls, let running ones finish within `grace`, then close the store."""
        await self.drain()
        for stop in reversed(self._stoppers):
            await stop()
        await self.server.stop(grace)
        for close in self._after_stop:
            close()
        await self.store.close()


async def start_server(config: ServerConfig, store: Store | None = None) -> RunningServer:
    try:
        window = parse_duration(config.retention)
    except ValueError as exc:
        raise SystemExit(f"error: --retention: {exc}") from None
    metrics = Metrics(tenant_label=config.metrics_tenant_label)
    opened = store is not None
    if store is None:
        if "://" not in config.database:
            Path(config.database).parent.mkdir(parents=True, exist_ok=True)
        store = open_store(config.database, **config.store_options)
    store.metrics = metrics
    metrics.watch_store(store)
    workers = Workers(default_count() if config.workers is None else config.workers, metrics)
    resolver = KeyResolver(store)
    # The REST shim is a gRPC client like any other; in this process it
    # reaches the service over a private unix socket, which works whatever
    # TLS the public port uses. It listens before the store opens, so that
    # /readyz answers 503 while migrations run instead of nothing answering.
    private_dir = tempfile.mkdtemp(prefix="mailevents-") if config.http_address else ""
    http: _Http | None = None
    try:
        if private_dir:
            target = f"unix:{private_dir}/grpc.sock"
            http = await _start_http(config.http_address, target, store, resolver, workers, metrics)
        if not opened:
            await store.open()
        running = await _start_grpc(config, store, metrics, workers, resolver, private_dir)
    except BaseException:
        if http is not None:
            await http.stop()
        if private_dir:
            shutil.rmtree(private_dir, ignore_errors=True)
        workers.close()
        raise
    if http is not None:
        running.http_port = http.port
        running._stoppers.append(lambda: _remove(private_dir))
        running._stoppers.append(http.stop)
        http.started.set()
    if window:
        retention_task = asyncio.create_task(run_retention(store, window), name="retention")
        running._stoppers.append(lambda: _cancel(retention_task))
    try:
        await _start_metrics(running, config.metrics_address)
    except BaseException:
        await running.stop(0)
        raise
    return running


async def _start_grpc(
    config: ServerConfig,
    store: Store,
    metrics: Metrics,
    workers: Workers,
    resolver: KeyResolver,
    private_dir: str,
) -> RunningServer:
    """The gRPC server over an open store, SERVING."""
    codec = TokenCodec(await store.secret())
    servicer = MessageEventServicer(store, codec, workers, metrics)
    quiet_gone_clients()
    server = grpc.aio.server(
        interceptors=[*_observers(config, metrics), TenantInterceptor(resolver, SERVICE_NAME)],
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    server.add_generic_rpc_handlers((handlers(servicer),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = _bind(server, config)
    if private_dir:
        server.add_insecure_port(f"unix:{private_dir}/grpc.sock")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningServer(server, port, store, health_servicer, metrics)
    running._stoppers.append(servicer.stop_live_streams)
    running._after_stop.append(workers.close)
    log.info(
        "gRPC listening on %s (database %s)", _shown(config.grpc_address, port), config.database
    )
    return running


@dataclass
class _Http:
    """The shim of `serve`: its runner, its channel to the service, and the event
    set once the service is up (until then it answers 503)."""

    runner: web.AppRunner
    channel: grpc.aio.Channel
    started: asyncio.Event
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.channel.close()


async def _start_http(
    http_address: str,
    target: str,
    store: Store,
    resolver: KeyResolver,
    workers: Workers,
    metrics: Metrics,
) -> _Http:
    """The REST shim and webhook receivers, beside gRPC in this process: the shim
    calls the service over `target`, the webhooks write into the store."""
    host, port = split_address(http_address, "--http-address")
    channel = client_channel(target)
    started = asyncio.Event()
    checks = [
        probes.started(started),
        probes.service_health(channel),
        probes.store_answers(lambda: store.last_id(0)),  # a cheap read: no tenant 0
    ]
    try:
        runner = await start_rest(
            channel,
            host,
            port,
            workers=workers,
            local=(store, resolver),
            metrics=metrics,
            checks=checks,
            started=started,
        )
    except OSError as exc:
        await channel.close()
        raise SystemExit(f"error: cannot listen on {http_address}: {exc.strerror}") from None
    return _Http(runner, channel, started, bound_port(runner))


def _observers(config: ServerConfig, metrics: Metrics) -> list[CallObserver]:
    """The call observer, first (it sees the status the auth interceptor sets), when
    anything reads what it records: /metrics, the access log or traces. Without,
    calls skip it (`make bench` compares the two)."""
    if config.metrics_address or tracing.enabled() or access_log.isEnabledFor(logging.INFO):
        return [CallObserver(metrics)]
    return []


async def _start_metrics(running: RunningServer, address: str) -> None:
    """/metrics on `address`, when there is one."""
    if not address:
        return
    host, port = split_address(address, "--metrics-address")
    try:
        runner = await start_metrics(host, port, running.metrics, running.store)
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {address}: {exc.strerror}") from None
    running.metrics_port = bound_port(runner)
    running._stoppers.append(runner.cleanup)


def split_address(address: str, flag: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port), or exit with a message naming the flag."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SystemExit(f"error: {flag} must be HOST:PORT, not {address!r}")
    return host.strip("[]"), int(port)


def client_channel(
    target: str, credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.Channel:
    """A channel to the service with the message limits the service itself allows."""
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    # With tracing on, each call gets a client span and sends its traceparent.
    interceptors = tracing_interceptors() or None
    if credentials is not None:
        return grpc.aio.secure_channel(
            target, credentials, options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


async def _remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    address = config.grpc_address
    if bool(config.tls_cert) != bool(config.tls_key):
        raise SystemExit("error: --tls-cert and --tls-key go together")
    if config.tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if not port:
        raise SystemExit(f"error: cannot listen on {address}")
    return int(port)


def _shown(address: str, port: int) -> str:
    host = address.rsplit(":", 1)[0]
    return f"{host}:{port}"


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start_server(config)
    await until_signalled()
    log.info("shutting down: letting running calls finish for up to %ss", config.grace_seconds)
    await running.stop(config.grace_seconds)
    log.info("stopped")


async def until_signalled() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
