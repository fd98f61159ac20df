"""The write path's core: what makes an event acceptable, and how it becomes a row.

Stores receive `PreparedEvent`s only: validated, normalised, serialized once,
with their typed columns extracted in `fields.DATA_COLUMNS` order. A store's
job is then to deduplicate on (tenant, event_id), assign ids in commit order
and write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailevents.event_types import CATEGORY_BY_TYPE, parse_type, type_name
from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.query.fields import FIELDS, TAG_SEP, Kind
from mailevents_server.query.validate import timestamp_us

MAX_EVENT_ID_LENGTH = 256
MAX_EVENT_BYTES = 256 * 1024


@dataclass(frozen=True)
class PreparedEvent:
    """An event ready to store: its index in the request, key, columns and body."""

    index: int
    event_id: str
    columns: tuple[Any, ...]
    body: bytes  # the serialized MessageEvent, id not set


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str
    reason: str


def _optional(name: str) -> Callable[[pb.MessageEvent], Any]:
    return lambda ev: getattr(ev, name) if ev.HasField(name) else None


def _optional_time(name: str) -> Callable[[pb.MessageEvent], Any]:
    return lambda ev: timestamp_us(getattr(ev, name)) if ev.HasField(name) else None


def _domain(ev: pb.MessageEvent) -> str | None:
    if not ev.HasField("recipient") or "@" not in ev.recipient:
        return None
    return ev.recipient.rsplit("@", 1)[1].lower()


def _tags(ev: pb.MessageEvent) -> str | None:
    return TAG_SEP + TAG_SEP.join(ev.tags) + TAG_SEP if ev.tags else None


_SPECIAL: dict[str, Callable[[pb.MessageEvent], Any]] = {
    "event_id": lambda ev: ev.event_id,
    "type": lambda ev: ev.type,
    "type_name": lambda ev: ev.type_name,
    "timestamp": lambda ev: timestamp_us(ev.timestamp),
    "recipient_domain": _domain,
    "tags": _tags,
    "archived": lambda ev: int(ev.archived),
}

#: One getter per stored column, in DATA_COLUMNS order.
_GETTERS: tuple[Callable[[pb.MessageEvent], Any], ...] = tuple(
    _SPECIAL.get(f.name)
    or (_optional_time(f.name) if f.kind is Kind.TIMESTAMP else _optional(f.name))
    for f in FIELDS
    if f.name != "id"
)


def columns_of(ev: pb.MessageEvent) -> tuple[Any, ...]:
    """The typed column values of an event, as every store stores them."""
    return tuple(get(ev) for get in _GETTERS)


def prepare(events: Sequence[pb.MessageEvent]) -> tuple[list[PreparedEvent], list[Rejection]]:
    """Validate and normalise a batch; malformed events are rejected one by one."""
    ready: list[PreparedEvent] = []
    rejected: list[Rejection] = []
    for index, original in enumerate(events):
        reason = _problem(original)
        if reason:
            rejected.append(Rejection(index, original.event_id, reason))
            continue
        ev = _normalised(original)
        body = ev.SerializeToString()
        if len(body) > MAX_EVENT_BYTES:
            rejected.append(
                Rejection(index, ev.event_id, f"event larger than {MAX_EVENT_BYTES} bytes")
            )
            continue
        ready.append(PreparedEvent(index, ev.event_id, columns_of(ev), body))
    return ready, rejected


def _problem(ev: pb.MessageEvent) -> str:
    """Why an event cannot be stored, or "" when it can."""
    if not ev.event_id.strip():
        return "event_id is required"
    if len(ev.event_id) > MAX_EVENT_ID_LENGTH:
        return f"event_id longer than {MAX_EVENT_ID_LENGTH} characters"
    if ev.type == pb.EVENT_TYPE_UNSPECIFIED and not ev.type_name.strip():
        return "type or type_name is required"
    if ev.type not in pb.EventType.values():
        return f"unknown type value {ev.type}"
    if not ev.HasField("timestamp"):
        return "timestamp is required"
    if timestamp_us(ev.timestamp) is None:
        return "timestamp is out of range"
    if ev.HasField("send_time") and timestamp_us(ev.send_time) is None:
        return "send_time is out of range"
    if any(TAG_SEP in tag for tag in ev.tags):
        return "tags must not contain the U+001F separator"
    for name, text in (
        ("extra_json", ev.extra_json),
        ("substitutions_json", ev.substitutions_json),
    ):
        if text and not _is_json_object(text):
            return f"{name} must be the text of a JSON object"
    return ""


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _normalised(original: pb.MessageEvent) -> pb.MessageEvent:
    """Fill what can be derived, so every stored event is complete the same way."""
    ev = pb.MessageEvent()
    ev.CopyFrom(original)
    ev.id = 0  # store-assigned
    if ev.type == pb.EVENT_TYPE_UNSPECIFIED:
        ev.type = parse_type(ev.type_name) or pb.EVENT_TYPE_UNSPECIFIED  # type: ignore[assignment]
    if not ev.type_name:
        ev.type_name = type_name(ev.type)
    if not ev.HasField("event_category") and ev.type in CATEGORY_BY_TYPE:
        ev.event_category = CATEGORY_BY_TYPE[ev.type]
    return ev
