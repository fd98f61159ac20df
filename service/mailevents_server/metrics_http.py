"""The `/metrics` endpoint on `--metrics-address`, in Prometheus' text format.

Its own small aiohttp app on its own port, so that metrics are scraped on an
address that is not exposed with the API, and a scrape never queues behind
API traffic on the shim. prometheus-client writes the exposition format.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mailevents_server.metrics import Metrics
from mailevents_server.rest.app import bound_port

log = logging.getLogger(__name__)

_SIZE_SECONDS = 2.0


async def start_metrics(host: str, port: int, metrics: Metrics, store: Any = None) -> web.AppRunner:
    """Serve `metrics` at http://host:port/metrics; port 0 picks a free port."""

    async def scrape(request: web.Request) -> web.Response:
        database_bytes = getattr(store, "database_bytes", None)
        if database_bytes is not None:  # PostgreSQL: its size takes a query
            try:
                size = await asyncio.wait_for(database_bytes(), _SIZE_SECONDS)
                metrics.set_database_bytes(float(size))
            except Exception:
                log.debug("database size not available for this scrape", exc_info=True)
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("metrics at http://%s:%d/metrics", host, bound_port(runner))
    return runner
