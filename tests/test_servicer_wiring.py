"""Every RPC of the proto has a servicer method and a registered, guarded handler.

Adding an RPC to message_event_service.proto without implementing it fails
here (and at server start-up), instead of answering UNIMPLEMENTED in production.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import grpc
import pytest

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.query.tokens import TokenCodec
from mailevents_server.servicer import SERVICE_NAME, MessageEventServicer, handlers

SERVICE = spb.DESCRIPTOR.services_by_name["MessageEventService"]
METHODS = [m.name for m in SERVICE.methods]


class _Details:
    """What a gRPC server hands a generic handler to look a method up."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_service_name() -> None:
    assert SERVICE_NAME == "mailevents.v1.MessageEventService"
    assert len(METHODS) >= 5


@pytest.mark.parametrize("name", METHODS)
def test_servicer_has_a_method_per_rpc(name: str) -> None:
    method = SERVICE.methods_by_name[name]
    behaviour = getattr(MessageEventServicer, name, None)
    assert behaviour is not None, f"MessageEventServicer has no {name}"
    if method.server_streaming:
        assert inspect.isasyncgenfunction(behaviour) or inspect.iscoroutinefunction(behaviour)
    else:
        assert inspect.iscoroutinefunction(behaviour), f"{name} must be async"
    assert list(inspect.signature(behaviour).parameters) == ["self", "request", "context"] or (
        method.client_streaming
    )


def test_servicer_has_no_stray_rpc_methods() -> None:
    """A CamelCase method that is no longer in the proto is dead code."""
    rpc_like = {
        name
        for name, _ in inspect.getmembers(MessageEventServicer, inspect.isfunction)
        if name[:1].isupper()
    }
    assert rpc_like == set(METHODS)


async def test_handlers_registers_every_rpc_with_its_cardinality(server: Any) -> None:
    generic = handlers(MessageEventServicer(server.running.store, TokenCodec(b"k" * 32)))
    for method in SERVICE.methods:
        handler = generic.service(_Details(f"/{SERVICE_NAME}/{method.name}"))  # type: ignore[attr-defined]
        assert handler is not None, method.name
        assert handler.request_streaming == method.client_streaming, method.name
        assert handler.response_streaming == method.server_streaming, method.name
    assert generic.service(_Details(f"/{SERVICE_NAME}/NoSuchMethod")) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("missing", METHODS)
async def test_handlers_refuses_a_servicer_missing_an_rpc(server: Any, missing: str) -> None:
    real = MessageEventServicer(server.running.store, TokenCodec(b"k" * 32))
    partial = types.SimpleNamespace(
        **{name: getattr(real, name) for name in METHODS if name != missing}
    )
    with pytest.raises(AttributeError, match=missing):
        handlers(partial)  # type: ignore[arg-type]


def test_generated_code_is_current() -> None:
    """The generated stub and servicer base know every RPC of the descriptor."""
    base = sgrpc.MessageEventServiceServicer
    for name in METHODS:
        assert callable(getattr(base, name, None)), name
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        stub = sgrpc.MessageEventServiceStub(channel)
        for name in METHODS:
            assert hasattr(stub, name), name
    finally:
        channel.close()


def _multicallable(channel: grpc.aio.Channel, method: Any) -> Any:
    path = f"/{SERVICE_NAME}/{method.name}"
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    return kind(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


@pytest.mark.parametrize("name", METHODS)
async def test_every_rpc_is_served_and_guarded(server: Any, name: str) -> None:
    """Called without a key over the wire: UNAUTHENTICATED, never UNIMPLEMENTED."""
    method = SERVICE.methods_by_name[name]
    call_with = _multicallable(server.channel, method)
    # Client streams send nothing: the key is checked when the call starts, and
    # a message still being sent when the server refuses the call would make
    # the client report its failed send (INTERNAL) instead of the status.
    request: Any = iter(()) if method.client_streaming else b""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        call = call_with(request, timeout=10)
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_method_is_unimplemented(server: Any) -> None:
    call = server.channel.unary_unary(
        f"/{SERVICE_NAME}/NoSuchMethod",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"", metadata=server.metadata(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
