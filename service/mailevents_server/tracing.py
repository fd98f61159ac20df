"""OpenTelemetry tracing, when the `otel` extra is installed and configured.

`pip install 'mailevents[otel]'` brings the OpenTelemetry API, SDK and the
OTLP/HTTP exporter. Tracing is on when the standard environment says so
(`OTEL_TRACES_EXPORTER` other than `none`, or an `OTEL_EXPORTER_OTLP_*`
endpoint) and `OTEL_SDK_DISABLED` is not `true`; the SDK reads the rest
(service name, sampler, batch sizes, endpoint, headers) from the `OTEL_*`
variables itself. Otherwise every helper here is a no-op that costs one
attribute check: the hot paths call `span()` unconditionally.

Spans: the gRPC server (one per call, its parent taken from the caller's W3C
`traceparent` metadata), the gRPC client (the shim's and the webhooks'
calls, which inject `traceparent`), REST routes, and store reads and writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, MutableSequence
from typing import Any

log = logging.getLogger(__name__)

try:  # the `otel` extra
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised where the extra is absent
    propagate = None  # type: ignore[assignment]
    trace = None  # type: ignore[assignment]

_NULL = contextlib.nullcontext()
#: The tracer when tracing is on, else None.
_tracer: Any = None


def available() -> bool:
    """Whether the OpenTelemetry API is installed."""
    return trace is not None


def enabled() -> bool:
    return _tracer is not None


def enable(provider: Any = None) -> None:
    """Trace from now on, through `provider` (default: the global one)."""
    global _tracer
    if trace is None:
        raise RuntimeError("tracing needs the otel extra: pip install 'mailevents[otel]'")
    _tracer = trace.get_tracer("mailevents_server", tracer_provider=provider)


def disable() -> None:
    global _tracer
    _tracer = None


def configure_from_environment() -> bool:
    """Turn tracing on when the `OTEL_*` environment asks for it; True if it did."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if exporter in ("", "none") and not (exporter == "" and endpoint):
        return False
    if trace is None:
        log.warning("OTEL_* asks for traces, but the otel extra is not installed: not tracing")
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "mailevents"}
    provider = TracerProvider(resource=Resource.create(defaults))
    for name in (exporter or "otlp").split(","):
        name = name.strip()
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            log.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored", name)
    trace.set_tracer_provider(provider)
    enable()
    return True


def span(name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """A child span of the current one, as a context manager (a no-op when off)."""
    if _tracer is None:
        return _NULL
    return _tracer.start_as_current_span(name, attributes=attributes)


def server_span(name: str, carrier: Any, attributes: Mapping[str, Any] | None = None) -> Any:
    """A SERVER span whose parent comes from `carrier`'s `traceparent` (gRPC
    metadata pairs or HTTP headers)."""
    if _tracer is None:
        return _NULL
    headers = carrier if isinstance(carrier, Mapping) else _metadata_dict(carrier)
    return _tracer.start_as_current_span(
        name,
        context=propagate.extract(headers),
        kind=trace.SpanKind.SERVER,
        attributes=attributes,
        # The call's status says how it ended (see `set_error`); the exception
        # gRPC uses to abort a call is not news.
        record_exception=False,
        set_status_on_exception=False,
    )


def start_client_span(name: str) -> Any:
    """A CLIENT span that the caller ends (`end_span`), not made current."""
    return _tracer.start_span(name, kind=trace.SpanKind.CLIENT)


def end_client_span(client_span: Any, code: Any) -> None:
    """End `client_span` with its call's final `grpc.StatusCode` (None: unknown),
    as the `rpc.grpc.status_code` attribute and, unless OK, an error status."""
    if code is not None:
        client_span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code.name != "OK":
            client_span.set_status(trace.Status(trace.StatusCode.ERROR, code.name))
    client_span.end()


def inject(client_span: Any, metadata: MutableSequence[tuple[str, str]]) -> None:
    """Append the W3C trace context of `client_span` to gRPC metadata."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(client_span))
    metadata.extend(carrier.items())


def set_error(status: str) -> None:
    """Mark the current span as failed with `status` (a gRPC code or HTTP status)."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    current.set_status(trace.Status(trace.StatusCode.ERROR, status))


def record_exception(exc: BaseException) -> None:
    """Add `exc` to the current span as an exception event (a no-op when off)."""
    if _tracer is None:
        return
    trace.get_current_span().record_exception(exc)


def set_attribute(name: str, value: Any) -> None:
    """Set an attribute on the current span (a no-op when off)."""
    if _tracer is None:
        return
    trace.get_current_span().set_attribute(name, value)


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" (for log lines)."""
    if _tracer is None:
        return ""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def _metadata_dict(metadata: Any) -> dict[str, str]:
    return {k: v for k, v in metadata or () if isinstance(v, str)}
