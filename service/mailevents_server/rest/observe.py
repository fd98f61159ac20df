"""The shim's per-request metrics, access log line and trace span (an aiohttp middleware).

Requests are labelled by dialect and route, the path pattern (never the
path itself, which would make a label per message id, nor the query string,
where two dialects carry API keys).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from mailevents_server import tracing
from mailevents_server.metrics import Metrics

access = logging.getLogger("mailevents.access")

METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
#: Route pattern -> dialect name, for the dialect label.
DIALECTS_KEY: web.AppKey[dict[str, str]] = web.AppKey("dialect_of_route", dict)
#: Routes whose requests are logged at DEBUG: orchestrators probe them every few seconds.
QUIET_DIALECTS = frozenset({"probe"})

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def name_routes(app: web.Application, dialect: str, routes: Iterable[web.RouteDef]) -> None:
    """Add `routes` to `app`, labelled with `dialect` in metrics and logs.

    Keyed by each route's canonical pattern, which `observe` looks up: for a
    segment with a regex of its own (`{pk:(?s:.*)}`) that is `{pk}`, not the
    pattern as written.
    """
    table = app.setdefault(DIALECTS_KEY, {})
    for route in app.router.add_routes(routes):
        if route.resource is not None:
            table[route.resource.canonical] = dialect


def any_segment(path: str) -> str:
    """`path` with each `{name}` matching any segment but a slash.

    aiohttp's default segment pattern leaves out `{` and `}`: an id holding
    one would get aiohttp's plain-text 404 instead of the dialect's answer.
    """
    return re.sub(r"\{(\w+)\}", r"{\1:[^/]+}", path)


@web.middleware
async def observe(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Count, time, log and trace one request."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    dialect = request.app.get(DIALECTS_KEY, {}).get(route, "none")
    started = time.perf_counter()
    status = 500
    with tracing.server_span(
        f"{request.method} {route}",
        request.headers,
        {"http.request.method": request.method, "http.route": route},
    ):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception as exc:  # nothing answered for it: aiohttp's 500
            tracing.record_exception(exc)
            raise
        finally:
            seconds = time.perf_counter() - started
            tracing.set_attribute("http.response.status_code", status)
            if status >= 500:
                tracing.set_error(str(status))
            metrics = request.app.get(METRICS_KEY)
            if metrics is not None:
                metrics.http_requests.labels(dialect, route, str(status)).inc()
                metrics.http_seconds.labels(dialect, route).observe(seconds)
            level = logging.DEBUG if dialect in QUIET_DIALECTS else logging.INFO
            if access.isEnabledFor(level):
                access.log(
                    level,
                    "%s %s %d %.1fms",
                    request.method,
                    route,
                    status,
                    seconds * 1000,
                    extra={
                        "route": route,
                        "dialect": dialect,
                        "method": request.method,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
