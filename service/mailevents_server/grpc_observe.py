"""What every gRPC call leaves behind: metrics, an access log line and a trace span.

`CallObserver` is the server's outermost interceptor, so it sees every call
(the service's, health, reflection) with its final status, including the
statuses the auth interceptor sets. Per call it costs a few counter and
histogram updates and, when INFO is on, one log line; per event nothing.

`tracing_interceptors` are the client side for channels the server opens
(the shim's and the webhooks'): a CLIENT span per call, with its W3C
`traceparent` sent as metadata so the service's span joins the same trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from mailevents_server import tracing
from mailevents_server.auth import calling_tenant
from mailevents_server.grpc_handlers import Streaming, Unary, wrapped
from mailevents_server.metrics import Metrics

access = logging.getLogger("mailevents.access")


class CallObserver(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts, times, logs and traces each call."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        call = _Call(self._metrics, details)

        def unary(inner: Unary, many: bool) -> Unary:
            async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with call.observe(context, streaming=False):
                    return await inner(request, context)

            return observed

        def streaming(inner: Streaming, many: bool) -> Streaming:
            async def observed(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                with call.observe(context, streaming=True):
                    async for item in inner(request, context):
                        yield item

            return observed

        return wrapped(handler, unary, streaming)


class _Call:
    """One method's observation: what `observe` records around each of its calls."""

    def __init__(self, metrics: Metrics, details: grpc.HandlerCallDetails) -> None:
        self._metrics = metrics
        self._method = details.method
        self._metadata = details.invocation_metadata

    def observe(self, context: grpc.aio.ServicerContext, *, streaming: bool) -> _Observation:
        return _Observation(self, context, streaming)

    def record(self, code: str, seconds: float, streaming: bool) -> None:
        m = self._metrics
        method = self._method
        m.grpc_requests.labels(method, code, *m.tenant(calling_tenant())).inc()
        if streaming:
            m.grpc_stream_seconds.labels(method).observe(seconds)
        else:
            m.grpc_seconds.labels(method).observe(seconds)
        if access.isEnabledFor(logging.INFO):
            access.info(
                "%s %s %.1fms",
                method,
                code,
                seconds * 1000,
                extra={"method": method, "status": code, "duration_ms": round(seconds * 1000, 3)},
            )


class _Observation:
    """A context manager around one call (a class: cheaper than a generator-based one)."""

    __slots__ = ("_call", "_context", "_span", "_started", "_streaming")

    def __init__(self, call: _Call, context: grpc.aio.ServicerContext, streaming: bool) -> None:
        self._call = call
        self._context = context
        self._streaming = streaming
        self._span: Any = None
        self._started = 0.0

    def __enter__(self) -> None:
        if tracing.enabled():
            call = self._call
            self._span = tracing.server_span(
                call._method.lstrip("/"),
                call._metadata,
                {"rpc.system": "grpc", "rpc.method": call._method},
            )
            self._span.__enter__()
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        seconds = time.perf_counter() - self._started
        code = _code(self._context, kind)
        if self._span is not None:
            tracing.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS.get(code, 2))
            if code != "OK":
                tracing.set_error(code)
                if code == "UNKNOWN" and exc is not None:  # nothing mapped it: a bug
                    tracing.record_exception(exc)
            self._call.record(code, seconds, self._streaming)  # inside the span: its trace id
            self._span.__exit__(kind, exc, tb)
        else:
            self._call.record(code, seconds, self._streaming)


#: Status code names to their numbers, for the `rpc.grpc.status_code` attribute.
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


def _code(context: grpc.aio.ServicerContext, kind: type[BaseException] | None) -> str:
    """The call's final status code name: the one the handler (or auth) aborted
    with, OK when it returned, UNKNOWN for an exception nothing mapped."""
    if kind is not None and issubclass(kind, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "OK" if kind is None else "UNKNOWN"


# -- client side ----------------------------------------------------------------


class _ClientTracing:
    """A CLIENT span for each outgoing call, its context sent as `traceparent`."""

    async def _intercept(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        if not tracing.enabled():
            return await continuation(details, request)
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        span = tracing.start_client_span(method.lstrip("/"))
        metadata = list(details.metadata or ())
        tracing.inject(span, metadata)
        details = grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )
        try:
            call = await continuation(details, request)
        except BaseException:
            span.end()
            raise
        call.add_done_callback(lambda done: _end_when_known(span, done))
        return call


#: Tasks that read a finished call's status, kept until done (the loop holds
#: only weak references to tasks).
_ending: set[asyncio.Task[None]] = set()


def _end_when_known(span: Any, call: Any) -> None:
    """A done callback cannot await: read the finished call's status in a task
    (its status is already there, so the task ends on its first step)."""

    async def end() -> None:
        try:
            code = await call.code()
        except Exception:
            code = None
        tracing.end_client_span(span, code)

    try:
        task = asyncio.get_running_loop().create_task(end())
    except RuntimeError:  # no loop left to ask: end it without a status
        tracing.end_client_span(span, None)
        return
    _ending.add(task)
    task.add_done_callback(_ending.discard)


class _UnaryUnary(_ClientTracing, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _UnaryStream(_ClientTracing, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _StreamUnary(_ClientTracing, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._intercept(continuation, details, requests)


class _StreamStream(_ClientTracing, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._intercept(continuation, details, requests)


def tracing_interceptors() -> list[Any]:
    """Client interceptors for a channel, when tracing is on (none otherwise: an
    intercepted channel costs more per call)."""
    if not tracing.enabled():
        return []
    return [_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()]
