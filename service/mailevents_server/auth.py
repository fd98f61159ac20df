"""API keys and the interceptor that turns one into a tenant for every call.

Keys are random (256 bits), shown once and stored as SHA-256 hashes: a slow
password hash buys nothing for keys this long, and lookups stay one index
probe. The interceptor resolves the tenant before the handler runs and puts
it in a context variable; the same wrapper maps every error to a status, so
both rules live in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from mailevents_server import faults
from mailevents_server.errors import (
    ServiceError,
    Unauthenticated,
    internal_status,
    store_refusal,
    to_rpc_status,
)
from mailevents_server.grpc_handlers import Streaming, Unary, wrapped
from mailevents_server.keytext import usable_key
from mailevents_server.malformed import MalformedRequest
from mailevents_server.store.base import Store

log = logging.getLogger(__name__)

KEY_PREFIX = "mek_"
_CACHE_SECONDS = 30.0

_tenant: contextvars.ContextVar[int] = contextvars.ContextVar("mailevents_tenant")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def current_tenant() -> int:
    """The tenant of the call being served (set by the interceptor)."""
    return _tenant.get()


def calling_tenant() -> int | None:
    """The tenant of the call being served, or None before (or without) authentication."""
    return _tenant.get(None)


class KeyResolver:
    """Key -> tenant, with a short cache so a busy client costs no query per call."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[int, float]] = {}

    def refused(self, reason: str) -> None:
        """Count a call refused for `reason` (an `Unauthenticated` reason) in the metrics."""
        self._store.metrics.auth_refusals.labels(reason).inc()

    async def tenant(self, metadata: Any) -> int:
        """The tenant of a gRPC call's `authorization: Bearer <key>` metadata."""
        key = _bearer(metadata)
        if key is None:
            raise Unauthenticated(
                "missing API key: send metadata 'authorization: Bearer <key>'", "API_KEY_MISSING"
            )
        return await self.tenant_for_key(key)

    async def tenant_for_key(self, key: str) -> int:
        """The tenant a key belongs to, for callers in this process that have the key
        itself (the webhook receivers of `serve`)."""
        if not usable_key(key):
            raise Unauthenticated("invalid API key", "API_KEY_INVALID")
        digest = hash_key(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        tenant = await self._store.tenant_for_key(digest)
        if tenant is None:
            raise Unauthenticated("invalid API key", "API_KEY_INVALID")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (tenant, now + _CACHE_SECONDS)
        return tenant


def _bearer(metadata: Any) -> str | None:
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            scheme, _, key = value.strip().partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
    return None


class TenantInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates calls to the `protected` service and maps errors to statuses."""

    def __init__(self, resolver: KeyResolver, protected: str) -> None:
        self._resolver = resolver
        self._prefix = f"/{protected}/"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self._prefix):
            return handler
        guard = _Guard(self._resolver, details.method)

        def unary(inner: Unary, many: bool) -> Unary:
            parse = _each_parsed if many else _parsed

            async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guard(context):
                    return await inner(parse(request), context)

            return guarded

        def streaming(inner: Streaming, many: bool) -> Streaming:
            parse = _each_parsed if many else _parsed

            async def guarded(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                async with guard(context):
                    async for item in inner(parse(request), context):
                        if _expired(context):
                            # Writing now would fail in gRPC's core and be logged
                            # as an error; the client has gone, so end quietly.
                            raise asyncio.CancelledError
                        yield item

            return guarded

        return wrapped(handler, unary, streaming)


def _parsed(request: Any) -> Any:
    """The request, or InvalidArgument when its bytes did not parse (see `malformed`)."""
    if isinstance(request, MalformedRequest):
        raise request.error()
    return request


async def _each_parsed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _parsed(request)


def _expired(context: grpc.aio.ServicerContext) -> bool:
    """Whether the call's deadline has passed (the client stops listening then)."""
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


class _Guard:
    """Around each call: resolve the tenant first, turn every error into a status."""

    def __init__(self, resolver: KeyResolver, method: str) -> None:
        self._resolver = resolver
        self._method = method

    @contextlib.asynccontextmanager
    async def __call__(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            faults.set_call_deadline(context.time_remaining())
            _tenant.set(await self._resolver.tenant(context.invocation_metadata()))
            yield
        except grpc.aio.AbortError:
            raise  # the handler already chose its status
        except ServiceError as err:
            if isinstance(err, Unauthenticated):
                self._resolver.refused(err.reason)
            await context.abort_with_status(rpc_status.to_status(to_rpc_status(err)))
        except Exception as exc:
            refusal = store_refusal(exc)
            if refusal is None:
                log.exception("unexpected error in %s", self._method)
                await context.abort_with_status(rpc_status.to_status(internal_status()))
            else:
                # A fault of the store, not a bug: one line with its cause, no traceback.
                log.warning(
                    "%s refused with %s: %s",
                    self._method,
                    refusal.code.name,
                    faults.cause(exc),
                )
                await context.abort_with_status(rpc_status.to_status(to_rpc_status(refusal)))
