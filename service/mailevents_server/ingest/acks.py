"""Ingest acknowledgements as hand-made wire bytes.

An acknowledgement carries one `IngestResult` per event. Built as messages,
the results cost ~3 µs an event in the event loop (a message object per
result, then serializing them), which holds the GIL the SQLite writer
needs to bind rows: a third of the loop's share of ingest. Written directly
as bytes, with the varints of small numbers precomputed, they cost a
fraction of that. The bytes are exactly what serializing the messages gives
(proto3: a field at its default value is left out; fields in number order),
which tests/test_ingest_acks.py checks against the generated classes.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest import Rejection
from mailevents_server.store.base import Outcome, WriteResult
from mailevents_server.wire import length_delimited, varint

_STATUS = {
    Outcome.STORED: b"\x18" + varint(spb.INGEST_STATUS_STORED),
    Outcome.DUPLICATE: b"\x18" + varint(spb.INGEST_STATUS_DUPLICATE),
}
_REJECTED = b"\x18" + varint(spb.INGEST_STATUS_REJECTED)


def _written(w: WriteResult) -> bytes:
    """One IngestResult of a stored or duplicate event, framed as a repeated field."""
    eid = w.event_id.encode()
    body = b"".join(
        (
            b"\x08" + varint(w.index) if w.index else b"",
            b"\x12" + varint(len(eid)) + eid if eid else b"",
            _STATUS[w.outcome],
            b"\x20" + varint(w.id) if w.id else b"",
        )
    )
    return varint(len(body)) + body


def _rejected(r: Rejection) -> bytes:
    eid, reason = r.event_id.encode(), r.reason.encode()
    body = b"".join(
        (
            b"\x08" + varint(r.index) if r.index else b"",
            b"\x12" + varint(len(eid)) + eid if eid else b"",
            _REJECTED,
            b"\x2a" + varint(len(reason)) + reason if reason else b"",
        )
    )
    return varint(len(body)) + body


def results(
    field_number: int, written: Sequence[WriteResult], rejected: Sequence[Rejection]
) -> tuple[bytes, int, int]:
    """`repeated IngestResult` as field `field_number`, in request order; and how many
    events were stored and how many were duplicates."""
    tag = varint(field_number << 3 | 2)
    framed = [(w.index, _written(w)) for w in written]
    if rejected:
        framed += [(r.index, _rejected(r)) for r in rejected]
        framed.sort(key=lambda pair: pair[0])
    stored = sum(1 for w in written if w.outcome is Outcome.STORED)
    return (
        tag + tag.join([record for _, record in framed]) if framed else b"",
        stored,
        len(written) - stored,
    )


def _int_field(field_number: int, value: int) -> bytes:
    """A non-negative varint field, left out at zero (proto3)."""
    return varint(field_number << 3) + varint(value) if value else b""


def stream_ack(
    sequence: int, batch_id: str, written: Sequence[WriteResult], rejected: Sequence[Rejection]
) -> tuple[bytes, int, int]:
    """A serialized IngestMessageEventsStreamResponse; and the stored and duplicate counts."""
    records, stored, duplicates = results(3, written, rejected)
    return (
        b"".join(
            (
                _int_field(1, sequence),
                length_delimited(2, batch_id.encode()) if batch_id else b"",
                records,
                _int_field(4, stored),
                _int_field(5, duplicates),
                _int_field(6, len(rejected)),
            )
        ),
        stored,
        duplicates,
    )


def unary_ack(
    written: Sequence[WriteResult], rejected: Sequence[Rejection]
) -> tuple[bytes, int, int]:
    """A serialized IngestMessageEventsResponse; and the stored and duplicate counts."""
    records, stored, duplicates = results(1, written, rejected)
    return (
        b"".join(
            (
                records,
                _int_field(2, stored),
                _int_field(3, duplicates),
                _int_field(4, len(rejected)),
            )
        ),
        stored,
        duplicates,
    )
