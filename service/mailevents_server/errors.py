"""Domain errors, and the one place where they become gRPC statuses.

Code below the servicer raises these; `to_rpc_status` turns them into a
`google.rpc.Status` with `BadRequest` field violations and an `ErrorInfo`
(AIP-193). Anything else that escapes a handler is logged and answered as a
bare INTERNAL, so an exception's text never reaches a client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from mailevents_server.faults import Fault, classify

ERROR_DOMAIN = "mailevents.dev"

#: The RetryInfo delay of a transient store fault (connection lost, restart, lock).
RETRY_SECONDS = 1.0
#: The RetryInfo delay when storage is full: someone has to make room first.
FULL_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Violation:
    """One problem with one request field, named by its path (`query.conditions[0].field`)."""

    field: str
    description: str


@dataclass
class ServiceError(Exception):
    """An error with a status code, a message for humans and a reason for machines."""

    message: str
    reason: str = "ERROR"
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    violations: Sequence[Violation] = field(default_factory=tuple)
    #: Sent as `google.rpc.RetryInfo`: the call may be sent again after this many seconds.
    retry_delay: float | None = None

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ServiceError):
    """The request is malformed; `violations` says where."""

    def __init__(
        self, message: str, reason: str = "INVALID_ARGUMENT", violations: Sequence[Violation] = ()
    ) -> None:
        super().__init__(message, reason, grpc.StatusCode.INVALID_ARGUMENT, tuple(violations))

    @classmethod
    def of(cls, violations: Sequence[Violation], reason: str) -> InvalidArgument:
        """One summary line for the message; every detail stays in the field violations."""
        first = violations[0]
        more = f" (and {len(violations) - 1} more, see the field violations)"
        return cls(
            f"{first.field}: {first.description}" + (more if len(violations) > 1 else ""),
            reason,
            violations,
        )


class NotFound(ServiceError):
    def __init__(self, message: str, reason: str = "NOT_FOUND") -> None:
        super().__init__(message, reason, grpc.StatusCode.NOT_FOUND)


class Unauthenticated(ServiceError):
    def __init__(self, message: str, reason: str = "UNAUTHENTICATED") -> None:
        super().__init__(message, reason, grpc.StatusCode.UNAUTHENTICATED)


def invalid(field_path: str, description: str, reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
    """Shorthand for the common case of a single bad field."""
    return InvalidArgument(
        f"{field_path}: {description}", reason, [Violation(field_path, description)]
    )


def to_rpc_status(err: ServiceError) -> status_pb2.Status:
    """The rich status for a domain error: ErrorInfo always, BadRequest when fields are named."""
    details = []
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN)
    details.append(_pack(info))
    if err.violations:
        # The status travels in trailing metadata, which clients refuse past
        # 8-16 KiB (turning it into RESOURCE_EXHAUSTED): descriptions echo
        # request values, so clip them and keep only as many as fit a budget.
        bad = error_details_pb2.BadRequest()
        for v in err.violations:
            fv = bad.field_violations.add(
                field=_clip(v.field, 200), description=_clip(v.description, 1000)
            )
            if len(bad.field_violations) > 1 and bad.ByteSize() > _VIOLATION_BUDGET:
                bad.field_violations.remove(fv)
                break
        details.append(_pack(bad))
    if err.retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(err.retry_delay * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(
        code=err.code.value[0], message=_clip(err.message, 500), details=details
    )


#: Bytes of field violations sent at most (gRPC's default soft metadata limit is 8 KiB).
_VIOLATION_BUDGET = 3000


def _clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, marked with an ellipsis when cut."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode(errors="ignore") + "…"


def store_refusal(exc: BaseException) -> ServiceError | None:
    """The status for a store fault (see `faults`), or None for anything else.

    Transient faults are UNAVAILABLE and full storage RESOURCE_EXHAUSTED, both
    with a RetryInfo: sending the same events again later is safe, as ingest
    is idempotent on event_id. The driver's text stays in the server log.
    """
    fault = classify(exc)
    if fault is Fault.FULL:
        return ServiceError(
            "storage is full: nothing more can be stored until an operator makes room; "
            "events acknowledged before are kept, and reads go on",
            "STORAGE_FULL",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            retry_delay=FULL_RETRY_SECONDS,
        )
    if fault is Fault.TRANSIENT:
        return ServiceError(
            "the event store is unavailable for the moment; send the call again "
            "(ingest is idempotent on event_id)",
            "STORE_UNAVAILABLE",
            grpc.StatusCode.UNAVAILABLE,
            retry_delay=RETRY_SECONDS,
        )
    return None


def internal_status() -> status_pb2.Status:
    """What a client sees for a bug of ours: no exception text, just where to look."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error; the server log has the details",
        details=[_pack(info)],
    )


def _pack(
    message: error_details_pb2.ErrorInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.RetryInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
