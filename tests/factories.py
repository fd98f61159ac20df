"""Builders for the tests: events with known fields, conditions, queries, and
helpers that read results and rich error statuses back through the real stub.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

#: 2023-11-14T22:13:20Z, a Tuesday: the default timestamp of a built event.
BASE_SECONDS = 1_700_000_000

ERROR_DOMAIN = "mailevents.dev"

_REPEATED = {"tags"}


def seconds(text: str) -> int:
    """Epoch seconds of an RFC 3339 time, e.g. "2024-03-10T02:30:00Z"."""
    return int(datetime.fromisoformat(text).timestamp())


def event(
    event_id: str,
    *,
    ts: int | str = BASE_SECONDS,
    type: int = pb.EVENT_TYPE_DELIVERY,
    **fields: Any,
) -> pb.MessageEvent:
    """A MessageEvent with `event_id`, a timestamp (epoch seconds or RFC 3339)
    and a type; any other MessageEvent field by keyword (None leaves it unset)."""
    ev = pb.MessageEvent(event_id=event_id, type=type)
    ev.timestamp.FromSeconds(seconds(ts) if isinstance(ts, str) else ts)
    for name, value in fields.items():
        if value is None:
            continue
        if name in _REPEATED:
            getattr(ev, name).extend(value)
        elif name == "metadata":
            ev.metadata.update(value)
        elif name == "send_time":
            ev.send_time.FromSeconds(seconds(value) if isinstance(value, str) else value)
        elif name == "geo_ip":
            ev.geo_ip.CopyFrom(value)
        else:
            setattr(ev, name, value)
    return ev


def events(
    count: int, *, prefix: str = "ev", start: int = BASE_SECONDS, step: int = 1, **fields: Any
) -> list[pb.MessageEvent]:
    """`count` events `prefix-0000`.. with timestamps start, start+step, ..."""
    return [event(f"{prefix}-{i:05d}", ts=start + i * step, **fields) for i in range(count)]


def cond(
    field: str,
    operator: int,
    *values: str,
    date_part: int = spb.DATE_PART_UNSPECIFIED,
    time_zone: str = "",
) -> spb.Condition:
    return spb.Condition(
        field=field,
        operator=operator,
        values=list(values),
        date_part=date_part,
        time_zone=time_zone,
    )


def query(
    *conditions: spb.Condition,
    start: int | str | None = None,
    end: int | str | None = None,
    order: int = spb.ORDER_UNSPECIFIED,
) -> spb.EventQuery:
    q = spb.EventQuery(conditions=list(conditions), order=order)
    if start is not None:
        q.start_time.FromSeconds(seconds(start) if isinstance(start, str) else start)
    if end is not None:
        q.end_time.FromSeconds(seconds(end) if isinstance(end, str) else end)
    return q


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def search_all(
    server: Any, q: spb.EventQuery | None = None, *, key: str | None = None, **request: Any
) -> list[pb.MessageEvent]:
    """Every event a SearchMessageEvents call streams, in order."""
    call = server.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(query=q or spb.EventQuery(), **request),
        metadata=server.metadata(key),
        timeout=60,
    )
    out: list[pb.MessageEvent] = []
    async for response in call:
        out.extend(response.events)
    return out


async def list_all(
    server: Any,
    q: spb.EventQuery | None = None,
    *,
    page_size: int = 1000,
    key: str | None = None,
) -> list[pb.MessageEvent]:
    """Every event, walking ListMessageEvents pages."""
    out: list[pb.MessageEvent] = []
    token = ""
    while True:
        page = await server.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(
                query=q or spb.EventQuery(), page_size=page_size, page_token=token
            ),
            metadata=server.metadata(key),
            timeout=60,
        )
        out.extend(page.events)
        token = page.next_page_token
        if not token:
            return out


def event_ids(found: Iterable[pb.MessageEvent]) -> list[str]:
    return [ev.event_id for ev in found]


def rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status a server sent in `grpc-status-details-bin`."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no rich status in {err.code()} {err.details()!r}")


def error_details(
    err: grpc.aio.AioRpcError,
) -> tuple[error_details_pb2.ErrorInfo, list[tuple[str, str]]]:
    """The ErrorInfo and the (field, description) violations of an error.

    Also checks what every error of ours must satisfy: a known status code, the
    rich status agreeing with it, our domain, and no exception text.
    """
    assert err.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), err
    assert "Traceback" not in (err.details() or "")
    status = rich_status(err)
    assert status.code == err.code().value[0]
    assert "Traceback" not in status.message
    info: error_details_pb2.ErrorInfo | None = None
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            assert info is None, "one ErrorInfo per status"
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    assert info is not None, "every error carries an ErrorInfo"
    assert info.domain == ERROR_DOMAIN
    assert info.reason and info.reason == info.reason.upper() and len(info.reason) <= 63
    return info, violations


def violation_fields(err: grpc.aio.AioRpcError) -> list[str]:
    return [field for field, _ in error_details(err)[1]]
