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
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from mailevents.event_types import (
    CATEGORY_BY_TYPE,
    NAME_BY_TYPE,
    TYPE_BY_NAME,
    parse_type,
    type_name,
)
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
_GEO_KEY_SET: Final = frozenset(_GEO_KEYS)
_INTEGER_TEXT: Final = re.compile(r"[+-]?\d+")
_EPOCH_TEXT: Final = re.compile(r"[+-]?\d+(?:\.\d+)?")
_ISO_TEXT: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
    r"\s*(?:[Zz]|([+-])(\d\d)(?::?(\d\d))?)?"
)
_EPOCH: Final = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL: Final = _EPOCH.toordinal()
_DAY: Final = 86_400
# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS: Final = -62_135_596_800
_MAX_SECONDS: Final = 253_402_300_799


_DESCRIPTORS: Final = pb.MessageEvent.DESCRIPTOR.fields_by_name
_INT32_TYPES: Final = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32)


def _integer_bounds(field: str) -> tuple[int, int]:
    """A field's range, from the descriptor, so out-of-range input is named, not a crash."""
    bits = 32 if _DESCRIPTORS[field].type in _INT32_TYPES else 64
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


class _Verbatim:
    """Marks a value that is kept as-is in extra_json rather than typed."""


_VERBATIM: Final = _Verbatim()

# Speed: both directions run per event on hot paths (webhook ingest, 10,000-event
# REST pages), so what a field's kind decides is decided once, when the tables are
# built: each SparkPost key gets its own reader (its name and bounds bound in), and
# each type its own render plans of (field, has presence, key, writer). Per event
# there is one loop over those. Timestamps are read and written as integer seconds,
# with cached dates and precomputed times of day, never a datetime per event.


# ---------------------------------------------------------------- reading

_Reader = Callable[[Any], Any]


def event_from_sparkpost(obj: Mapping[str, Any]) -> pb.MessageEvent:
    """A `MessageEvent` from one SparkPost event object or webhook ``msys`` wrapper.

    Raises `ValueError`, naming the field, for input that is not an event.
    """
    if not _is_mapping(obj):
        raise ValueError(f"a SparkPost event must be a JSON object, got {type(obj).__name__}")
    wrapper_category: str | None = None
    if "msys" in obj and "type" not in obj:
        wrapper_category, obj = _unwrap(obj)

    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    string_field = _STRING_FIELDS.get
    reader = _READERS.get
    for key, value in obj.items():
        if value.__class__ is str:
            # The common case, a text key with a string, needs no reader.
            field = string_field(key)
            if field is not None:
                values[field] = value
                continue
        entry = reader(key)
        if entry is None or value is None:
            extra[key] = value
            continue
        parsed = entry[1](value)
        if parsed is _VERBATIM:
            extra[key] = value
        else:
            values[entry[0]] = parsed

    name = values.get("type_name")
    if name is None:
        raise ValueError("type: required")
    values["type"] = event_type = (
        TYPE_BY_NAME.get(name) or parse_type(name) or pb.EVENT_TYPE_UNSPECIFIED
    )
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
    return pb.MessageEvent(**values)  # one dict: a keyword next to ** would copy it


def _is_mapping(value: Any) -> bool:
    """isinstance(value, Mapping), without the ABC machinery for JSON's own dict."""
    return value.__class__ is dict or isinstance(value, Mapping)


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


def _read_type(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{key}: must be a non-blank string, got {value!r}")
        return value

    return read


def _read_text(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"{key}: must be a string or a number, got {value!r}")

    return read


def _read_integer(key: str, field: str) -> _Reader:
    low, high = _integer_bounds(field)

    def read(value: Any) -> Any:
        number: int | None = None
        if value.__class__ is str and value.isdecimal():
            number = int(value)  # the form SparkPost sends; the regex below accepts it too
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
            number = int(value)
        if number is None:
            raise ValueError(f"{key}: must be an integer, got {value!r}")
        if not low <= number <= high:
            raise ValueError(f"{key}: {number} is out of range")
        return number

    return read


def _read_time(key: str) -> _Reader:
    def read(value: Any) -> Any:
        seconds, nanos = _parse_time(key, value)
        if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
            raise ValueError(f"{key}: {value!r} is outside the years 1-9999")
        # A dict initialises the Timestamp field without building a Timestamp first.
        return {"seconds": seconds, "nanos": nanos}

    return read


def _parse_time(key: str, value: Any) -> tuple[int, int]:
    """(seconds, nanos) since the epoch from ISO 8601 text or epoch seconds."""
    if isinstance(value, str):
        text = value.strip()
        if text.isdecimal() and len(text) < 20:  # epoch seconds, as webhooks send them
            return int(text), 0
        seconds = _utc_seconds(text)
        if seconds is not None:
            return seconds, 0
        # The two forms are disjoint: only ISO text has a "-" after its first digit.
        match = _ISO_TEXT.fullmatch(text)
        if match:
            try:
                return _iso_seconds(text, match)
            except ValueError:
                pass
        elif _EPOCH_TEXT.fullmatch(text):
            return _split_decimal(Decimal(text))
    elif isinstance(value, int) and not isinstance(value, bool):
        return value, 0
    elif isinstance(value, float) and math.isfinite(value):
        return _split_decimal(Decimal(repr(value)))
    raise ValueError(f"{key}: {value!r} is not an ISO 8601 date-time or a number of epoch seconds")


def _utc_seconds(text: str) -> int | None:
    """Seconds of the UTC forms SparkPost and our exports write, without the regex.

    "YYYY-MM-DDTHH:MM" and optionally ":SS", then "Z", "-00:00" or "+00:00": a
    subset of what `_ISO_TEXT` matches, read to the same value. None for any
    other text, or for a date or time that does not exist, which `_ISO_TEXT`
    then reads or rejects.
    """
    if len(text) < 17 or text[10] not in "Tt ":
        return None
    if text[16] == ":":
        second = _SECOND_OF_MINUTE.get(text[16:19])
        zone = text[19:]
    else:
        second = 0
        zone = text[16:]
    if zone != "Z" and zone != "-00:00" and zone != "+00:00":
        return None
    clock = _CLOCK_SECONDS.get(text[11:16])
    day = _epoch_day(text[:10])
    if clock is None or second is None or day is None:
        return None
    return day * _DAY + clock + second


def _split_decimal(number: Decimal) -> tuple[int, int]:
    """Decimal, not float, so that a fraction's nanoseconds survive exactly."""
    seconds = math.floor(number)
    return seconds, int((number - seconds) * 1_000_000_000)


def _iso_seconds(text: str, match: re.Match[str]) -> tuple[int, int]:
    """Seconds and nanos of ISO 8601 `text` matched by `_ISO_TEXT`; no offset means UTC.

    Raises `ValueError` for a date, time of day or offset that does not exist, as
    `datetime` would.
    """
    _, _, _, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    # The date is always text[:10], the hour and minute text[11:16].
    day = _epoch_day(text[:10])
    if day is None:
        raise ValueError("no such date")
    seconds = day * _DAY
    if hour is not None:
        clock = _CLOCK_SECONDS.get(text[11:16])
        if clock is None:  # out of range, or digits other than ASCII ones
            clock = _clock_seconds(int(hour), int(minute), 0)
        seconds += clock
        if second is not None:
            seconds += _clock_seconds(0, 0, int(second))
    if sign:
        off_minutes = int(off_h) * 60 + int(off_m or 0)
        if off_minutes >= 24 * 60:
            raise ValueError("offset out of range")
        seconds -= (off_minutes if sign == "+" else -off_minutes) * 60
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    return seconds, nanos


@functools.lru_cache(maxsize=4096)
def _epoch_day(date: str) -> int | None:
    """Days since 1970-01-01 of "YYYY-MM-DD" (any decimal digits, as `\\d` matches);
    None if `date` is not of that form or not a date. Events cluster on few days."""
    digits = date[:4] + date[5:7] + date[8:]
    if len(date) != 10 or date[4] != "-" or date[7] != "-" or not digits.isdecimal():
        return None
    try:
        return dt.date(int(date[:4]), int(date[5:7]), int(date[8:])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _clock_seconds(hour: int, minute: int, second: int) -> int:
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("time of day out of range")
    return hour * 3600 + minute * 60 + second


#: "HH:MM" -> seconds since midnight, for every minute of a day.
_CLOCK_SECONDS: Final = {f"{m // 60:02d}:{m % 60:02d}": m * 60 for m in range(1440)}
#: ":SS" -> seconds, for every second of a minute.
_SECOND_OF_MINUTE: Final = {f":{s:02d}": s for s in range(60)}


def _read_tags(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, list) or not value:
            return _VERBATIM
        for tag in value:
            if not isinstance(tag, str):
                return _VERBATIM
        return value

    return read


def _read_meta(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if not _is_mapping(value) or not value:
            return _VERBATIM
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                return _VERBATIM
        return value if value.__class__ is dict else dict(value)  # the message copies it

    return read


def _read_subs(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if _is_mapping(value):
            return _compact_json(dict(value))
        return _VERBATIM

    return read


def _read_geo(key: str) -> _Reader:
    return _geo


def _geo(value: Any) -> Any:
    """A GeoIp only when it holds exactly the seed's five keys, so nothing is dropped."""
    if not _is_mapping(value) or set(value) != _GEO_KEY_SET:
        return _VERBATIM
    country, region, city = value["country"], value["region"], value["city"]
    if not (isinstance(country, str) and isinstance(region, str) and isinstance(city, str)):
        return _VERBATIM
    latitude = _coordinate(value["latitude"])
    longitude = _coordinate(value["longitude"])
    if latitude is None or longitude is None:
        return _VERBATIM
    return {
        "country": country,
        "region": region,
        "city": city,
        "latitude": latitude,
        "longitude": longitude,
    }


def _coordinate(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _read_flag(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key}: must be true or false, got {value!r}")

    return read


def _reader(spec: _Field) -> _Reader:
    """The reader of one SparkPost key, with its name and bounds bound in."""
    kind = spec.kind
    if kind is _Kind.COUNT or kind is _Kind.NUMBER:
        return _read_integer(spec.key, spec.field)
    return _READER_KINDS[kind](spec.key)


_READER_KINDS: Final[dict[_Kind, Callable[[str], _Reader]]] = {
    _Kind.TYPE: _read_type,
    _Kind.TEXT: _read_text,
    _Kind.TIME: _read_time,
    _Kind.TAGS: _read_tags,
    _Kind.META: _read_meta,
    _Kind.SUBS: _read_subs,
    _Kind.GEO: _read_geo,
    _Kind.FLAG: _read_flag,
    _Kind.CATEGORY: _read_text,
}
#: SparkPost key -> (MessageEvent field, reader), for every key in `_FIELDS`.
_READERS: Final[dict[str, tuple[str, _Reader]]] = {f.key: (f.field, _reader(f)) for f in _FIELDS}
#: The keys whose string value is stored as it is: their reader would return it unchanged.
_STRING_FIELDS: Final[dict[str, str]] = {
    f.key: f.field for f in _FIELDS if f.kind in (_Kind.TEXT, _Kind.CATEGORY)
}


# ---------------------------------------------------------------- writing

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
            if value is not _VERBATIM:
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
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        _EPOCH + dt.timedelta(seconds=seconds)  # raises just as the datetime arithmetic would
    return seconds


@functools.lru_cache(maxsize=4096)
def _date_text(day: int) -> str:
    """ "YYYY-MM-DD" of a day since 1970-01-01 in the years 1-9999; few days recur."""
    moment = _EPOCH + dt.timedelta(days=day)
    return f"{moment.year:04d}-{moment:%m-%d}"


def _write_minutes(stamp: Timestamp) -> str:
    """The document's form: UTC, minute precision, "-00:00"."""
    day, second = divmod(_seconds(stamp), _DAY)
    return _date_text(day) + _MINUTE_TEXT[second // 60]


def _write_rfc3339(stamp: Timestamp) -> str:
    """Lossless: seconds and fraction kept, "Z"."""
    day, second = divmod(_seconds(stamp), _DAY)
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
        return _VERBATIM if category == expected else category

    return write


def _writer(spec: _Field, shape: _Shape, category: str | None, lossless: bool) -> _Writer | None:
    """The writer of one field in one type's plan; None when the value is written as is."""
    kind = spec.kind
    if kind is _Kind.TIME:
        if lossless:
            return _write_rfc3339
        return _write_epoch if shape.epoch_timestamp and spec.key == "timestamp" else _write_minutes
    if kind is _Kind.CATEGORY:
        return _write_category(category)
    # TEXT: a string; NUMBER: a JSON number; FLAG: only present when true.
    return _WRITER_KINDS.get(kind)


_WRITER_KINDS: Final[dict[_Kind, _Writer]] = {
    _Kind.COUNT: str,
    _Kind.TAGS: list,
    _Kind.META: _write_meta,
    _Kind.SUBS: json.loads,
    _Kind.GEO: _write_geo,
}


def _plans(shape: _Shape, name: str, category: str | None) -> _TypePlans:
    """The render plans of a type: its shape, its name and its usual category."""

    def plan(order: tuple[_Field, ...], lossless: bool) -> _Plan:
        first, *rest = order
        if first.kind is not _Kind.TYPE:
            raise AssertionError("every shape begins with `type`")
        return tuple(
            (
                f.field,
                _DESCRIPTORS[f.field].has_presence,
                f.key,
                _writer(f, shape, category, lossless),
            )
            for f in rest
        )

    return _TypePlans(name, plan(shape.order, False), plan(shape.lossless_order, True))


#: Every type something is known of; any other renders with `_GENERIC_PLANS`.
_PLANS: Final[dict[int, _TypePlans]] = {
    t: _plans(_SHAPES.get(t, _GENERIC_SHAPE), type_name(t), CATEGORY_BY_TYPE.get(t))
    for t in {*_SHAPES, *CATEGORY_BY_TYPE, *NAME_BY_TYPE}
}
#: A type with no name, shape or category of its own: `type_name(t)` is "" and
#: `CATEGORY_BY_TYPE.get(t)` is None for every `t` not in `_PLANS`.
_GENERIC_PLANS: Final = _plans(_GENERIC_SHAPE, "", None)
