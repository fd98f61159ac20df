"""Event type names <-> the `EventType` enum.

The lowercase provider name (SparkPost's `type`, e.g. "spam_complaint") is the
name users type and dialects render; the enum is what is stored. A name we do
not know maps to EVENT_TYPE_UNSPECIFIED and is kept verbatim in
`MessageEvent.type_name`, so unknown types still round-trip.
"""

from __future__ import annotations

from mailevents.v1 import message_event_pb2 as pb

_PREFIX = "EVENT_TYPE_"

#: lowercase name -> enum value, for every known type (SparkPost's names).
TYPE_BY_NAME: dict[str, int] = {
    name[len(_PREFIX) :].lower(): value
    for name, value in pb.EventType.items()
    if value != pb.EVENT_TYPE_UNSPECIFIED
}

#: enum value -> lowercase name.
NAME_BY_TYPE: dict[int, str] = {value: name for name, value in TYPE_BY_NAME.items()}

#: SparkPost's event class ("message_event", "track_event", ...) per type.
CATEGORY_BY_TYPE: dict[int, str] = {
    **dict.fromkeys(
        (
            pb.EVENT_TYPE_INJECTION,
            pb.EVENT_TYPE_DELIVERY,
            pb.EVENT_TYPE_BOUNCE,
            pb.EVENT_TYPE_DELAY,
            pb.EVENT_TYPE_POLICY_REJECTION,
            pb.EVENT_TYPE_OUT_OF_BAND,
            pb.EVENT_TYPE_SPAM_COMPLAINT,
        ),
        "message_event",
    ),
    **dict.fromkeys(
        (pb.EVENT_TYPE_OPEN, pb.EVENT_TYPE_CLICK, pb.EVENT_TYPE_INITIAL_OPEN), "track_event"
    ),
    **dict.fromkeys(
        (pb.EVENT_TYPE_GENERATION_FAILURE, pb.EVENT_TYPE_GENERATION_REJECTION), "gen_event"
    ),
    **dict.fromkeys(
        (pb.EVENT_TYPE_LIST_UNSUBSCRIBE, pb.EVENT_TYPE_LINK_UNSUBSCRIBE), "unsubscribe_event"
    ),
    **dict.fromkeys(
        (
            pb.EVENT_TYPE_RELAY_INJECTION,
            pb.EVENT_TYPE_RELAY_REJECTION,
            pb.EVENT_TYPE_RELAY_DELIVERY,
            pb.EVENT_TYPE_RELAY_TEMPFAIL,
            pb.EVENT_TYPE_RELAY_PERMFAIL,
        ),
        "relay_event",
    ),
}


def parse_type(text: str) -> int | None:
    """The enum value for "bounce", "BOUNCE" or "EVENT_TYPE_BOUNCE"; None if unknown."""
    key = text.strip().lower()
    if key.startswith(_PREFIX.lower()):
        key = key[len(_PREFIX) :]
    return TYPE_BY_NAME.get(key)


def type_name(value: int) -> str:
    """The lowercase name of a known type ("" for EVENT_TYPE_UNSPECIFIED)."""
    return NAME_BY_TYPE.get(value, "")
