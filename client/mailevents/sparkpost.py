"""SparkPost's event JSON <-> `MessageEvent`: the one place that knows the mapping.

Ingest (webhook batches, JSONL imports) and the SparkPost dialect of the REST shim
both speak SparkPost's event objects; keeping the mapping here means "SparkPost key
X is MessageEvent field Y" is written down exactly once, in `_FIELDS`, and both
directions read it.

Reading (`event_from_sparkpost`) is liberal, because producers are: numbers may
come as JSON numbers or strings, timestamps in any ISO 8601 form or as epoch
seconds, and a webhook's ``{"msys": {"<category>": {...}}}`` wrapper is unwrapped
(its key becomes `event_category`). A scalar of the wrong kind (a non-integer
`msg_size`, an unparseable `timestamp`) is an error, named in the `ValueError`.
A structured value we cannot type without loss (`rcpt_meta` with a non-string
value, a `geo_ip` without exactly the five seed keys, a `null`, empty `rcpt_tags`
or `rcpt_meta` whose presence would otherwise vanish) is not an error: it is kept
verbatim in `extra_json` under its own key, like every key we do not model.

Writing (`event_to_sparkpost`) reproduces the Message Events API document's
per-type sample shapes (`_SHAPES`): the same keys in the same order, numbers as
strings, `timestamp` as "YYYY-MM-DDTHH:MM-00:00" in UTC, except `out_of_band`,
whose sample carries integer epoch seconds. Choices where the document is silent:

- A key of the shape whose field the event lacks is omitted.
- Fields the event has outside its type's shape (`event_id`, `friendly_from`,
  `subaccount_id`, `sending_ip`, ...) follow the shape's keys in `_FIELDS` order,
  under SparkPost's own names, as SparkPost's later API versions return them.
  Dropping them would lose data; a SparkPost client ignores keys it does not use.
- `initial_open` takes the `open` shape. A type the document does not show (an
  unknown `type_name`) renders `type` followed by every present field in
  `_FIELDS` order.
- `rcpt_meta` is rendered with its keys sorted: a protobuf map keeps no order.
- Keys from `extra_json` come last; a key already rendered from a typed field
  keeps the typed value.
- ``lossless=True`` is for our own exports: timestamps keep their seconds and
  fraction (RFC 3339, "Z"), and the mailevents extension keys (`bulk_email_id`,
  `send_email_id`, `contact_id`, `send_time`, `archived`, and `event_category`
  when it differs from the type's usual one) are added, so that reading the
  output back gives an equal event.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from mailevents.event_types import CATEGORY_BY_TYPE, parse_type, type_name
from mailevents.v1 import message_event_pb2 as pb

__all__ = ["event_from_sparkpost", "event_to_sparkpost"]


class _Kind(enum.Enum):
    """How a value is read from SparkPost JSON and written back."""

    TYPE = "type"  # `type`: enum plus the original name
    TEXT = "text"  # string field; JSON numbers are stored as their string form
    COUNT = "count"  # integer field that SparkPost sends as a string
    NUMBER = "number"  # integer field rendered as a JSON number (our extensions)
    TIME = "time"  # Timestamp: ISO 8601 text or epoch seconds
    TAGS = "tags"  # list of strings
    META = "meta"  # object of string values
    SUBS = "subs"  # any object, stored as compact JSON text
    GEO = "geo"  # GeoIp
    FLAG = "flag"  # bool
    CATEGORY = "category"  # event_category: written only when not the type's usual one


@dataclass(frozen=True, slots=True)
class _Field:
    key: str  # SparkPost's key
    field: str  # MessageEvent's field
    kind: _Kind
    extension: bool = False  # a mailevents key, not SparkPost's: written only when lossless


_S, _C, _N = _Kind.TEXT, _Kind.COUNT, _Kind.NUMBER

#: Every SparkPost key we type, in the order fields are rendered outside a shape.
_FIELDS: Final[tuple[_Field, ...]] = (
    _Field("type", "type_name", _Kind.TYPE),
    _Field("event_id", "event_id", _S),
    _Field("timestamp", "timestamp", _Kind.TIME),
    _Field("message_id", "message_id", _S),
    _Field("transmission_id", "transmission_id", _S),
    _Field("campaign_id", "campaign_id", _S),
    _Field("template_id", "template_id", _S),
    _Field("template_version", "template_version", _S),
    _Field("customer_id", "customer_id", _S),
    _Field("subaccount_id", "subaccount_id", _S),
    _Field("rcpt_to", "recipient", _S),
    _Field("raw_rcpt_to", "raw_recipient", _S),
    _Field("msg_from", "sender", _S),
    _Field("friendly_from", "friendly_from", _S),
    _Field("mailfrom", "mail_from", _S),
    _Field("routing_domain", "routing_domain", _S),
    _Field("ip_address", "ip_address", _S),
    _Field("remote_addr", "remote_addr", _S),
    _Field("sending_ip", "sending_ip", _S),
    _Field("ip_pool", "ip_pool", _S),
    _Field("relay_id", "relay_id", _S),
    _Field("rcpt_tags", "tags", _Kind.TAGS),
    _Field("rcpt_meta", "metadata", _Kind.META),
    _Field("rcpt_subs", "substitutions_json", _Kind.SUBS),
    _Field("msg_size", "msg_size", _C),
    _Field("num_retries", "num_retries", _C),
    _Field("queue_time", "queue_time", _C),
    _Field("delv_method", "delivery_method", _S),
    _Field("bounce_class", "bounce_class", _C),
    _Field("error_code", "error_code", _S),
    _Field("reason", "reason", _S),
    _Field("raw_reason", "raw_reason", _S),
    _Field("fbtype", "fbtype", _S),
    _Field("report_by", "report_by", _S),
    _Field("report_to", "report_to", _S),
    _Field("user_str", "user_str", _S),
    _Field("target_link_name", "target_link_name", _S),
    _Field("target_link_url", "target_link_url", _S),
    _Field("user_agent", "user_agent", _S),
    _Field("geo_ip", "geo_ip", _Kind.GEO),
    _Field("bulk_email_id", "bulk_email_id", _N, extension=True),
    _Field("send_email_id", "send_email_id", _N, extension=True),
    _Field("contact_id", "contact_id", _N, extension=True),
    _Field("send_time", "send_time", _Kind.TIME, extension=True),
    _Field("archived", "archived", _Kind.FLAG, extension=True),
    _Field("event_category", "event_category", _Kind.CATEGORY, extension=True),
)
_BY_KEY: Final[dict[str, _Field]] = {f.key: f for f in _FIELDS}


@dataclass(frozen=True, slots=True)
class _Shape:
    epoch_timestamp: bool  # the document's out_of_band sample has epoch seconds
    order: tuple[_Field, ...]  # what to render: the keys, then every other SparkPost key
    lossless_order: tuple[_Field, ...]  # the same, then the mailevents extensions


def _shape(keys: str, *, epoch_timestamp: bool = False) -> _Shape:
    """A shape with its render orders worked out once, not per event."""
    listed = tuple(_BY_KEY[key] for key in keys.split())
    rest = tuple(f for f in _FIELDS if f not in listed)
    order = listed + tuple(f for f in rest if not f.extension)
    lossless_order = order + tuple(f for f in rest if f.extension)
    return _Shape(epoch_timestamp, order, lossless_order)


#: The Message Events API document's sample shape per type: its keys in its order.
_SHAPES: Final[dict[int, _Shape]] = {
    pb.EVENT_TYPE_BOUNCE: _shape(
        "type bounce_class campaign_id customer_id error_code ip_address message_id msg_from"
        " msg_size num_retries rcpt_meta rcpt_tags rcpt_to reason routing_domain template_id"
        " template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_DELIVERY: _shape(
        "type campaign_id customer_id ip_address message_id msg_from msg_size num_retries"
        " queue_time rcpt_meta rcpt_tags rcpt_to routing_domain template_id template_version"
        " timestamp transmission_id"
    ),
    pb.EVENT_TYPE_INJECTION: _shape(
        "type campaign_id customer_id message_id msg_from msg_size rcpt_meta rcpt_tags rcpt_to"
        " routing_domain template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_SPAM_COMPLAINT: _shape(
        "type campaign_id customer_id fbtype message_id rcpt_meta rcpt_to report_by report_to"
        " template_id timestamp user_str"
    ),
    pb.EVENT_TYPE_OUT_OF_BAND: _shape(
        "type bounce_class campaign_id customer_id error_code message_id msg_from rcpt_to"
        " reason routing_domain template_id template_version timestamp",
        epoch_timestamp=True,
    ),
    pb.EVENT_TYPE_POLICY_REJECTION: _shape(
        "type campaign_id customer_id error_code message_id msg_from rcpt_meta rcpt_tags"
        " rcpt_to reason remote_addr template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_DELAY: _shape(
        "type bounce_class campaign_id customer_id error_code ip_address message_id msg_from"
        " msg_size num_retries queue_time rcpt_meta rcpt_tags rcpt_to reason routing_domain"
        " template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_CLICK: _shape(
        "type campaign_id customer_id ip_address message_id rcpt_meta rcpt_tags rcpt_to"
        " target_link_name target_link_url template_id template_version timestamp"
        " transmission_id user_agent geo_ip"
    ),
    pb.EVENT_TYPE_OPEN: _shape(
        "type campaign_id customer_id ip_address message_id rcpt_meta rcpt_tags rcpt_to"
        " template_id template_version timestamp transmission_id user_agent geo_ip"
    ),
    pb.EVENT_TYPE_GENERATION_FAILURE: _shape(
        "type campaign_id customer_id error_code rcpt_meta rcpt_subs rcpt_tags rcpt_to reason"
        " routing_domain template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_GENERATION_REJECTION: _shape(
        "type campaign_id customer_id error_code rcpt_meta rcpt_subs rcpt_tags rcpt_to reason"
        " routing_domain template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_LIST_UNSUBSCRIBE: _shape(
        "type campaign_id customer_id mailfrom message_id rcpt_meta rcpt_tags rcpt_to"
        " template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_LINK_UNSUBSCRIBE: _shape(
        "type campaign_id customer_id mailfrom message_id rcpt_meta rcpt_tags rcpt_to"
        " template_id template_version timestamp transmission_id user_agent"
    ),
    pb.EVENT_TYPE_RELAY_INJECTION: _shape(
        "type rcpt_to msg_size routing_domain customer_id timestamp msg_from relay_id"
    ),
    pb.EVENT_TYPE_RELAY_REJECTION: _shape(
        "type reason rcpt_to error_code msg_from remote_addr timestamp customer_id relay_id"
    ),
    pb.EVENT_TYPE_RELAY_DELIVERY: _shape(
        "type routing_domain msg_from queue_time customer_id timestamp num_retries relay_id"
    ),
    pb.EVENT_TYPE_RELAY_TEMPFAIL: _shape(
        "type routing_domain msg_from queue_time customer_id timestamp num_retries reason"
        " error_code relay_id"
    ),
    pb.EVENT_TYPE_RELAY_PERMFAIL: _shape(
        "type routing_domain msg_from queue_time customer_id timestamp num_retries reason"
        " error_code relay_id"
    ),
}
_SHAPES[pb.EVENT_TYPE_INITIAL_OPEN] = _SHAPES[pb.EVENT_TYPE_OPEN]
#: For a type the document does not show: `type`, then every present field.
_GENERIC_SHAPE: Final = _shape("type")

_GEO_KEYS: Final = ("country", "region", "city", "latitude", "longitude")
_INTEGER_TEXT: Final = re.compile(r"[+-]?\d+")
_EPOCH_TEXT: Final = re.compile(r"[+-]?\d+(?:\.\d+)?")
_ISO_TEXT: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
    r"\s*(?:[Zz]|([+-])(\d\d)(?::?(\d\d))?)?"
)
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS: Final = -62_135_596_800
_MAX_SECONDS: Final = 253_402_300_799


_DESCRIPTORS: Final = pb.MessageEvent.DESCRIPTOR.fields_by_name
_INT32_TYPES: Final = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32)


def _integer_bounds(field: str) -> tuple[int, int]:
    """A field's range, from the descriptor, so out-of-range input is named, not a crash."""
    bits = 32 if _DESCRIPTORS[field].type in _INT32_TYPES else 64
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


_INTEGER_BOUNDS: Final = {
    f.field: _integer_bounds(f.field) for f in _FIELDS if f.kind in (_Kind.COUNT, _Kind.NUMBER)
}


class _Verbatim:
    """Marks a value that is kept as-is in extra_json rather than typed."""


_VERBATIM: Final = _Verbatim()


# ---------------------------------------------------------------- reading


def event_from_sparkpost(obj: Mapping[str, Any]) -> pb.MessageEvent:
    """A `MessageEvent` from one SparkPost event object or webhook ``msys`` wrapper.

    Raises `ValueError`, naming the field, for input that is not an event.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"a SparkPost event must be a JSON object, got {type(obj).__name__}")
    wrapper_category: str | None = None
    if "msys" in obj and "type" not in obj:
        wrapper_category, obj = _unwrap(obj)

    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        spec = _BY_KEY.get(key)
        parsed = _VERBATIM if spec is None or value is None else _READERS[spec.kind](key, value)
        if parsed is _VERBATIM:
            extra[key] = value
        elif spec is not None:
            values[spec.field] = parsed

    name = values.pop("type_name", None)
    if name is None:
        raise ValueError("type: required")
    values["type"] = event_type = parse_type(name) or pb.EVENT_TYPE_UNSPECIFIED
    if "timestamp" not in values:
        raise ValueError("timestamp: required")
    if wrapper_category is not None:
        inner = values.get("event_category")
        if inner is not None and inner != wrapper_category:
            raise ValueError(
                f"event_category: {inner!r} contradicts the msys wrapper {wrapper_category!r}"
            )
        values["event_category"] = wrapper_category
    elif "event_category" not in values and event_type in CATEGORY_BY_TYPE:
        values["event_category"] = CATEGORY_BY_TYPE[event_type]
    if extra:
        values["extra_json"] = _compact_json(extra)
    return pb.MessageEvent(type_name=name, **values)


def _compact_json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _unwrap(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The category and inner event of ``{"msys": {"<category>": {...}}}``."""
    msys = obj["msys"]
    if len(obj) != 1 or not isinstance(msys, Mapping) or len(msys) != 1:
        raise ValueError(
            'msys: a webhook event must be {"msys": {"<category>": {...}}} with one category'
        )
    ((category, inner),) = msys.items()
    if not isinstance(inner, Mapping):
        raise ValueError(f"msys.{category}: must be a JSON object")
    return str(category), inner


def _read_type(key: str, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: must be a non-blank string, got {value!r}")
    return value


def _read_text(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{key}: must be a string or a number, got {value!r}")


def _read_integer(key: str, value: Any) -> Any:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        number = int(value)
    if number is None:
        raise ValueError(f"{key}: must be an integer, got {value!r}")
    low, high = _INTEGER_BOUNDS[_BY_KEY[key].field]
    if not low <= number <= high:
        raise ValueError(f"{key}: {number} is out of range")
    return number


def _read_time(key: str, value: Any) -> Any:
    seconds, nanos = _parse_time(key, value)
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise ValueError(f"{key}: {value!r} is outside the years 1-9999")
    return Timestamp(seconds=seconds, nanos=nanos)


def _parse_time(key: str, value: Any) -> tuple[int, int]:
    """(seconds, nanos) since the epoch from ISO 8601 text or epoch seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, 0
    if isinstance(value, float) and math.isfinite(value):
        return _split_decimal(Decimal(repr(value)))
    if isinstance(value, str):
        text = value.strip()
        if _EPOCH_TEXT.fullmatch(text):
            return _split_decimal(Decimal(text))
        match = _ISO_TEXT.fullmatch(text)
        if match:
            try:
                return _iso_seconds(match)
            except ValueError:
                pass
    raise ValueError(f"{key}: {value!r} is not an ISO 8601 date-time or a number of epoch seconds")


def _split_decimal(number: Decimal) -> tuple[int, int]:
    """Decimal, not float, so that a fraction's nanoseconds survive exactly."""
    seconds = math.floor(number)
    return seconds, int((number - seconds) * 1_000_000_000)


def _iso_seconds(match: re.Match[str]) -> tuple[int, int]:
    """Seconds and nanos of a matched ISO 8601 text; no offset means UTC."""
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    moment = dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
    )
    offset = 0
    if sign:
        off_minutes = int(off_h) * 60 + int(off_m or 0)
        if off_minutes >= 24 * 60:
            raise ValueError("offset out of range")
        offset = (off_minutes if sign == "+" else -off_minutes) * 60
    seconds = (
        (moment.toordinal() - _EPOCH_ORDINAL) * 86_400
        + moment.hour * 3600
        + moment.minute * 60
        + moment.second
        - offset
    )
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return seconds, nanos


def _read_tags(key: str, value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        return value
    return _VERBATIM


def _read_meta(key: str, value: Any) -> Any:
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return dict(value)
    return _VERBATIM


def _read_subs(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return _compact_json(dict(value))
    return _VERBATIM


def _read_geo(key: str, value: Any) -> Any:
    """A GeoIp only when it holds exactly the seed's five keys, so nothing is dropped."""
    if not isinstance(value, Mapping) or set(value) != set(_GEO_KEYS):
        return _VERBATIM
    if not all(isinstance(value[k], str) for k in ("country", "region", "city")):
        return _VERBATIM
    coordinates = [_coordinate(value[k]) for k in ("latitude", "longitude")]
    if None in coordinates:
        return _VERBATIM
    latitude, longitude = coordinates
    return pb.GeoIp(
        country=value["country"],
        region=value["region"],
        city=value["city"],
        latitude=latitude,
        longitude=longitude,
    )


def _coordinate(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _read_flag(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{key}: must be true or false, got {value!r}")


_READERS: Final[dict[_Kind, Callable[[str, Any], Any]]] = {
    _Kind.TYPE: _read_type,
    _Kind.TEXT: _read_text,
    _Kind.COUNT: _read_integer,
    _Kind.NUMBER: _read_integer,
    _Kind.TIME: _read_time,
    _Kind.TAGS: _read_tags,
    _Kind.META: _read_meta,
    _Kind.SUBS: _read_subs,
    _Kind.GEO: _read_geo,
    _Kind.FLAG: _read_flag,
    _Kind.CATEGORY: _read_text,
}


# ---------------------------------------------------------------- writing


def event_to_sparkpost(ev: pb.MessageEvent, *, lossless: bool = False) -> dict[str, Any]:
    """The SparkPost Message Events API object for `ev`, in its type's documented shape.

    With ``lossless=True`` the object also carries full-precision timestamps and
    the mailevents extension keys, for exports that must read back unchanged.
    """
    shape = _SHAPES.get(ev.type, _GENERIC_SHAPE)
    # ListFields gives exactly what SparkPost would have: fields with presence that
    # are set, other fields that are non-empty. `type` is always rendered.
    present = {descriptor.name for descriptor, _ in ev.ListFields()}
    present.add("type_name")
    out: dict[str, Any] = {}
    for spec in shape.lossless_order if lossless else shape.order:
        if spec.field in present:
            value = _WRITERS[spec.kind](ev, spec, shape, lossless)
            if value is not _VERBATIM:
                out[spec.key] = value
    if ev.extra_json:
        extra = json.loads(ev.extra_json)
        if not isinstance(extra, dict):
            raise ValueError("extra_json: must hold a JSON object")
        for key, value in extra.items():
            out.setdefault(key, value)
    return out


_Writer = Callable[[pb.MessageEvent, _Field, _Shape, bool], Any]


def _write_type(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    return ev.type_name or type_name(ev.type)


def _write_text(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    return str(getattr(ev, spec.field))


def _write_number(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    return getattr(ev, spec.field)


def _write_time(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    """The document's minute-precision UTC form, epoch seconds, or RFC 3339 when lossless."""
    stamp: Timestamp = getattr(ev, spec.field)
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=stamp.seconds)
    if lossless:
        fraction = f".{stamp.nanos:09d}".rstrip("0") if stamp.nanos else ""
        return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z"
    if shape.epoch_timestamp and spec.key == "timestamp":
        return stamp.seconds
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M}-00:00"


def _write_tags(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    return list(ev.tags)


def _write_meta(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    """Keys sorted: a protobuf map keeps no order, and sorted is stable across reads."""
    return dict(sorted(ev.metadata.items()))


def _write_subs(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    return json.loads(ev.substitutions_json)


def _write_geo(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    geo = ev.geo_ip
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


def _write_flag(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    return True  # only reached when set: false is the default and is omitted


def _write_category(ev: pb.MessageEvent, spec: _Field, shape: _Shape, lossless: bool) -> Any:
    """Only a category reading would not infer again from the type is worth writing."""
    if ev.event_category == CATEGORY_BY_TYPE.get(ev.type):
        return _VERBATIM
    return ev.event_category


_WRITERS: Final[dict[_Kind, _Writer]] = {
    _Kind.TYPE: _write_type,
    _Kind.TEXT: _write_text,
    _Kind.COUNT: _write_text,
    _Kind.NUMBER: _write_number,
    _Kind.TIME: _write_time,
    _Kind.TAGS: _write_tags,
    _Kind.META: _write_meta,
    _Kind.SUBS: _write_subs,
    _Kind.GEO: _write_geo,
    _Kind.FLAG: _write_flag,
    _Kind.CATEGORY: _write_category,
}
