"""Probes for orchestrators on the shim's port: `/healthz` and `/readyz`.

`/healthz` answers 200 while the process runs. `/readyz` answers 200 only
when the service answers: its gRPC health says SERVING (it does once its
store is open and migrated, and stops saying so when it drains on SIGTERM)
and, in `serve`, the store answers a query. Otherwise 503 with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web

from mailevents.client import MailEventsClient
from mailevents.errors import MailEventsError

from .jsonbody import json_response

#: How long a readiness check may take before it counts as "not ready".
CHECK_SECONDS = 2.0

#: A readiness check: None when ready, else why not.
Check = Callable[[], Awaitable[str | None]]
CHECKS_KEY: web.AppKey[list[Check]] = web.AppKey("readiness_checks", list)


PATHS = ("/healthz", "/readyz")
STARTED_KEY: web.AppKey[asyncio.Event] = web.AppKey("started", asyncio.Event)


def routes() -> list[web.RouteDef]:
    return [web.get(PATHS[0], healthz), web.get(PATHS[1], readyz)]


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def until_started(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Before the service is up (its store opening), every route but the probes
    answers 503 with Retry-After: the shim listens early so that /readyz can say so."""
    started = request.app.get(STARTED_KEY)
    if started is not None and not started.is_set() and request.path not in PATHS:
        response = json_response({"error": "the service is starting; retry shortly"}, status=503)
        response.headers["Retry-After"] = "1"
        return response
    return await handler(request)


def started(event: asyncio.Event) -> Check:
    """Not ready until `event` is set (the service has opened its store)."""

    async def check() -> str | None:
        return None if event.is_set() else "starting: the store is not open yet"

    return check


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    for check in request.app.get(CHECKS_KEY, []):
        try:
            reason = await asyncio.wait_for(check(), CHECK_SECONDS)
        except TimeoutError:
            reason = f"no answer within {CHECK_SECONDS:g}s"
        if reason is not None:
            return json_response({"status": "not ready", "reason": reason}, status=503)
    return json_response({"status": "ready"})


def service_health(channel: grpc.aio.Channel) -> Check:
    """Ready when the service's gRPC health says SERVING."""
    client = MailEventsClient(channel=channel, timeout=CHECK_SECONDS, retry=None)

    async def check() -> str | None:
        try:
            status = await client.health()
        except MailEventsError as failure:
            return f"service unreachable: {failure.code.name}"
        return None if status == "SERVING" else "service " + status

    return check


def store_answers(query: Callable[[], Awaitable[object]]) -> Check:
    """Ready when `query` (a cheap store read) returns."""

    async def check() -> str | None:
        try:
            await query()
        except Exception as exc:  # any failure means "not ready"; the reason is its type
            return f"store does not answer: {type(exc).__name__}"
        return None

    return check
