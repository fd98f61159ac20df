"""Request bytes that are not the request message: INVALID_ARGUMENT, not UNKNOWN.

grpc.aio deserializes a request before any handler or interceptor code runs,
and a deserializer that raises makes it answer UNKNOWN with the exception's
text (`Unexpected <class 'DecodeError'>: ...`) and log a traceback. The
deserializers `lenient` builds return a `MalformedRequest` marker instead,
after one log line; the auth guard turns the marker into an ordinary
INVALID_ARGUMENT status (see `auth._Guard`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message

from mailevents_server.errors import InvalidArgument

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MalformedRequest:
    """Stands in for a request whose bytes did not parse as `message_type`."""

    message_type: str
    problem: str

    def error(self) -> InvalidArgument:
        """The status the caller gets: plain words, no parser internals."""
        return InvalidArgument(
            f"the request is not a valid {self.message_type} message "
            "(invalid UTF-8 in a string field, a truncated field or not protobuf at all)",
            "MALFORMED_REQUEST",
        )


def lenient(request_class: Any) -> Callable[[bytes], Any]:
    """`request_class.FromString`, answering a MalformedRequest instead of raising.

    protobuf refuses invalid UTF-8 in string fields, truncated varints and
    other garbage with DecodeError.
    """
    name = request_class.DESCRIPTOR.name

    def deserialize(data: bytes) -> Any:
        try:
            return request_class.FromString(data)
        except message.DecodeError as exc:
            log.warning("malformed %s refused (%d bytes): %s", name, len(data), exc)
            return MalformedRequest(name, str(exc))

    return deserialize
