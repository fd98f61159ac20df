"""SparkPost event JSON -> `MessageEvent` (liberal, as producers are; see the package)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from mailevents.event_types import (
    CATEGORY_BY_TYPE,
    TYPE_BY_NAME,
    parse_type,
)
from mailevents.sparkpost.fields import (
    DAY,
    EPOCH_ORDINAL,
    EPOCH_TEXT,
    FIELDS,
    GEO_KEY_SET,
    INTEGER_TEXT,
    ISO_TEXT,
    MAX_SECONDS,
    MIN_SECONDS,
    VERBATIM,
    Field,
    Kind,
    integer_bounds,
)
from mailevents.v1 import message_event_pb2 as pb

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
        if parsed is VERBATIM:
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
    low, high = integer_bounds(field)

    def read(value: Any) -> Any:
        number: int | None = None
        if value.__class__ is str and value.isdecimal():
            number = int(value)  # the form SparkPost sends; the regex below accepts it too
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
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
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
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
        match = ISO_TEXT.fullmatch(text)
        if match:
            try:
                return _iso_seconds(text, match)
            except ValueError:
                pass
        elif EPOCH_TEXT.fullmatch(text):
            return _split_decimal(Decimal(text))
    elif isinstance(value, int) and not isinstance(value, bool):
        return value, 0
    elif isinstance(value, float) and math.isfinite(value):
        return _split_decimal(Decimal(repr(value)))
    raise ValueError(f"{key}: {value!r} is not an ISO 8601 date-time or a number of epoch seconds")


def _utc_seconds(text: str) -> int | None:
    """Seconds of the UTC forms SparkPost and our exports write, without the regex.

    "YYYY-MM-DDTHH:MM" and optionally ":SS", then "Z", "-00:00" or "+00:00": a
    subset of what `ISO_TEXT` matches, read to the same value. None for any
    other text, or for a date or time that does not exist, which `ISO_TEXT`
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
    return day * DAY + clock + second


def _split_decimal(number: Decimal) -> tuple[int, int]:
    """Decimal, not float, so that a fraction's nanoseconds survive exactly."""
    seconds = math.floor(number)
    return seconds, int((number - seconds) * 1_000_000_000)


def _iso_seconds(text: str, match: re.Match[str]) -> tuple[int, int]:
    """Seconds and nanos of ISO 8601 `text` matched by `ISO_TEXT`; no offset means UTC.

    Raises `ValueError` for a date, time of day or offset that does not exist, as
    `datetime` would.
    """
    _, _, _, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    # The date is always text[:10], the hour and minute text[11:16].
    day = _epoch_day(text[:10])
    if day is None:
        raise ValueError("no such date")
    seconds = day * DAY
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
        return dt.date(int(date[:4]), int(date[5:7]), int(date[8:])).toordinal() - EPOCH_ORDINAL
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
            return VERBATIM
        for tag in value:
            if not isinstance(tag, str):
                return VERBATIM
        return value

    return read


def _read_meta(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if not _is_mapping(value) or not value:
            return VERBATIM
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                return VERBATIM
        return value if value.__class__ is dict else dict(value)  # the message copies it

    return read


def _read_subs(key: str) -> _Reader:
    def read(value: Any) -> Any:
        if _is_mapping(value):
            return _compact_json(dict(value))
        return VERBATIM

    return read


def _read_geo(key: str) -> _Reader:
    return _geo


def _geo(value: Any) -> Any:
    """A GeoIp only when it holds exactly the seed's five keys, so nothing is dropped."""
    if not _is_mapping(value) or set(value) != GEO_KEY_SET:
        return VERBATIM
    country, region, city = value["country"], value["region"], value["city"]
    if not (isinstance(country, str) and isinstance(region, str) and isinstance(city, str)):
        return VERBATIM
    latitude = _coordinate(value["latitude"])
    longitude = _coordinate(value["longitude"])
    if latitude is None or longitude is None:
        return VERBATIM
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


def _reader(spec: Field) -> _Reader:
    """The reader of one SparkPost key, with its name and bounds bound in."""
    kind = spec.kind
    if kind is Kind.COUNT or kind is Kind.NUMBER:
        return _read_integer(spec.key, spec.field)
    return _READER_KINDS[kind](spec.key)


_READER_KINDS: Final[dict[Kind, Callable[[str], _Reader]]] = {
    Kind.TYPE: _read_type,
    Kind.TEXT: _read_text,
    Kind.TIME: _read_time,
    Kind.TAGS: _read_tags,
    Kind.META: _read_meta,
    Kind.SUBS: _read_subs,
    Kind.GEO: _read_geo,
    Kind.FLAG: _read_flag,
    Kind.CATEGORY: _read_text,
}
#: SparkPost key -> (MessageEvent field, reader), for every key in `FIELDS`.
_READERS: Final[dict[str, tuple[str, _Reader]]] = {f.key: (f.field, _reader(f)) for f in FIELDS}
#: The keys whose string value is stored as it is: their reader would return it unchanged.
_STRING_FIELDS: Final[dict[str, str]] = {
    f.key: f.field for f in FIELDS if f.kind in (Kind.TEXT, Kind.CATEGORY)
}
