"""`MessageEvent` -> SparkPost event JSON, in each type's documented shape (see the package)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from mailevents.event_types import (
    CATEGORY_BY_TYPE,
    NAME_BY_TYPE,
    type_name,
)
from mailevents.sparkpost.fields import (
    DAY,
    DESCRIPTORS,
    EPOCH,
    GENERIC_SHAPE,
    MAX_SECONDS,
    MIN_SECONDS,
    SHAPES,
    VERBATIM,
    Field,
    Kind,
    Shape,
)
from mailevents.v1 import message_event_pb2 as pb

#: A writer turns a present field's value into its JSON value; None means the
#: value is written as it is.
_Writer = Callable[[Any], Any]
#: (field, has presence, key, writer) per key after `type`, in render order.
_Plan = tuple[tuple[str, bool, str, _Writer | None], ...]


@dataclass(frozen=True, slots=True)
class _TypePlans:
    """What `event_to_sparkpost` renders for events of one type, worked out once."""

    type_name: str  # `type` for an event without type_name
    plain: _Plan
    lossless: _Plan


def event_to_sparkpost(ev: pb.MessageEvent, *, lossless: bool = False) -> dict[str, Any]:
    """The SparkPost Message Events API object for `ev`, in its type's documented shape.

    With ``lossless=True`` the object also carries full-precision timestamps and
    the mailevents extension keys, for exports that must read back unchanged.
    """
    plans = _PLANS.get(ev.type, _GENERIC_PLANS)
    # `type` is always rendered, and first: every shape begins with it.
    out: dict[str, Any] = {"type": ev.type_name or plans.type_name}
    # A field is rendered when ListFields would list it: a field with presence
    # when it is set, any other when it is not empty. Asking HasField of the few
    # fields a plan names is cheaper than ListFields building every (field, value).
    has = ev.HasField
    for field, presence, key, write in plans.lossless if lossless else plans.plain:
        if presence:
            if not has(field):
                continue
            value = getattr(ev, field)
        else:
            value = getattr(ev, field)
            if not value:
                continue
        if write is None:
            out[key] = value
        else:
            value = write(value)
            if value is not VERBATIM:
                out[key] = value
    extra_json = ev.extra_json
    if extra_json:
        extra = json.loads(extra_json)
        if not isinstance(extra, dict):
            raise ValueError("extra_json: must hold a JSON object")
        for key, value in extra.items():
            out.setdefault(key, value)
    return out


#: "THH:MM-00:00" and "THH:MM" per minute of the day, ":SS" per second of a minute.
_MINUTE_TEXT: Final = tuple(f"T{m // 60:02d}:{m % 60:02d}-00:00" for m in range(1440))
_CLOCK_TEXT: Final = tuple(f"T{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_SECOND_TEXT: Final = tuple(f":{s:02d}" for s in range(60))


def _seconds(stamp: Timestamp) -> int:
    """`stamp`'s seconds; a moment outside the years 1-9999 raises `OverflowError`."""
    seconds: int = stamp.seconds
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        EPOCH + dt.timedelta(seconds=seconds)  # raises just as the datetime arithmetic would
    return seconds


@functools.lru_cache(maxsize=4096)
def _date_text(day: int) -> str:
    """ "YYYY-MM-DD" of a day since 1970-01-01 in the years 1-9999; few days recur."""
    moment = EPOCH + dt.timedelta(days=day)
    return f"{moment.year:04d}-{moment:%m-%d}"


def _write_minutes(stamp: Timestamp) -> str:
    """The document's form: UTC, minute precision, "-00:00"."""
    day, second = divmod(_seconds(stamp), DAY)
    return _date_text(day) + _MINUTE_TEXT[second // 60]


def _write_rfc3339(stamp: Timestamp) -> str:
    """Lossless: seconds and fraction kept, "Z"."""
    day, second = divmod(_seconds(stamp), DAY)
    minute, second = divmod(second, 60)
    nanos = stamp.nanos
    fraction = f".{nanos:09d}".rstrip("0") + "Z" if nanos else "Z"
    return _date_text(day) + _CLOCK_TEXT[minute] + _SECOND_TEXT[second] + fraction


def _write_epoch(stamp: Timestamp) -> int:
    """The document's out_of_band sample: integer epoch seconds."""
    return _seconds(stamp)


def _write_meta(metadata: Mapping[str, str]) -> dict[str, str]:
    """Keys sorted: a protobuf map keeps no order, and sorted is stable across reads."""
    return {key: metadata[key] for key in sorted(metadata)}


def _write_geo(geo: pb.GeoIp) -> dict[str, str]:
    return {
        "country": geo.country,
        "region": geo.region,
        "city": geo.city,
        "latitude": _format_coordinate(geo.latitude),
        "longitude": _format_coordinate(geo.longitude),
    }


def _format_coordinate(value: float) -> str:
    """SparkPost's string form of a coordinate: shortest exact digits, no trailing ".0"."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _write_category(expected: str | None) -> _Writer:
    """Only a category reading would not infer again from the type is worth writing."""

    def write(category: str) -> Any:
        return VERBATIM if category == expected else category

    return write


def _writer(spec: Field, shape: Shape, category: str | None, lossless: bool) -> _Writer | None:
    """The writer of one field in one type's plan; None when the value is written as is."""
    kind = spec.kind
    if kind is Kind.TIME:
        if lossless:
            return _write_rfc3339
        return _write_epoch if shape.epoch_timestamp and spec.key == "timestamp" else _write_minutes
    if kind is Kind.CATEGORY:
        return _write_category(category)
    # TEXT: a string; NUMBER: a JSON number; FLAG: only present when true.
    return _WRITER_KINDS.get(kind)


_WRITER_KINDS: Final[dict[Kind, _Writer]] = {
    Kind.COUNT: str,
    Kind.TAGS: list,
    Kind.META: _write_meta,
    Kind.SUBS: json.loads,
    Kind.GEO: _write_geo,
}


def _plans(shape: Shape, name: str, category: str | None) -> _TypePlans:
    """The render plans of a type: its shape, its name and its usual category."""

    def plan(order: tuple[Field, ...], lossless: bool) -> _Plan:
        first, *rest = order
        if first.kind is not Kind.TYPE:
            raise AssertionError("every shape begins with `type`")
        return tuple(
            (
                f.field,
                DESCRIPTORS[f.field].has_presence,
                f.key,
                _writer(f, shape, category, lossless),
            )
            for f in rest
        )

    return _TypePlans(name, plan(shape.order, False), plan(shape.lossless_order, True))


#: Every type something is known of; any other renders with `_GENERIC_PLANS`.
_PLANS: Final[dict[int, _TypePlans]] = {
    t: _plans(SHAPES.get(t, GENERIC_SHAPE), type_name(t), CATEGORY_BY_TYPE.get(t))
    for t in {*SHAPES, *CATEGORY_BY_TYPE, *NAME_BY_TYPE}
}
#: A type with no name, shape or category of its own: `type_name(t)` is "" and
#: `CATEGORY_BY_TYPE.get(t)` is None for every `t` not in `_PLANS`.
_GENERIC_PLANS: Final = _plans(GENERIC_SHAPE, "", None)
