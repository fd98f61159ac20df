"""Hand-made protobuf wire bytes, for the hot paths.

Each stored event is kept as the bytes of a length-delimited field 1, which
is how every response carries its events (`repeated MessageEvent events = 1`
in search and list responses, `MessageEvent event = 1` in get). A response
is then the concatenation of stored bytes plus a few trailing fields: no
message is built field by field and nothing is parsed on the way out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb

if TYPE_CHECKING:
    from mailevents_server.projection import Projection
    from mailevents_server.store.base import Row

#: Wire types (https://protobuf.dev/programming-guides/encoding/).
VARINT = 0
LEN = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: Every varint of one or two bytes, made once: event lengths are nearly all
#: below 16,384, and ingest frames every event twice.
_SHORT: tuple[bytes, ...] = tuple(_varint(v) for v in range(1 << 14))


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (int64 ids and lengths)."""
    return _SHORT[value] if value < 16384 else _varint(value)


def tag(field_number: int, wire_type: int) -> bytes:
    """A field's key: its number (take it from the generated `*_FIELD_NUMBER`) and wire type."""
    return varint(field_number << 3 | wire_type)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """A field of wire type LEN (bytes, string, message)."""
    return tag(field_number, LEN) + varint(len(payload)) + payload


def int_field(field_number: int, value: int) -> bytes:
    """A non-negative varint field, left out at zero (proto3's implicit presence)."""
    return tag(field_number, VARINT) + varint(value) if value else b""


_TAG_ID = tag(pb.MessageEvent.ID_FIELD_NUMBER, VARINT)
#: The field every read response carries its events in (`events`, or `event` in
#: get): one number, so stored bytes splice into any of them unchanged.
EVENTS_FIELD_NUMBER: int = spb.SearchMessageEventsResponse.EVENTS_FIELD_NUMBER
if {
    spb.ListMessageEventsResponse.EVENTS_FIELD_NUMBER,
    spb.WatchMessageEventsResponse.EVENTS_FIELD_NUMBER,
    spb.GetMessageEventResponse.EVENT_FIELD_NUMBER,
} != {EVENTS_FIELD_NUMBER}:
    raise AssertionError("every read response must carry its events in the same field")
_TAG_EVENTS = tag(EVENTS_FIELD_NUMBER, LEN)


def stored_event(event_id: int, body_without_id: bytes) -> bytes:
    """The stored form of an event: field 1 holding the event with its id spliced in.

    A serialized message with field 1 prepended parses exactly as if the id
    had been set before serializing, so ingest serializes once and the store
    adds the id it assigns.
    """
    payload = b"".join((_TAG_ID, varint(event_id), body_without_id))
    return b"".join((_TAG_EVENTS, varint(len(payload)), payload))


def event_payload(stored: bytes) -> bytes:
    """The serialized MessageEvent inside a stored event (the inverse framing)."""
    pos = 1  # the tag byte of field 1
    shift = length = 0
    while True:
        byte = stored[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return stored[pos : pos + length]
        shift += 7


# -- responses of stored events --------------------------------------------------

#: Keep each streamed message well under gRPC's default 4 MiB receive limit.
MAX_MESSAGE_BYTES = 3 * 1024 * 1024


def chunks(rows: list[Row]) -> list[list[Row]]:
    """Split rows so that no streamed message grows past MAX_MESSAGE_BYTES."""
    total = sum(len(r[2]) for r in rows)
    if total <= MAX_MESSAGE_BYTES:
        return [rows] if rows else []
    chunks: list[list[Row]] = []
    current: list[Row] = []
    size = 0
    for row in rows:
        if current and size + len(row[2]) > MAX_MESSAGE_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append(row)
        size += len(row[2])
    if current:
        chunks.append(current)
    return chunks


def events_bytes(rows: list[Row], projection: Projection | None, tail: bytes = b"") -> bytes:
    """Field 1 of a response for each row (stored bytes as they are, or projected),
    then `tail`: joined once, since a batch is hundreds of kilobytes to copy."""
    if projection is None:
        parts = [row[2] for row in rows]
        parts.append(tail)
        return b"".join(parts)
    return projection.apply_many([row[2] for row in rows]) + tail
