"""Time helpers the dialects share: zones, calendar months, wire timestamps.

Dialects speak local wall-clock minutes and dates; the service speaks UTC
`google.protobuf.Timestamp`. The conversions live here once.
"""

from __future__ import annotations

import calendar
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf import timestamp_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the Timestamps we send.
MIN_SECONDS = -62135596800
MAX_SECONDS = 253402300799


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone called `name`, or None when there is no such zone."""
    if not name or len(name) > 255 or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name no file can have
        return None


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a protobuf Timestamp (exact to the microsecond).

    Clamped to the calendar's ends (0001-01-01 to 9999-12-31, UTC): a local
    time near either end may lie just beyond it in UTC, and a window reaching
    past the calendar means "from the beginning" or "until ever". Subtracting
    aware datetimes never builds the out-of-range UTC time `astimezone` would.
    """
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    nanos = delta.microseconds * 1000
    if seconds < MIN_SECONDS:
        seconds, nanos = MIN_SECONDS, 0
    elif seconds > MAX_SECONDS:
        seconds, nanos = MAX_SECONDS, 999_999_000
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime (microsecond precision)."""
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months away, clamped to the month's end.

    Copernica's "one month" windows: 31 January plus one month is 28 (or 29)
    February, the way people and date libraries count months.
    """
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    # A month beyond the calendar's ends is its first or last moment.
    if year > MAXYEAR:
        return datetime.max.replace(tzinfo=moment.tzinfo)
    if year < MINYEAR:
        return datetime.min.replace(tzinfo=moment.tzinfo)
    last_day = calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def format_seconds(moment: datetime) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, as the interaction-data report writes dates."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
