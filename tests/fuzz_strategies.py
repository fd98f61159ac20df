"""Hypothesis strategies for hostile input: values at and past int64, dates at the
calendar's ends, NaN and infinities, unicode, NUL and control characters, very
long strings, deep nesting; and protobuf requests built from their descriptors.

The example budget is a profile (see tests/conftest.py): small and
derandomized by default, so the suite is quick and never flakes; larger and
random with MAILEVENTS_FUZZ_EXAMPLES=N.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import descriptor as gdesc
from google.protobuf import message_factory
from hypothesis import strategies as st

from mailevents_server.query.fields import BY_NAME

INT64 = (-(2**63), 2**63 - 1)
INT_EDGES = [
    "0",
    "-1",
    "1",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999",
    "9" * 400,
    "1e999",
    "1e3",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "1_000",
    " 7 ",
    "",
]
DATE_EDGES = [
    "0001-01-01",
    "0001-01-15",
    "9999-12-15",
    "9999-12-31",
    "0000-00-00",
    "10000-01-01",
    "2024-02-30",
    "2024-13-01",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-12:00",
    "2024-06-01T10:00:00Z",
    "1972-01-01",
]
ZONES = ["UTC", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati", "Etc/GMT+12", "../etc"]
NASTY_CHARS = ["\x00", "\r\n", "\x7f", "é", "\u202e", "\ud7ff", "\U0001f4a9", "%", "_", "'", '"']

#: Text with no lone surrogates (they cannot be UTF-8 on any wire).
_ALPHABET = st.characters(exclude_categories=("Cs",))
plain_text = st.text(_ALPHABET, max_size=40)
long_text = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "é", "\x00", "9"]), st.integers(1000, 5000)
)
nasty_text = st.one_of(
    plain_text,
    st.sampled_from(INT_EDGES),
    st.sampled_from(DATE_EDGES),
    st.sampled_from(ZONES),
    st.sampled_from(NASTY_CHARS),
    st.lists(st.sampled_from(NASTY_CHARS + INT_EDGES[:6]), max_size=6).map("".join),
    long_text,
)


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Any JSON value, with the numbers and strings most likely to hurt."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        nasty_text,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(plain_text, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def json_text(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


#: Bodies no JSON value encodes: non-JSON numbers, deep nesting, broken bytes.
raw_bodies = st.sampled_from(
    [
        b"NaN",
        b"[Infinity]",
        b"[1e999]",
        b"[" + b"1" * 400 + b"]",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"\xff\xfe",
        b"",
        b"{",
        b"\x1f\x8b\x08\x00garbage",
    ]
)


# -- protobuf requests from their descriptors -----------------------------------

_INT_RANGES = {
    gdesc.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    gdesc.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    gdesc.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    gdesc.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    gdesc.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    gdesc.FieldDescriptor.TYPE_INT64: INT64,
    gdesc.FieldDescriptor.TYPE_SINT64: INT64,
    gdesc.FieldDescriptor.TYPE_SFIXED64: INT64,
    gdesc.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    gdesc.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_SECONDS_EDGES = [-62135596801, -62135596800, 0, 1_700_000_000, 253402300799, 253402300800]


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, 0, -1, 1, 2**31, 2**53) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _special(field: gdesc.FieldDescriptor) -> st.SearchStrategy[Any] | None:
    """Fields where realistic values reach deeper than random ones would."""
    name = field.full_name
    if name == "mailevents.v1.Condition.field":
        return st.one_of(st.just("timestamp"), st.sampled_from(sorted(BY_NAME)), nasty_text)
    if name == "mailevents.v1.Condition.date_part":
        return st.one_of(st.sampled_from(range(1, 8)), st.integers(-3, 40))
    if name == "mailevents.v1.CountMessageEventsRequest.group_by":
        return st.lists(st.integers(-1, 7), max_size=30)
    if name == "mailevents.v1.Condition.values":
        return st.lists(nasty_text, max_size=5)
    if name == "mailevents.v1.Condition.time_zone":
        return st.one_of(st.sampled_from(ZONES), nasty_text)
    if name == "google.protobuf.FieldMask.paths":
        return st.lists(st.one_of(st.sampled_from(["id", "event_id", "geo_ip.city"]), nasty_text))
    if name in ("google.protobuf.Timestamp.seconds", "google.protobuf.Duration.seconds"):
        return st.one_of(st.sampled_from(_SECONDS_EDGES), _integers(*INT64))
    if name.endswith(".follow"):
        return st.just(False)  # a live tail never ends by itself; tested elsewhere
    return None


def _field(field: gdesc.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    special = _special(field)
    if special is not None:
        return special
    one = _single(field, depth)
    if field.is_repeated:
        return st.lists(one, max_size=4)
    return one


def _single(field: gdesc.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INT_RANGES:
        return _integers(*_INT_RANGES[kind])
    if kind == gdesc.FieldDescriptor.TYPE_STRING:
        return nasty_text
    if kind == gdesc.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == gdesc.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (gdesc.FieldDescriptor.TYPE_DOUBLE, gdesc.FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if kind == gdesc.FieldDescriptor.TYPE_FLOAT else 64)
    if kind == gdesc.FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 40))
    if kind == gdesc.FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    raise AssertionError(field.full_name)


def messages(desc: gdesc.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of type `desc` with any subset of their fields set to hostile values."""
    cls = message_factory.GetMessageClass(desc)
    if depth > 3:
        return st.builds(cls)
    optional = {field.name: _field(field, depth) for field in desc.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


def _build(cls: Any, values: dict[str, Any]) -> Any:
    message = cls()
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.is_repeated:
            if field.type == gdesc.FieldDescriptor.TYPE_MESSAGE and not _is_map(field):
                for item in value:
                    target.add().CopyFrom(item)
            elif not _is_map(field):
                target.extend(value)
        elif field.type == gdesc.FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _is_map(field: gdesc.FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry
