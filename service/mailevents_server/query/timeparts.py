"""Date parts and time buckets of a timestamp in a time zone: the query core's meaning.

SQLite has no time zones, so its store registers these as SQL functions;
PostgreSQL computes the same with `AT TIME ZONE`, and the contract tests hold
the two to the same answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mailevents.v1 import message_event_service_pb2 as spb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def local_time(ts_us: int, time_zone: str) -> datetime:
    """The wall-clock time of a timestamp in a zone (ZoneInfo caches zones itself)."""
    return (_EPOCH + timedelta(microseconds=ts_us)).astimezone(ZoneInfo(time_zone))


def date_part(ts_us: int | None, part: int, time_zone: str) -> int | None:
    """One part of the local time; week_day is 1 = Sunday .. 7 = Saturday (Django's)."""
    if ts_us is None:
        return None
    t = local_time(ts_us, time_zone)
    if part == spb.DATE_PART_YEAR:
        return t.year
    if part == spb.DATE_PART_MONTH:
        return t.month
    if part == spb.DATE_PART_DAY:
        return t.day
    if part == spb.DATE_PART_WEEK_DAY:
        return t.isoweekday() % 7 + 1
    if part == spb.DATE_PART_HOUR:
        return t.hour
    if part == spb.DATE_PART_MINUTE:
        return t.minute
    if part == spb.DATE_PART_SECOND:
        return t.second
    raise ValueError(f"unknown date part {part}")


def bucket(ts_us: int | None, unit: str, time_zone: str) -> str | None:
    """The local hour ("YYYY-MM-DDTHH:00") or day ("YYYY-MM-DD") a timestamp falls in."""
    if ts_us is None:
        return None
    t = local_time(ts_us, time_zone)
    return t.strftime("%Y-%m-%dT%H:00" if unit == "hour" else "%Y-%m-%d")
