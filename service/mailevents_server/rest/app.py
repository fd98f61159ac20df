"""The REST-compat shim's aiohttp application: every dialect's routes on one app.

`create_app` takes a gRPC channel, so the shim runs the same way beside the
server (`mailevents serve`) or on its own against a remote service
(`mailevents rest --target`): it only ever talks to the generated stub.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from aiohttp import web

from mailevents_server.metrics import Metrics
from mailevents_server.workers import Workers, owned_by

from . import copernica, interaction, openapi, probes, sparkpost, tastypie
from .client import CLIENT_KEY, ShimClient
from .jsonbody import json_response
from .observe import DIALECTS_KEY, METRICS_KEY, name_routes, observe
from .refusals import RefusalLogger

if TYPE_CHECKING:
    from mailevents_server.ingest.sinks import Sink

log = logging.getLogger(__name__)

#: Each dialect module's routes; the OpenAPI document and the route test read this.
DIALECTS = (sparkpost, tastypie, copernica, interaction)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _no_leaks(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """An unexpected exception becomes a bare 500: its text never reaches a client."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("REST shim: unhandled error on %s %s", request.method, request.path)
        return json_response({"error": "internal server error"}, status=500)


def create_app(
    channel: grpc.aio.Channel,
    workers: Workers | None = None,
    *,
    metrics: Metrics | None = None,
    checks: list[probes.Check] | None = None,
    started: asyncio.Event | None = None,
) -> web.Application:
    """The shim, talking to the service over `channel` (which the caller owns and closes).

    Large pages are rendered with `workers`; without, the app starts its own
    and stops them on cleanup. Requests are counted in `metrics` (when given);
    `/readyz` runs `checks` (default: the service's gRPC health). Until `started`
    is set, only the probes answer (others: 503).
    """
    app = web.Application(middlewares=[observe, _no_leaks, probes.until_started])
    if started is not None:
        app[probes.STARTED_KEY] = started
    if workers is None:
        workers = owned_by(app)
        if metrics is not None:
            workers.metrics = metrics
    app[CLIENT_KEY] = ShimClient(channel, workers)
    if metrics is not None:
        app[METRICS_KEY] = metrics
    app[probes.CHECKS_KEY] = checks if checks is not None else [probes.service_health(channel)]
    for dialect in DIALECTS:
        name_routes(app, dialect.__name__.rsplit(".", 1)[-1], dialect.routes())
    name_routes(app, "openapi", openapi.routes())
    name_routes(app, "probe", probes.routes())
    return app


async def start_rest(
    channel: grpc.aio.Channel,
    host: str,
    port: int,
    *,
    webhooks: bool = True,
    workers: Workers | None = None,
    webhook_sink: Sink | None = None,
    metrics: Metrics | None = None,
    checks: list[probes.Check] | None = None,
    started: asyncio.Event | None = None,
) -> web.AppRunner:
    """Serve the shim (and the webhook receivers) on host:port.

    Port 0 picks a free port; read it with `bound_port`. The webhook receivers
    store into `webhook_sink` (`serve` passes one that writes into its store);
    without one, through the service over `channel`.
    """
    app = create_app(channel, workers, metrics=metrics, checks=checks, started=started)
    if webhooks:
        # Imported here: the receivers use the shim's metrics key (rest.observe),
        # so a module-level import would be a cycle.
        from mailevents_server.ingest.receivers import add_webhook_routes, through_service

        sink = webhook_sink or through_service(channel, app[CLIENT_KEY].workers)
        add_webhook_routes(app, sink)
        for resource in app.router.resources():
            app[DIALECTS_KEY].setdefault(resource.canonical, "webhook")
    runner = web.AppRunner(app, access_log=None, logger=RefusalLogger())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("REST shim listening on %s:%d", host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the shim's first listening socket is bound to."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the REST shim is not listening")
