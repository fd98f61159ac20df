"""Hand-made protobuf wire bytes, for the hot paths.

Each stored event is kept as the bytes of a length-delimited field 1, which
is how every response carries its events (`repeated MessageEvent events = 1`
in search and list responses, `MessageEvent event = 1` in get). A response
is then the concatenation of stored bytes plus a few trailing fields: no
message is built field by field and nothing is parsed on the way out.
"""

from __future__ import annotations

_TAG_ID = b"\x08"  # MessageEvent.id: field 1, varint


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


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """A field of wire type 2 (bytes, string, message)."""
    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


def stored_event(event_id: int, body_without_id: bytes) -> bytes:
    """The stored form of an event: field 1 holding the event with its id spliced in.

    A serialized message with field 1 prepended parses exactly as if the id
    had been set before serializing, so ingest serializes once and the store
    adds the id it assigns.
    """
    payload = b"".join((_TAG_ID, varint(event_id), body_without_id))
    return b"".join((b"\x0a", varint(len(payload)), payload))  # field 1, wire type 2


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
