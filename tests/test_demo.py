"""The demo generator: exact, deterministic, realistic and causally ordered."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from mailevents.event_types import CATEGORY_BY_TYPE, TYPE_BY_NAME
from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.demo import generate_events

NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
SEED_TYPES = set(TYPE_BY_NAME) - {"initial_open"}  # the 18 types of the SparkPost seed
BOUNCE_CLASSES = {1, 10, 21, 22, 23, 24, 25, 30, 40, 50, 51, 52, 53, 54, 60, 70, 80, 90, 100}


@pytest.fixture(scope="module")
def events() -> list[pb.MessageEvent]:
    return list(generate_events(20_000, now=NOW))


@pytest.fixture(scope="module")
def types(events: list[pb.MessageEvent]) -> Counter[str]:
    return Counter(ev.type_name for ev in events)


@pytest.mark.parametrize("count", [0, 1, 2, 49, 1000, 4321])
def test_count_is_exact(count: int) -> None:
    assert sum(1 for _ in generate_events(count, now=NOW)) == count


def test_same_arguments_give_the_same_bytes() -> None:
    first = [ev.SerializeToString(deterministic=True) for ev in generate_events(3000, now=NOW)]
    again = [ev.SerializeToString(deterministic=True) for ev in generate_events(3000, now=NOW)]

    assert first == again


def test_another_seed_gives_other_events() -> None:
    base = [ev.SerializeToString() for ev in generate_events(500, now=NOW)]
    other = [ev.SerializeToString() for ev in generate_events(500, now=NOW, seed=7)]

    assert base != other


def test_events_are_placed_relative_to_now() -> None:
    base = [ev.timestamp.seconds for ev in generate_events(500, now=NOW)]
    later = [ev.timestamp.seconds for ev in generate_events(500, now=NOW + timedelta(days=1))]

    assert later == [t + 86_400 for t in base]


@pytest.mark.parametrize("days", [1, 3, 30])
def test_timestamps_lie_within_the_window(days: int) -> None:
    now = int(NOW.timestamp())
    stamps = [ev.timestamp.seconds for ev in generate_events(5000, now=NOW, days=days)]

    assert min(stamps) >= now - days * 86_400
    assert max(stamps) <= now


def test_timestamps_spread_over_the_window(events: list[pb.MessageEvent]) -> None:
    now = int(NOW.timestamp())
    days_ago = {(now - ev.timestamp.seconds) // 86_400 for ev in events}

    assert len(days_ago) >= 15  # 24 mailings over 30 days, opens trailing each


def test_default_now_is_the_present() -> None:
    before = time.time()
    stamps = [ev.timestamp.seconds for ev in generate_events(300)]

    assert max(stamps) <= time.time()
    assert max(stamps) > before - 31 * 86_400


def test_naive_now_is_utc() -> None:
    naive = list(generate_events(200, now=NOW.replace(tzinfo=None)))
    aware = list(generate_events(200, now=NOW))

    assert naive == aware


@pytest.mark.parametrize(("count", "days"), [(-1, 30), (10, 0)])
def test_bad_arguments_are_rejected(count: int, days: int) -> None:
    with pytest.raises(ValueError):
        generate_events(count, now=NOW, days=days)


def test_event_ids_are_unique_sparkpost_style_numbers(events: list[pb.MessageEvent]) -> None:
    ids = [ev.event_id for ev in events]

    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[1-9]\d{16}", i) for i in ids)


RELAYED = (
    pb.EVENT_TYPE_RELAY_DELIVERY,
    pb.EVENT_TYPE_RELAY_TEMPFAIL,
    pb.EVENT_TYPE_RELAY_PERMFAIL,
)


def test_every_event_is_well_formed(events: list[pb.MessageEvent]) -> None:
    for ev in events:
        assert ev.type == TYPE_BY_NAME[ev.type_name]
        assert ev.event_category == CATEGORY_BY_TYPE[ev.type]
        assert ev.HasField("timestamp")
        if ev.type in RELAYED:  # the reply address is not named after its injection
            assert not ev.HasField("recipient")
            continue
        assert ev.recipient.count("@") == 1
        if ev.HasField("routing_domain"):
            assert ev.routing_domain == ev.recipient.split("@")[1]
        if ev.HasField("message_id"):
            assert re.fullmatch(r"[0-9a-f]{20}", ev.message_id)
        if ev.HasField("transmission_id"):
            assert re.fullmatch(r"[1-9]\d{16,17}", ev.transmission_id)
        if ev.error_code:
            assert ev.reason.startswith(ev.error_code)


def test_all_seed_types_appear_in_plausible_proportions(types: Counter[str]) -> None:
    assert set(types) == SEED_TYPES
    injections, deliveries = types["injection"], types["delivery"]
    assert 0.88 < deliveries / injections < 0.98
    assert 0.02 < types["bounce"] / injections < 0.08
    assert 0.01 < types["delay"] / injections < 0.12
    assert 0.15 < types["open"] / deliveries < 0.35
    assert 0.02 < types["click"] / deliveries < 0.08
    assert types["click"] < types["open"]
    assert types["spam_complaint"] / deliveries < 0.005
    unsubscribes = types["list_unsubscribe"] + types["link_unsubscribe"]
    assert 0.001 < unsubscribes / deliveries < 0.01
    relay = sum(n for name, n in types.items() if name.startswith("relay_"))
    assert 0 < relay / sum(types.values()) < 0.05
    assert 0.4 < injections / sum(types.values()) < 0.5


def test_bounce_classes_are_sparkposts(events: list[pb.MessageEvent]) -> None:
    classes = {ev.bounce_class for ev in events if ev.HasField("bounce_class")}

    assert classes == BOUNCE_CLASSES


def test_engagement_carries_user_agent_and_geo(events: list[pb.MessageEvent]) -> None:
    engaged = [ev for ev in events if ev.type in (pb.EVENT_TYPE_OPEN, pb.EVENT_TYPE_CLICK)]

    assert all(ev.user_agent and ev.HasField("geo_ip") and ev.ip_address for ev in engaged)
    assert all(
        ev.target_link_name and ev.target_link_url.startswith("https://")
        for ev in engaged
        if ev.type == pb.EVENT_TYPE_CLICK
    )


def test_complaints_and_relays_carry_their_fields(events: list[pb.MessageEvent]) -> None:
    for ev in events:
        if ev.type == pb.EVENT_TYPE_SPAM_COMPLAINT:
            assert ev.fbtype == "abuse" and ev.report_by and ev.report_to
        if ev.type_name.startswith("relay_"):
            assert ev.relay_id and not ev.HasField("campaign_id")
        if ev.type in (pb.EVENT_TYPE_LIST_UNSUBSCRIBE, pb.EVENT_TYPE_LINK_UNSUBSCRIBE):
            assert ev.mail_from == ev.recipient


def test_each_type_carries_only_its_own_fields(events: list[pb.MessageEvent]) -> None:
    # As SparkPost's seed sample of each type shows it.
    not_carried = {
        pb.EVENT_TYPE_OPEN: ("msg_size", "routing_domain"),
        pb.EVENT_TYPE_CLICK: ("msg_size", "routing_domain"),
        pb.EVENT_TYPE_SPAM_COMPLAINT: ("msg_size", "routing_domain"),
        pb.EVENT_TYPE_OUT_OF_BAND: ("msg_size",),
        pb.EVENT_TYPE_RELAY_INJECTION: ("message_id", "remote_addr"),
        pb.EVENT_TYPE_RELAY_REJECTION: ("message_id", "msg_size", "routing_domain"),
        **{t: ("message_id", "recipient", "msg_size", "remote_addr") for t in RELAYED},
    }
    seen: set[int] = set()
    for ev in events:
        for name in not_carried.get(ev.type, ()):
            assert not ev.HasField(name), (ev.type_name, name)
        seen.add(ev.type)
        if ev.type == pb.EVENT_TYPE_OUT_OF_BAND:
            assert ev.error_code and ev.bounce_class and ev.reason
        if ev.type in (pb.EVENT_TYPE_RELAY_INJECTION, pb.EVENT_TYPE_RELAY_REJECTION):
            assert ev.recipient and ev.sender
        if ev.type in (pb.EVENT_TYPE_INJECTION, pb.EVENT_TYPE_DELIVERY, pb.EVENT_TYPE_BOUNCE):
            assert ev.msg_size and ev.routing_domain and ev.message_id
    assert set(not_carried) <= seen


def test_recipients_are_spread_over_real_mailbox_providers(
    events: list[pb.MessageEvent],
) -> None:
    domains = Counter(ev.routing_domain for ev in events if ev.type == pb.EVENT_TYPE_INJECTION)

    assert domains.most_common(1)[0][0] == "gmail.com"
    assert {"yahoo.com", "outlook.com", "hotmail.com"} <= set(domains)
    assert len(domains) >= 10


def test_mailings_are_consistent(events: list[pb.MessageEvent]) -> None:
    mailings: dict[str, set[tuple[str, str, int, int]]] = defaultdict(set)
    recipients: dict[int, set[str]] = defaultdict(set)
    for ev in events:
        if ev.HasField("transmission_id"):
            mailings[ev.transmission_id].add(
                (ev.campaign_id, ev.template_id, ev.bulk_email_id, ev.send_time.seconds)
            )
            recipients[ev.contact_id].add(ev.recipient)

    assert all(len(shared) == 1 for shared in mailings.values())
    assert all(len(addresses) == 1 for addresses in recipients.values())
    by_id = sorted(next(iter(shared)) for shared in mailings.values())
    bulk_ids = [bulk for _, _, bulk, _ in by_id]
    assert len(set(bulk_ids)) == len(bulk_ids)
    send_times = [send_time for *_, send_time in sorted(by_id, key=lambda m: m[2])]
    assert send_times == sorted(send_times)  # ids are handed out in send order
    assert len({campaign for campaign, *_ in by_id}) == 20


def test_each_message_chain_is_causally_ordered(events: list[pb.MessageEvent]) -> None:
    chains: dict[tuple[str, int], list[pb.MessageEvent]] = defaultdict(list)
    send = 0
    for ev in events:
        # Events come chain by chain, and a reply is relayed only after its
        # message was delivered: a relay event belongs to the send before it.
        if not ev.relay_id:
            send = ev.send_email_id
        chains[("relay" if ev.relay_id else "send", send)].append(ev)

    first_types = {"injection", "policy_rejection", "generation_failure", "generation_rejection"}
    for (kind, _), chain in chains.items():
        stamps = [ev.timestamp.seconds for ev in chain]
        assert stamps == sorted(stamps)
        names = [ev.type_name for ev in chain]
        if kind == "relay":
            assert names[0] in ("relay_injection", "relay_rejection")
            continue
        assert names[0] in first_types
        assert all(ev.send_time.seconds <= ev.timestamp.seconds for ev in chain)
        assert all(ev.timestamp.seconds > stamps[0] for ev in chain[1:])
        if names[0] != "injection":
            assert len(chain) == 1  # nothing follows a message that was never injected
        if "open" in names or "click" in names or "out_of_band" in names:
            assert "delivery" in names
            assert names.index("delivery") < min(
                names.index(n) for n in ("open", "click", "out_of_band") if n in names
            )
        if "click" in names:
            assert "open" in names and names.index("open") < names.index("click")
        assert not ("delivery" in names and "bounce" in names)
