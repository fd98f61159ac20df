"""Read-mask projection: the batch path is byte for byte the per-event copy.

The reference below is how a projection is defined: parse each stored event as
a `MessageEvent`, copy the kept fields into a fresh one (`FieldMask.MergeMessage`
semantics), serialize. The served path never builds a message per event; these
tests hold it to the reference over every field and every event type of the
demo data, and over the shapes demo data lacks (unknown fields, present but
empty values, big maps, unknown enum values).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from google.protobuf import field_mask_pb2

from mailevents.v1 import message_event_pb2 as pb
from mailevents_server import wire
from mailevents_server.demo import generate_events
from mailevents_server.ingest import prepare
from mailevents_server.projection import Projection, mask_tree

_FIELDS = [f.name for f in pb.MessageEvent.DESCRIPTOR.fields]
_NESTED = [
    f"{f.name}.{sub.name}"
    for f in pb.MessageEvent.DESCRIPTOR.fields
    if f.message_type is not None and not f.is_repeated
    for sub in f.message_type.fields
]


def reference(paths: list[str], stored: bytes) -> bytes:
    """The definition: one parsed event, its kept fields merged into a fresh one."""
    full = pb.MessageEvent.FromString(wire.event_payload(stored))
    projected = pb.MessageEvent()
    field_mask_pb2.FieldMask(paths=paths).MergeMessage(full, projected)
    return wire.length_delimited(1, projected.SerializeToString())


def stored_events(events: list[pb.MessageEvent]) -> list[bytes]:
    """Events as a store keeps them: prepared by ingest, framed with an assigned id."""
    ready, rejected = prepare(events)
    assert not rejected
    return [wire.stored_event(i + 1, p.body) for i, p in enumerate(ready)]


@pytest.fixture(scope="module")
def demo() -> list[bytes]:
    """Demo events: enough that every event type appears, in several shapes."""
    events = list(generate_events(20_000, now=datetime(2025, 6, 1, tzinfo=UTC), seed=7))
    types = {ev.type for ev in events}
    # Every type the demo world makes (it has no initial_open; edge_events has one).
    made = set(pb.EventType.values()) - {pb.EVENT_TYPE_UNSPECIFIED, pb.EVENT_TYPE_INITIAL_OPEN}
    assert types >= made
    return stored_events(events)


def records(payload: bytes) -> list[tuple[int, bytes]]:
    """A serialized message as its top-level field records, in wire order."""
    out, pos = [], 0
    while pos < len(payload):
        start = pos
        key, pos = _varint(payload, pos)
        kind = key & 7
        if kind == 0:
            _, pos = _varint(payload, pos)
        elif kind == 1:
            pos += 8
        elif kind == 5:
            pos += 4
        else:
            assert kind == 2, kind
            length, pos = _varint(payload, pos)
            pos += length
        out.append((key >> 3, payload[start:pos]))
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def assert_same(paths: list[str], stored: list[bytes]) -> None:
    """The batch path gives the reference's bytes, event by event.

    Map entries are the one place where the reference has no fixed order: it
    re-inserts them into a hash table whose iteration order depends on the
    process's hash seed, so the same stored event projects differently from
    run to run. The batch path keeps them in stored order, as the whole event
    carries them; they must be the same entries.
    """
    got = Projection(field_mask_pb2.FieldMask(paths=paths)).apply_many(stored)
    events = records(got)
    assert len(events) == len(stored)
    for (number, record), s in zip(events, stored, strict=True):
        assert number == 1
        want = reference(paths, s)
        if record == want:
            continue
        mine, theirs = records(wire.event_payload(record)), records(wire.event_payload(want))
        is_map = _MAP_NUMBER.__eq__
        assert [r for r in mine if not is_map(r[0])] == [r for r in theirs if not is_map(r[0])]
        kept = [r for r in mine if is_map(r[0])]
        assert sorted(kept) == sorted(r for r in theirs if is_map(r[0]))
        assert kept == [r for r in records(wire.event_payload(s)) if is_map(r[0])]
        assert [n for n, _ in mine] == sorted(n for n, _ in mine)  # field-number order


_MAP_NUMBER = pb.MessageEvent.DESCRIPTOR.fields_by_name["metadata"].number


@pytest.mark.parametrize("path", _FIELDS + _NESTED)
def test_every_field_alone_matches_the_copy(demo: list[bytes], path: str) -> None:
    assert_same([path], demo)


@pytest.mark.parametrize(
    "paths",
    [
        ["id", "type", "timestamp", "recipient", "campaign_id"],
        ["campaign_id", "recipient", "timestamp", "type", "id"],  # order is irrelevant
        ["geo_ip.city", "geo_ip.latitude", "timestamp.seconds", "event_id"],
        ["geo_ip", "geo_ip.city"],  # the whole field covers its sub-path
        ["geo_ip.city", "geo_ip"],
        ["tags", "metadata", "extra_json", "substitutions_json"],
        ["id", "id", "type"],
        _FIELDS,
    ],
)
def test_field_sets_match_the_copy(demo: list[bytes], paths: list[str]) -> None:
    assert_same(paths, demo)


def test_every_field_set_over_each_event_type(demo: list[bytes]) -> None:
    """Each event type's first events, under masks of consecutive field triples."""
    by_type: dict[int, list[bytes]] = {}
    for s in demo:
        bucket = by_type.setdefault(pb.MessageEvent.FromString(wire.event_payload(s)).type, [])
        if len(bucket) < 20:
            bucket.append(s)
    sample = list(itertools.chain.from_iterable(by_type.values()))
    for i in range(len(_FIELDS)):
        assert_same(_FIELDS[i : i + 3], sample)


def with_unknown_fields(ev: pb.MessageEvent) -> bytes:
    """An event as a newer producer's build would store it: fields this build lacks,
    at the top level and inside a sub-message."""
    geo = ev.geo_ip.SerializeToString() + wire.length_delimited(9, b"planet")
    body = (
        ev.SerializeToString()
        + wire.length_delimited(47, geo)  # merges into geo_ip when parsed
        + wire.varint(60 << 3)
        + wire.varint(5)
        + wire.length_delimited(61, b"future")
    )
    return wire.stored_event(7, body)


def edge_events() -> list[bytes]:
    plain = pb.MessageEvent(event_id="e", type=pb.EVENT_TYPE_INITIAL_OPEN, type_name="open")
    plain.timestamp.FromSeconds(1_700_000_000)
    empty_present = pb.MessageEvent(event_id="empties", campaign_id="", recipient="", msg_size=0)
    empty_present.geo_ip.SetInParent()
    empty_present.send_time.SetInParent()
    big_map = pb.MessageEvent(event_id="map")
    big_map.metadata.update({f"key{i * 7919 % 1000}": str(i) for i in range(300)})
    big_map.tags.extend(["b", "a", "", "b"])
    negative = pb.MessageEvent(event_id="neg", num_retries=-3, bounce_class=-1, queue_time=-1)
    located = pb.MessageEvent(event_id="geo", geo_ip=pb.GeoIp(country="FR", latitude=-0.0))
    return [
        wire.stored_event(1, plain.SerializeToString()),
        wire.stored_event(2, empty_present.SerializeToString()),
        wire.stored_event(3, big_map.SerializeToString()),
        wire.stored_event(4, negative.SerializeToString()),
        wire.stored_event(5, located.SerializeToString()),
        # a type number a newer build knows (enums are open in proto3)
        wire.stored_event(6, b"\x18\x63" + wire.length_delimited(4, b"amp_open")),
        with_unknown_fields(located),
        wire.stored_event(2**40, b""),
    ]


@pytest.mark.parametrize(
    "paths",
    [[name] for name in _FIELDS + _NESTED]
    + [["event_id", "geo_ip.country"], ["geo_ip", "metadata", "type"], _FIELDS],
)
def test_edge_shapes_match_the_copy(paths: list[str]) -> None:
    assert_same(paths, edge_events())


def test_empty_batch_and_empty_results() -> None:
    projection = Projection(field_mask_pb2.FieldMask(paths=["campaign_id"]))
    assert projection.apply_many([]) == b""
    # An event without the field is still an event: an empty record, like the copy.
    assert projection.apply(edge_events()[0]) == b"\x0a\x00"


def test_mask_tree_covers_sub_paths_in_any_order() -> None:
    assert mask_tree(["geo_ip.city", "geo_ip", "id"]) == {"geo_ip": None, "id": None}
    assert mask_tree(["geo_ip", "geo_ip.city"]) == {"geo_ip": None}
    assert mask_tree(["geo_ip.city", "geo_ip.region"]) == {"geo_ip": {"city": None, "region": None}}
