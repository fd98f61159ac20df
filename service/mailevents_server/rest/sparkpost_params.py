"""SparkPost's search parameters, read into an `EventQuery`.

Shared by the offset form (`/api/v1/message-events`) and the cursor form
(`/api/v1/events/message`): the same list filters, the same from/to/timezone
window. Each list parameter becomes one IN condition on a MessageEvent field;
what matching means (exact text, integer parsing of bounce classes, the
`%`/`_`-literal substring match of `reason`) is the server's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from multidict import MultiMapping

from mailevents.event_types import TYPE_BY_NAME
from mailevents.v1 import message_event_service_pb2 as pb

from . import timeutil
from .service import condition

#: list parameter -> MessageEvent field. The seed's names come first; the later
#: names of the cursor-based Events API (`campaigns`, `templates`, ...) are
#: accepted by both endpoints, since clients migrating between them mix them.
LIST_PARAMS: Mapping[str, str] = {
    "bounce_classes": "bounce_class",
    "campaign_ids": "campaign_id",
    "events": "type",
    "friendly_froms": "friendly_from",
    "message_ids": "message_id",
    "recipients": "recipient",
    "template_ids": "template_id",
    "transmission_ids": "transmission_id",
    "subaccounts": "subaccount_id",
    "campaigns": "campaign_id",
    "templates": "template_id",
    "from_addresses": "friendly_from",
    "recipient_domains": "recipient_domain",
    "sending_ips": "sending_ip",
    "ip_pools": "ip_pool",
}

#: The scalar parameters both forms read (the offset form adds page, the cursor
#: form cursor; per_page is common).
SCALAR_PARAMS = ("from", "to", "timezone", "reason", "delimiter", "per_page")

#: SparkPost's event type names that the store knows (`events=` values).
EVENT_TYPES: tuple[str, ...] = tuple(sorted(TYPE_BY_NAME))

MINUTE_FORMAT = "%Y-%m-%dT%H:%M"
DEFAULT_PER_PAGE = 1000
MAX_PER_PAGE = 10_000


@dataclass
class ParamError:
    """One bad parameter, described the way SparkPost's `errors[].description` does."""

    param: str
    description: str


@dataclass
class Search:
    """A parsed search: the query, its window as the client will see it, and any errors."""

    query: pb.EventQuery = field(default_factory=pb.EventQuery)
    #: Which request parameter produced each condition, to name it in errors.
    condition_params: list[str] = field(default_factory=list)
    from_text: str = ""
    to_text: str = ""
    timezone: str = "UTC"
    per_page: int = DEFAULT_PER_PAGE
    errors: list[ParamError] = field(default_factory=list)


def last(params: MultiMapping[str], name: str) -> str | None:
    """The last occurrence of a scalar parameter: a repeated one is overridden, not an error."""
    values = params.getall(name, [])
    return values[-1] if values else None


def split_list(params: MultiMapping[str], name: str, delimiter: str) -> list[str]:
    """Every item of a (possibly repeated) list parameter.

    aiohttp has already percent-decoded the value, so `bounce%2Cdelay` splits
    into two items. Items are trimmed (the seed writes `delivery, injection`)
    and empty ones dropped.
    """
    items: list[str] = []
    for value in params.getall(name, []):
        items.extend(part.strip() for part in value.split(delimiter))
    return [item for item in items if item]


def parse_search(
    params: MultiMapping[str], *, default_span: timedelta, now: datetime | None = None
) -> Search:
    """Read every SparkPost search parameter; collect all errors rather than stop at one."""
    search = Search()
    delimiter = last(params, "delimiter") or ","
    _parse_lists(params, delimiter, search)
    _parse_reason(params, search)
    _parse_window(params, default_span, now or timeutil.now_utc(), search)
    search.per_page = _parse_int(
        params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE, search.errors
    )
    search.query.order = pb.ORDER_TIMESTAMP_DESC
    return search


def parse_page(params: MultiMapping[str], errors: list[ParamError]) -> int:
    return _parse_int(params, "page", 1, 1, None, errors)


def _parse_lists(params: MultiMapping[str], delimiter: str, search: Search) -> None:
    for name, field_name in LIST_PARAMS.items():
        if name not in params:
            continue
        values = split_list(params, name, delimiter)
        if name == "events":
            unknown = [value for value in values if value not in TYPE_BY_NAME]
            if unknown:
                search.errors.append(
                    ParamError(
                        name,
                        f"Invalid event type(s): {', '.join(unknown)}. "
                        f"Valid event types are: {', '.join(EVENT_TYPES)}",
                    )
                )
                continue
        if not values:
            # `campaign_ids=` filters nothing rather than matching nothing.
            continue
        search.query.conditions.append(condition(field_name, pb.OPERATOR_IN, values))
        search.condition_params.append(name)


def _parse_reason(params: MultiMapping[str], search: Search) -> None:
    reason = last(params, "reason")
    if reason is None:
        return
    # The Events API's `*` wildcard at either end means what %reason% already does.
    reason = reason.strip("*")
    if reason:
        search.query.conditions.append(condition("reason", pb.OPERATOR_ICONTAINS, [reason]))
        search.condition_params.append("reason")


def _parse_window(
    params: MultiMapping[str], default_span: timedelta, now: datetime, search: Search
) -> None:
    zone_name = last(params, "timezone") or "UTC"
    zone = timeutil.zone(zone_name)
    if zone is None:
        search.errors.append(ParamError("timezone", f"Unknown timezone '{zone_name}'"))
        return
    search.timezone = zone_name
    # The default `to` is the end of the current minute, so that `now` is
    # included and the links, which spell the window out in minutes, repeat
    # exactly the same query.
    local_now = now.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    start = _parse_minute(params, "from", search.errors)
    end = _parse_minute(params, "to", search.errors)
    if end is None:
        end = local_now + timedelta(minutes=1)
    if start is None:
        start = local_now + timedelta(minutes=1) - default_span
    if "from" in _names(search.errors) or "to" in _names(search.errors):
        return
    if start > end:
        search.errors.append(ParamError("from", "from must be before to"))
        return
    search.from_text = start.strftime(MINUTE_FORMAT)
    search.to_text = end.strftime(MINUTE_FORMAT)
    search.query.start_time.CopyFrom(timeutil.to_timestamp(start.replace(tzinfo=zone)))
    search.query.end_time.CopyFrom(timeutil.to_timestamp(end.replace(tzinfo=zone)))


def _parse_minute(
    params: MultiMapping[str], name: str, errors: list[ParamError]
) -> datetime | None:
    text = last(params, name)
    if text is None or text == "":
        return None
    try:
        moment = datetime.strptime(text, MINUTE_FORMAT)
    except ValueError:
        errors.append(ParamError(name, f"{name} must be a datetime in format YYYY-MM-DDTHH:MM"))
        return None
    if moment.strftime(MINUTE_FORMAT) != text:
        # strptime forgives single-digit fields; the documented format does not.
        errors.append(ParamError(name, f"{name} must be a datetime in format YYYY-MM-DDTHH:MM"))
        return None
    return moment


def _parse_int(
    params: MultiMapping[str],
    name: str,
    default: int,
    low: int,
    high: int | None,
    errors: list[ParamError],
) -> int:
    text = last(params, name)
    if text is None or text == "":
        return default
    # At most 18 digits: int64 however it is used, and no int() of thousands of digits.
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        errors.append(ParamError(name, f"{name} must be an integer {bounds}"))
        return default
    return value


def _names(errors: Sequence[ParamError]) -> set[str]:
    return {error.param for error in errors}
