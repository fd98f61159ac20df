"""The write path's core: what makes an event acceptable, and how it becomes a row.

Stores receive `PreparedEvent`s only: validated, normalised, serialized once,
with their typed columns extracted in `fields.DATA_COLUMNS` order. A store's
job is then to deduplicate on (tenant, event_id), assign ids in commit order
and write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mailevents.event_types import CATEGORY_BY_TYPE, parse_type, type_name
from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.query.fields import FIELDS, TAG_SEP, Kind
from mailevents_server.query.validate import timestamp_us

MAX_EVENT_ID_LENGTH = 256
MAX_EVENT_BYTES = 256 * 1024


@dataclass(slots=True)
class PreparedEvent:
    """An event ready to store: its index in the request, key, columns and body.

    Not frozen: ingest makes one per event, and a frozen dataclass pays an
    `object.__setattr__` call per field to be built.
    """

    index: int
    event_id: str
    columns: tuple[Any, ...]
    body: bytes  # the serialized MessageEvent, id not set


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str
    reason: str


class _Invalid:
    """A column's value when its field cannot be stored; `_problem` says why."""


#: A Timestamp outside the years 1-9999.
_OUT_OF_RANGE = _Invalid()
#: Tags of which one contains the separator the column joins them with.
_SEPARATOR_IN_TAG = _Invalid()


def _time_us(ts: Any) -> int | _Invalid:
    us = timestamp_us(ts)
    return _OUT_OF_RANGE if us is None else us


def _tags(tags: Sequence[str]) -> str | _Invalid:
    joined = TAG_SEP.join(("", *tags, ""))
    return joined if joined.count(TAG_SEP) == len(tags) + 1 else _SEPARATOR_IN_TAG


_DATA_FIELDS = tuple(f for f in FIELDS if f.name != "id")
_CONVERT: dict[Kind, Callable[[Any], Any]] = {
    Kind.TIMESTAMP: _time_us,
    Kind.TAGS: _tags,
    Kind.BOOL: int,
}
_DESCRIPTORS = pb.MessageEvent.DESCRIPTOR.fields_by_name
#: Field descriptor -> (column position, conversion or None), for the fields an
#: event carries itself; `recipient_domain` is derived, so it has no slot.
#: Keyed by descriptor (one object per field, hashed by identity): cheaper to
#: look up than its name, which would first have to be fetched.
_SLOTS: dict[Any, tuple[int, Callable[[Any], Any] | None]] = {
    _DESCRIPTORS[f.name]: (pos, _CONVERT.get(f.kind))
    for pos, f in enumerate(_DATA_FIELDS)
    if f.name != "recipient_domain"
}
#: Fields that are not columns but must hold the text of a JSON object.
_JSON_OBJECT_FIELDS = {_DESCRIPTORS[name]: name for name in ("extra_json", "substitutions_json")}
#: What a column holds when its field is not set: NULL, except for the plain
#: proto3 scalars that ListFields omits at their zero value.
_DEFAULTS: list[Any] = [0 if f.name in ("type", "archived") else None for f in _DATA_FIELDS]


def _position(name: str) -> int:
    return next(pos for pos, f in enumerate(_DATA_FIELDS) if f.name == name)


_EVENT_ID, _TYPE, _TYPE_NAME = _position("event_id"), _position("type"), _position("type_name")
_TIMESTAMP, _SEND_TIME, _TAGS = _position("timestamp"), _position("send_time"), _position("tags")
_RECIPIENT, _DOMAIN = _position("recipient"), _position("recipient_domain")


def _columns(ev: pb.MessageEvent) -> tuple[list[Any], str]:
    """An event's column values, and the first of its non-column fields that is
    not the JSON object it must be ("" when none).

    One `ListFields` call (C) names exactly the fields that are set, with
    presence as HasField would judge it; asking each of 44 columns in turn
    costs twice as much, and ingest runs this for every event. Validation
    (`_problem`) then reads the values from here instead of asking again.
    """
    cols = _DEFAULTS.copy()
    slots = _SLOTS
    bad_json = ""
    for descriptor, value in ev.ListFields():
        slot = slots.get(descriptor)
        if slot is not None:
            pos, convert = slot
            cols[pos] = value if convert is None else convert(value)
        elif descriptor in _JSON_OBJECT_FIELDS and not bad_json and not _is_json_object(value):
            bad_json = _JSON_OBJECT_FIELDS[descriptor]
    recipient = cols[_RECIPIENT]
    if recipient is not None and "@" in recipient:
        cols[_DOMAIN] = recipient.rsplit("@", 1)[1].lower()
    return cols, bad_json


def prepare(events: Sequence[pb.MessageEvent]) -> tuple[list[PreparedEvent], list[Rejection]]:
    """Validate and normalise a batch; malformed events are rejected one by one."""
    ready: list[PreparedEvent] = []
    rejected: list[Rejection] = []
    for index, original in enumerate(events):
        ev = _normalised(original)
        cols, bad_json = _columns(ev)
        reason = _problem(cols, bad_json)
        if reason:
            rejected.append(Rejection(index, original.event_id, reason))
            continue
        body = ev.SerializeToString()
        if len(body) > MAX_EVENT_BYTES:
            rejected.append(
                Rejection(index, ev.event_id, f"event larger than {MAX_EVENT_BYTES} bytes")
            )
            continue
        ready.append(PreparedEvent(index, ev.event_id, tuple(cols), body))
    return ready, rejected


#: Every EventType number this build knows; a newer producer's may not be one.
_TYPE_VALUES = frozenset(pb.EventType.values())


def _problem(cols: list[Any], bad_json: str) -> str:
    """Why an event (its normalised columns) cannot be stored, or "" when it can.

    Normalising first changes none of these answers: it fills `type` only from
    a `type_name` that names one, and `type_name` only from a known `type`.
    """
    event_id = cols[_EVENT_ID] or ""
    if not event_id.strip():
        return "event_id is required"
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        return f"event_id longer than {MAX_EVENT_ID_LENGTH} characters"
    event_type = cols[_TYPE]
    if event_type == pb.EVENT_TYPE_UNSPECIFIED and not (cols[_TYPE_NAME] or "").strip():
        return "type or type_name is required"
    if event_type not in _TYPE_VALUES:
        return f"unknown type value {event_type}"
    timestamp = cols[_TIMESTAMP]
    if timestamp is None:
        return "timestamp is required"
    if timestamp is _OUT_OF_RANGE:
        return "timestamp is out of range"
    if cols[_SEND_TIME] is _OUT_OF_RANGE:
        return "send_time is out of range"
    if cols[_TAGS] is _SEPARATOR_IN_TAG:
        return "tags must not contain the U+001F separator"
    if bad_json:
        return f"{bad_json} must be the text of a JSON object"
    return ""


def _is_json_object(text: str) -> bool:
    # orjson, not json: it refuses nesting past 1,024 levels instead of
    # recursing into a RecursionError, and NaN/Infinity, which are not JSON.
    try:
        return isinstance(orjson.loads(text), dict)
    except ValueError:
        return False


def _normalised(original: pb.MessageEvent) -> pb.MessageEvent:
    """Fill what can be derived, so every stored event is complete the same way.

    The caller's message is left as it is: an event that needs a change is
    copied first. Most producers send complete events, which skip the copy.
    """
    if (
        original.id == 0
        and original.type != pb.EVENT_TYPE_UNSPECIFIED
        and original.type_name
        and (original.HasField("event_category") or original.type not in CATEGORY_BY_TYPE)
    ):
        return original
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
