"""The one exception the client raises for a failed call, with the server's details unpacked.

The server explains INVALID_ARGUMENT with a `google.rpc.BadRequest` (one field
violation per problem) and tags every error with a `google.rpc.ErrorInfo`
reason. Both travel in the `grpc-status-details-bin` trailer, which a plain
`AioRpcError` leaves as opaque bytes; users should see them without knowing
that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = ["MailEventsError", "mapped_rpc_errors"]

_DETAILS_KEY = "grpc-status-details-bin"


class MailEventsError(Exception):
    """A call failed: the status `code`, the server's `message`, and the rich details.

    `field_violations` holds (field, description) pairs from `BadRequest`;
    `reason` and `domain` come from `ErrorInfo` (empty when the server, or a
    proxy in front of it, sent none); `retry_delay` is `RetryInfo`'s delay in
    seconds, set when the server says the call may be sent again after it.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: list[tuple[str, str]] | None = None,
        reason: str = "",
        domain: str = "",
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations or []
        self.reason = reason
        self.domain = domain
        self.retry_delay = retry_delay

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> MailEventsError:
        """Unpack a failed call's status and its `google.rpc.Status` details, if any."""
        violations: list[tuple[str, str]] = []
        reason = domain = ""
        retry_delay: float | None = None
        for detail in _status_details(error):
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain = info.reason, info.domain
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay = retry.retry_delay.ToNanoseconds() / 1e9
        return cls(error.code(), error.details() or "", violations, reason, domain, retry_delay)


@contextlib.contextmanager
def mapped_rpc_errors() -> Iterator[None]:
    """Raise a failed call inside the block as `MailEventsError`: the one place
    where the client turns grpc.aio's `AioRpcError` into its own error."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise MailEventsError.from_rpc_error(exc) from exc


def _status_details(error: grpc.aio.AioRpcError) -> list[AnyProto]:
    """The `Any` details of the rich status in the trailers; none when absent or garbled."""
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return list(status_pb2.Status.FromString(value).details)
            except DecodeError:
                return []  # a broken trailer must not hide the status it came with
    return []
