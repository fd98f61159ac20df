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
from mailevents_server.ingest.prepare import Rejection
from mailevents_server.store.base import Outcome, WriteResult
from mailevents_server.wire import LEN, VARINT, int_field, length_delimited, tag, varint

_R = spb.IngestResult
_INDEX = tag(_R.INDEX_FIELD_NUMBER, VARINT)
_EVENT_ID = tag(_R.EVENT_ID_FIELD_NUMBER, LEN)
_ID = tag(_R.ID_FIELD_NUMBER, VARINT)
_REASON = tag(_R.REASON_FIELD_NUMBER, LEN)
_STATUS_TAG = tag(_R.STATUS_FIELD_NUMBER, VARINT)
_STATUS = {
    Outcome.STORED: _STATUS_TAG + varint(spb.INGEST_STATUS_STORED),
    Outcome.DUPLICATE: _STATUS_TAG + varint(spb.INGEST_STATUS_DUPLICATE),
}
_REJECTED = _STATUS_TAG + varint(spb.INGEST_STATUS_REJECTED)
_STREAM = spb.IngestMessageEventsStreamResponse
_UNARY = spb.IngestMessageEventsResponse


def _written(w: WriteResult) -> bytes:
    """One IngestResult of a stored or duplicate event, framed as a repeated field."""
    eid = w.event_id.encode()
    body = b"".join(
        (
            _INDEX + varint(w.index) if w.index else b"",
            _EVENT_ID + varint(len(eid)) + eid if eid else b"",
            _STATUS[w.outcome],
            _ID + varint(w.id) if w.id else b"",
        )
    )
    return varint(len(body)) + body


def _rejected(r: Rejection) -> bytes:
    eid, reason = r.event_id.encode(), r.reason.encode()
    body = b"".join(
        (
            _INDEX + varint(r.index) if r.index else b"",
            _EVENT_ID + varint(len(eid)) + eid if eid else b"",
            _REJECTED,
            _REASON + varint(len(reason)) + reason if reason else b"",
        )
    )
    return varint(len(body)) + body


def results(
    field_number: int, written: Sequence[WriteResult], rejected: Sequence[Rejection]
) -> tuple[bytes, int, int]:
    """`repeated IngestResult` as field `field_number`, in request order; and how many
    events were stored and how many were duplicates."""
    key = tag(field_number, LEN)
    framed = [(w.index, _written(w)) for w in written]
    if rejected:
        framed += [(r.index, _rejected(r)) for r in rejected]
        framed.sort(key=lambda pair: pair[0])
    stored = sum(1 for w in written if w.outcome is Outcome.STORED)
    return (
        key + key.join([record for _, record in framed]) if framed else b"",
        stored,
        len(written) - stored,
    )


def stream_ack(
    sequence: int, batch_id: str, written: Sequence[WriteResult], rejected: Sequence[Rejection]
) -> tuple[bytes, int, int]:
    """A serialized IngestMessageEventsStreamResponse; and the stored and duplicate counts."""
    records, stored, duplicates = results(_STREAM.RESULTS_FIELD_NUMBER, written, rejected)
    return (
        b"".join(
            (
                int_field(_STREAM.SEQUENCE_FIELD_NUMBER, sequence),
                length_delimited(_STREAM.BATCH_ID_FIELD_NUMBER, batch_id.encode())
                if batch_id
                else b"",
                records,
                int_field(_STREAM.STORED_FIELD_NUMBER, stored),
                int_field(_STREAM.DUPLICATES_FIELD_NUMBER, duplicates),
                int_field(_STREAM.REJECTED_FIELD_NUMBER, len(rejected)),
            )
        ),
        stored,
        duplicates,
    )


def unary_ack(
    written: Sequence[WriteResult], rejected: Sequence[Rejection]
) -> tuple[bytes, int, int]:
    """A serialized IngestMessageEventsResponse; and the stored and duplicate counts."""
    records, stored, duplicates = results(_UNARY.RESULTS_FIELD_NUMBER, written, rejected)
    return (
        b"".join(
            (
                records,
                int_field(_UNARY.STORED_FIELD_NUMBER, stored),
                int_field(_UNARY.DUPLICATES_FIELD_NUMBER, duplicates),
                int_field(_UNARY.REJECTED_FIELD_NUMBER, len(rejected)),
            )
        ),
        stored,
        duplicates,
    )
