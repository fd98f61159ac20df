"""One channel to a mailevents server and the callables made on it.

Kept apart from `MailEventsClient` so that several clients (one per API key,
as a proxy makes them) share one channel, and so that the client itself is
only about calling conventions: keys, deadlines, errors, resuming.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1 import message_event_service_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_ADDRESS", "SERVICE_NAME", "Connection"]

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: The service's full name, as gRPC paths and health checks name it.
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["MessageEventService"].full_name
# Search batches of 10,000 wide events pass gRPC's 4 MiB default; the server
# raises its limits to the same figure.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Connection:
    """A channel (opened on first use, or the caller's) and the stubs on it.

    The channel is opened lazily because grpc.aio binds it to the running
    event loop, which does not exist yet when a client is constructed at
    import time or outside `asyncio.run`. A channel passed in belongs to the
    caller: `close` leaves it open.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.address = address
        self._tls = tls or root_certificates is not None
        self._root_certificates = root_certificates
        self._channel = channel
        self._owned = channel is None
        self._stub: Any = None
        self._raw_search: Any = None
        self._raw_ingest: Any = None
        self._health: Any = None

    @property
    def stub(self) -> Any:
        """The generated MessageEventServiceStub (untyped: no mypy-protobuf plugin)."""
        if self._stub is None:
            self._open()
        return self._stub

    @property
    def raw_search(self) -> Any:
        """SearchMessageEvents answering the bytes the server sent, unparsed."""
        if self._stub is None:
            self._open()
        return self._raw_search

    @property
    def raw_ingest(self) -> Any:
        """IngestMessageEvents taking a request already serialized."""
        if self._stub is None:
            self._open()
        return self._raw_ingest

    @property
    def health(self) -> Any:
        """The standard gRPC health stub (grpc.health.v1)."""
        if self._stub is None:
            self._open()
        return self._health

    def _open(self) -> None:
        if self._channel is None:
            options = [
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ]
            if self._tls:
                credentials = grpc.ssl_channel_credentials(self._root_certificates)
                self._channel = grpc.aio.secure_channel(self.address, credentials, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.address, options=options)
        channel = self._channel
        self._stub = pb_grpc.MessageEventServiceStub(channel)  # type: ignore[no-untyped-call]
        self._raw_search = channel.unary_stream(
            f"/{SERVICE_NAME}/SearchMessageEvents",
            request_serializer=pb.SearchMessageEventsRequest.SerializeToString,
            response_deserializer=None,
        )
        self._raw_ingest = channel.unary_unary(
            f"/{SERVICE_NAME}/IngestMessageEvents",
            request_serializer=None,
            response_deserializer=pb.IngestMessageEventsResponse.FromString,
        )
        self._health = health_pb2_grpc.HealthStub(channel)

    async def close(self) -> None:
        """Close the channel this connection opened; calls in flight are cancelled."""
        if self._channel is not None and self._owned:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()
