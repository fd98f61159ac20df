"""Hand-made ingest acknowledgements are byte for byte the generated classes' output."""

from __future__ import annotations

import pytest

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest import Rejection
from mailevents_server.ingest import acks as ack_wire
from mailevents_server.store.base import Outcome, WriteResult

_STATUS = {Outcome.STORED: spb.INGEST_STATUS_STORED, Outcome.DUPLICATE: spb.INGEST_STATUS_DUPLICATE}


def as_message(
    sequence: int, batch_id: str, written: list[WriteResult], rejected: list[Rejection]
) -> bytes:
    """The acknowledgement built as messages: the definition the bytes must match."""
    results = [
        spb.IngestResult(index=w.index, event_id=w.event_id, id=w.id, status=_STATUS[w.outcome])
        for w in written
    ] + [
        spb.IngestResult(
            index=r.index,
            event_id=r.event_id,
            status=spb.INGEST_STATUS_REJECTED,
            reason=r.reason,
        )
        for r in rejected
    ]
    results.sort(key=lambda r: r.index)
    stored = sum(1 for w in written if w.outcome is Outcome.STORED)
    return spb.IngestMessageEventsStreamResponse(
        sequence=sequence,
        batch_id=batch_id,
        results=results,
        stored=stored,
        duplicates=len(written) - stored,
        rejected=len(rejected),
    ).SerializeToString()


WRITTEN = [
    WriteResult(0, "first", Outcome.STORED, 1),
    WriteResult(2, "é-ünïcode-✓", Outcome.DUPLICATE, 1),
    WriteResult(3, "x" * 300, Outcome.STORED, 2**40),
    WriteResult(200, "big-index", Outcome.STORED, 127),
    WriteResult(20_000, "", Outcome.STORED, 128),
]
REJECTED = [
    Rejection(1, "", "event_id is required"),
    Rejection(4, "bad-ts", "timestamp is required"),
    Rejection(5, "no-reason", ""),
]


@pytest.mark.parametrize(
    ("sequence", "batch_id", "written", "rejected"),
    [
        (0, "", [], []),
        (1, "b-1", WRITTEN, []),
        (2**33, "批次", WRITTEN, REJECTED),
        (7, "", [], REJECTED),
        (0, "", WRITTEN[:1], REJECTED[:1]),
    ],
)
def test_stream_ack_matches_the_generated_message(
    sequence: int, batch_id: str, written: list[WriteResult], rejected: list[Rejection]
) -> None:
    got, stored, duplicates = ack_wire.stream_ack(sequence, batch_id, written, rejected)
    assert got == as_message(sequence, batch_id, written, rejected)
    parsed = spb.IngestMessageEventsStreamResponse.FromString(got)
    assert (stored, duplicates) == (parsed.stored, parsed.duplicates)
    assert [r.index for r in parsed.results] == sorted(r.index for r in parsed.results)
