"""Rebuilding a gRPC method handler around its behaviour, for server interceptors.

A grpc.aio handler is one of four kinds (unary or streaming requests, unary
or streaming responses), each made by its own constructor. An interceptor
that wraps the behaviour wants only two cases: a call that returns once and a
call that yields. `wrapped` picks the kind and keeps the (de)serializers, so
each interceptor says what it does around a call and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

#: A handler's behaviour that returns once: (request or request iterator, context).
Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
#: A handler's behaviour that yields its responses.
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


def wrapped(
    handler: grpc.RpcMethodHandler,
    unary: Callable[[Unary, bool], Unary],
    streaming: Callable[[Streaming, bool], Streaming],
) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour `inner` replaced by `unary(inner, many)` or
    `streaming(inner, many)`; `many` says whether the requests are a stream."""
    make: Callable[..., grpc.RpcMethodHandler]
    behaviour: Unary | Streaming
    if handler.unary_unary is not None:
        behaviour = unary(handler.unary_unary, False)
        make = grpc.unary_unary_rpc_method_handler
    elif handler.stream_unary is not None:
        behaviour = unary(handler.stream_unary, True)
        make = grpc.stream_unary_rpc_method_handler
    elif handler.unary_stream is not None:
        behaviour = streaming(handler.unary_stream, False)
        make = grpc.unary_stream_rpc_method_handler
    else:
        behaviour = streaming(handler.stream_stream, True)
        make = grpc.stream_stream_rpc_method_handler
    return make(behaviour, handler.request_deserializer, handler.response_serializer)
