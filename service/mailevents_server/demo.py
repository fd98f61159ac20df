"""Deterministic, realistic demo events for `mailevents demo`, `make run`, tests and benches.

Demo data is only useful if it has the structure real queries lean on: campaigns
sent as mailings (transmissions) to recipients at real mailbox providers, every
recipient's message going through a causal chain (injection, then delivery, delay
or bounce, then opens, clicks, complaints, unsubscribes), and the rarer event
types present in believable proportions. The same (count, now, seed) always yields
the same events, byte for byte, so tests and benchmarks can rely on it.

Shape of the data:

- 3 senders ("brands", each a SparkPost customer_id), 20 campaigns across them,
  each with a template (id + version), tags, rcpt_meta and links.
- Mailings spread over the window: a campaign sent once as a transmission
  (17-18 digit id), with `bulk_email_id` (1, 2, ... in send order) and
  `send_time` (when its injection started).
- A pool of contacts at weighted real domains (gmail.com, yahoo.com, ...,
  corporate ones) with `contact_id`; each recipient message gets `send_email_id`
  and a SparkPost-style hex `message_id`.
- Per recipient message: ~0.5% generation_failure/rejection or policy_rejection
  instead of an injection; otherwise injection then ~93% delivery, ~4% bounce,
  ~3% delay(s) then delivery or bounce; after delivery ~0.4% out_of_band, opens
  (~25% of deliveries), clicks (~5%), spam_complaint (~0.1%), list and link
  unsubscribes (~0.15% each), and ~1% inbound replies as relay_* events.
- Each type carries the fields SparkPost's sample of that type shows: no size
  or routing domain on opens, clicks and complaints, no message_id on relayed
  replies (nor their address after the relay_injection), an error_code on every
  out_of_band.
- A later event of a chain is strictly later in time; an event that would fall
  after `now` has not happened yet and is left out, with everything after it.
  Events come out chain by chain, so mostly but not strictly in time order.

Speed: a million events take a few seconds. Every recipient message is one
prebuilt `MessageEvent` that each of its events copies (a C-level copy), the
per-type header fields are merged from prebuilt messages, and time is integer
seconds, never a datetime per event.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from random import Random
from typing import Final

from mailevents.event_types import CATEGORY_BY_TYPE, NAME_BY_TYPE
from mailevents.v1 import message_event_pb2 as pb

__all__ = ["generate_events"]

_DAY: Final = 86_400
_MASK64: Final = (1 << 64) - 1
_GOLDEN64: Final = 0x9E3779B97F4A7C15  # odd, so n -> n * _GOLDEN64 mod 2**64 is one-to-one


# ---------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class _Brand:
    name: str
    domain: str
    customer_id: str
    subaccount_id: str | None
    ip_pool: str
    sending_ips: tuple[str, ...]
    relay_id: str


_BRANDS: Final = (
    _Brand(
        "Northwind Outfitters",
        "northwind-outfitters.example",
        "10423",
        None,
        "marketing",
        ("198.51.100.21", "198.51.100.22", "198.51.100.23"),
        "104-231-977",
    ),
    _Brand(
        "Bluebird Bank",
        "bluebird-bank.example",
        "10424",
        "3",
        "transactional",
        ("198.51.100.40", "198.51.100.41"),
        "104-241-118",
    ),
    _Brand(
        "Skylark Travel",
        "skylark-travel.example",
        "10425",
        "7",
        "default",
        ("203.0.113.15", "203.0.113.16"),
        "104-251-563",
    ),
)


@dataclass(frozen=True, slots=True)
class _Campaign:
    name: str
    brand: int  # index into _BRANDS
    template_version: int
    tags: tuple[str, ...]
    segment: str
    links: tuple[tuple[str, str], ...]  # (link name, path)
    weight: int  # how often it is sent

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


_SHOP = (("Shop now", "shop"), ("View in browser", "view"))
_CAMPAIGNS: Final = (
    _Campaign("Weekly Newsletter", 0, 14, ("newsletter", "weekly"), "all", _SHOP, 10),
    _Campaign("Spring Sale", 0, 3, ("promo", "sale"), "active", _SHOP, 6),
    _Campaign("Abandoned Cart Reminder", 0, 7, ("triggered", "cart"), "cart", _SHOP, 8),
    _Campaign("Welcome Series 1", 0, 5, ("onboarding",), "new", (("Get started", "start"),), 5),
    _Campaign("Welcome Series 2", 0, 4, ("onboarding",), "new", (("Our story", "about"),), 4),
    _Campaign("Product Launch: Trail Runner X", 0, 2, ("launch", "promo"), "active", _SHOP, 3),
    _Campaign("Flash Sale 48h", 0, 1, ("promo", "flash"), "engaged", _SHOP, 4),
    _Campaign("Holiday Gift Guide", 0, 2, ("seasonal", "promo"), "all", _SHOP, 3),
    _Campaign("Price Drop Alert", 0, 6, ("triggered", "price"), "watchers", _SHOP, 4),
    _Campaign(
        "Monthly Statement Ready",
        1,
        9,
        ("statement", "transactional"),
        "customers",
        (("View statement", "statements"),),
        6,
    ),
    _Campaign("Security Alert", 1, 4, ("security", "transactional"), "customers", (), 2),
    _Campaign("Password Reset", 1, 11, ("security", "transactional"), "customers", (), 3),
    _Campaign(
        "Loyalty Points Statement",
        1,
        3,
        ("loyalty",),
        "members",
        (("Redeem points", "rewards"),),
        3,
    ),
    _Campaign(
        "Customer Survey", 1, 2, ("survey",), "customers", (("Take the survey", "survey"),), 2
    ),
    _Campaign(
        "Order Confirmation",
        2,
        8,
        ("transactional", "order"),
        "buyers",
        (("Manage booking", "bookings"),),
        7,
    ),
    _Campaign(
        "Shipping Update", 2, 5, ("transactional", "order"), "buyers", (("Track", "track"),), 5
    ),
    _Campaign(
        "Travel Deals Digest",
        2,
        12,
        ("newsletter", "deals"),
        "all",
        (("See deals", "deals"), ("View in browser", "view")),
        8,
    ),
    _Campaign(
        "Re-engagement: We Miss You",
        2,
        2,
        ("winback",),
        "lapsed",
        (("Come back", "welcome-back"),),
        3,
    ),
    _Campaign(
        "Event Invitation: Summer Webinar",
        2,
        1,
        ("event", "webinar"),
        "engaged",
        (("Register", "webinar"),),
        2,
    ),
    _Campaign(
        "Account Anniversary", 2, 3, ("triggered", "loyalty"), "members", (("Claim", "gift"),), 2
    ),
)


@dataclass(frozen=True, slots=True)
class _Domain:
    name: str
    weight: int
    mx_ip: str
    feedback_loop: str  # who sends this provider's complaint reports
    proxy: int | None  # index into _PROXIES when the provider fetches images itself


_DOMAINS: Final = (
    _Domain("gmail.com", 34, "142.250.102.27", "feedback.google.com", 0),
    _Domain("yahoo.com", 10, "67.195.204.72", "fbl.yahoo.com", 1),
    _Domain("outlook.com", 9, "52.101.41.3", "jmrp.microsoft.com", None),
    _Domain("hotmail.com", 8, "52.101.40.5", "jmrp.microsoft.com", None),
    _Domain("icloud.com", 6, "17.57.154.33", "fbl.icloud.com", None),
    _Domain("aol.com", 3, "67.195.228.106", "fbl.aol.com", 1),
    _Domain("comcast.net", 2, "96.114.157.80", "fbl.comcast.net", None),
    _Domain("gmx.de", 2, "212.227.17.5", "fbl.gmx.net", None),
    _Domain("web.de", 1, "212.227.15.9", "fbl.web.de", None),
    _Domain("protonmail.com", 1, "185.70.42.128", "abuse.proton.me", None),
    _Domain("contoso.com", 4, "203.0.113.80", "abuse.contoso.com", None),
    _Domain("fabrikam.com", 3, "203.0.113.91", "abuse.fabrikam.com", None),
    _Domain("initech.com", 2, "203.0.113.102", "postmaster.initech.com", None),
    _Domain("globex.com", 2, "203.0.113.113", "postmaster.globex.com", None),
    _Domain("umbrella-corp.com", 1, "203.0.113.124", "abuse.umbrella-corp.com", None),
)

_FIRST_NAMES: Final = (
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara "
    "richard susan joseph jessica thomas sarah charles karen chris nancy daniel lisa matthew "
    "betty anthony margaret mark sandra paul ashley steven emily andrew donna joshua michelle "
    "kevin carol brian amanda george melissa timothy deborah sofia lukas emma noah olivia liam "
    "mia lucas ana mateo yuki hiroshi priya arjun fatima omar chen wei"
).split()
_LAST_NAMES: Final = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen "
    "hill flores green adams nelson baker hall rivera campbell mitchell carter roberts mueller "
    "schmidt schneider fischer weber tanaka suzuki sato patel shah khan kim park"
).split()


@dataclass(frozen=True, slots=True)
class _Device:
    user_agent: str
    geo: pb.GeoIp
    ip_prefix: str  # an opener's address is this plus a last octet


def _geo(country: str, region: str, city: str, latitude: float, longitude: float) -> pb.GeoIp:
    return pb.GeoIp(
        country=country, region=region, city=city, latitude=latitude, longitude=longitude
    )


_CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36"
)
_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148"
)
_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Mobile Safari/537.36"
)
_WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"
)
_OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17531"
_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Mobile/15E148"
)

#: Devices recipients open and click from.
_DEVICES: Final = (
    _Device(_CHROME_MAC, _geo("US", "MD", "Columbia", 39.1749, -76.8375), "73.128.44."),
    _Device(_IPHONE, _geo("US", "NY", "New York", 40.7128, -74.006), "172.58.10."),
    _Device(_IPHONE, _geo("US", "CA", "San Francisco", 37.7749, -122.4194), "107.77.205."),
    _Device(_ANDROID, _geo("US", "TX", "Austin", 30.2672, -97.7431), "99.43.112."),
    _Device(_WINDOWS_EDGE, _geo("US", "IL", "Chicago", 41.8781, -87.6298), "24.13.87."),
    _Device(_OUTLOOK, _geo("US", "WA", "Seattle", 47.6062, -122.3321), "50.46.130."),
    _Device(_IPHONE, _geo("GB", "ENG", "London", 51.5074, -0.1278), "86.12.71."),
    _Device(_ANDROID, _geo("DE", "BE", "Berlin", 52.52, 13.405), "91.64.18."),
    _Device(_WINDOWS_EDGE, _geo("FR", "IDF", "Paris", 48.8566, 2.3522), "90.84.143."),
    _Device(_IPAD, _geo("CA", "ON", "Toronto", 43.6532, -79.3832), "142.114.56."),
    _Device(_IPHONE, _geo("AU", "NSW", "Sydney", -33.8688, 151.2093), "120.18.9."),
    _Device(_ANDROID, _geo("IN", "MH", "Mumbai", 19.076, 72.8777), "49.36.21."),
    _Device(_CHROME_MAC, _geo("NL", "NH", "Amsterdam", 52.3676, 4.9041), "145.53.4."),
    _Device(_ANDROID, _geo("BR", "SP", "Sao Paulo", -23.5505, -46.6333), "177.92.33."),
    _Device(_IPHONE, _geo("JP", "13", "Tokyo", 35.6762, 139.6503), "126.208.150."),
)

#: Providers that fetch images themselves, so opens come from their proxies.
_PROXIES: Final = (
    _Device(
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        _geo("US", "CA", "Mountain View", 37.4056, -122.0775),
        "66.249.84.",
    ),
    _Device(
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        _geo("US", "NY", "New York", 40.7143, -74.006),
        "74.6.40.",
    ),
)


@dataclass(frozen=True, slots=True)
class _Failure:
    bounce_class: int
    error_code: str
    reason: str  # "{rcpt}" marks where raw_reason names the recipient
    weight: int


_BOUNCES: Final = (
    _Failure(10, "550", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown", 34),
    _Failure(22, "552", "552 5.2.2 <{rcpt}>: The email account is over quota", 10),
    _Failure(40, "550", "550 5.0.0 Message rejected by the receiving server", 8),
    _Failure(51, "550", "550 5.7.1 Service unavailable, client host blocked using Spamhaus", 6),
    _Failure(50, "554", "554 5.7.1 Message blocked due to local policy", 5),
    _Failure(52, "554", "554 5.7.1 Message rejected because of unacceptable content", 4),
    _Failure(1, "554", "554 5.0.0 Undetermined bounce: message could not be delivered", 4),
    _Failure(21, "550", "550 5.1.2 Host or domain name not found for <{rcpt}>", 3),
    _Failure(25, "554", "554 5.7.1 [internal] recipient address was suppressed by an admin", 3),
    _Failure(70, "451", "451 4.3.0 Temporary server error, no more retries", 3),
    _Failure(30, "550", "550 5.1.0 No recipient address found in the envelope", 2),
    _Failure(54, "554", "554 5.7.1 <{rcpt}>: Relay access denied", 2),
    _Failure(23, "552", "552 5.3.4 Message size exceeds fixed maximum message size", 2),
    _Failure(53, "552", "552 5.7.0 Message blocked: it contains a prohibited attachment", 1),
    _Failure(24, "550", "550 5.4.7 [internal] exceeded max time without delivery", 2),
)
_DELAYS: Final = (
    _Failure(70, "451", "451 4.7.1 Greylisted, please try again in 300 seconds", 5),
    _Failure(24, "421", "421 4.4.2 Connection timed out while talking to the remote host", 3),
    _Failure(22, "452", "452 4.2.2 <{rcpt}>: Mailbox full, try again later", 2),
    _Failure(21, "451", "451 4.4.0 DNS resolution of the recipient domain failed", 1),
    _Failure(70, "421", "421 4.7.0 Temporary rate limit: too many messages, slow down", 3),
)
#: A delayed message that never gets through.
_EXPIRED: Final = _Failure(24, "550", "550 5.4.7 [internal] exceeded max time without delivery", 1)
_OUT_OF_BAND: Final = (
    _Failure(10, "550", "550 5.1.1 <{rcpt}>: user unknown (delivered then bounced)", 5),
    _Failure(60, "554", "554 5.0.0 Auto-Reply: Out of Office until further notice", 4),
    _Failure(100, "554", "554 5.0.0 Challenge-Response: please confirm you are a human", 1),
    _Failure(90, "554", "554 5.0.0 Unsubscribe request received by reply", 1),
    _Failure(80, "554", "554 5.0.0 Subscribe request received by reply", 1),
    _Failure(1, "554", "554 5.0.0 Undetermined asynchronous bounce", 2),
)
_POLICY: Final = (
    _Failure(0, "554", "554 5.7.1 recipient address was suppressed due to customer policy", 7),
    _Failure(0, "554", "554 5.7.1 recipient address was suppressed due to system policy", 2),
    _Failure(0, "554", "554 5.7.1 [internal] Exceed Sending Limit (daily)", 1),
)
_GEN_FAILURES: Final = (
    _Failure(
        0,
        "554",
        "554 5.3.3 [internal] Error while rendering part html: substitution value"
        " 'first_name' did not exist or was null",
        3,
    ),
    _Failure(0, "554", "554 5.3.3 [internal] Error while rendering part text: line 14", 1),
)
_GEN_REJECTIONS: Final = (
    _Failure(0, "554", "554 5.7.1 [internal] Generation rejected: template is not published", 1),
    _Failure(0, "554", "554 5.7.1 [internal] Generation rejected: sending domain unverified", 1),
)
_RELAY_REJECTIONS: Final = (
    _Failure(0, "550", "550 5.7.1 Relaying denied: inbound domain has no relay webhook", 2),
    _Failure(0, "552", "552 5.3.4 Message too big for the relay webhook", 1),
)
_RELAY_TEMPFAIL: Final = _Failure(0, "421", "421 4.4.2 Relay webhook endpoint timed out", 1)
_RELAY_PERMFAIL: Final = _Failure(0, "550", "550 5.0.0 Relay webhook endpoint returned 410", 1)


# Shares of recipient messages and of their follow-ups. Tests check the resulting mix.
_P_GEN_FAILURE: Final = 0.002
_P_GEN_REJECTION: Final = 0.001
_P_POLICY_REJECTION: Final = 0.005
_P_BOUNCE: Final = 0.04
_P_DELAY: Final = 0.03
_P_DELAY_EXPIRES: Final = 0.15
_P_OUT_OF_BAND: Final = 0.004
_P_OPEN: Final = 0.2
_P_REOPEN: Final = 0.25
_P_CLICK_AFTER_OPEN: Final = 0.25
_P_SPAM_COMPLAINT: Final = 0.001
_P_LIST_UNSUBSCRIBE: Final = 0.0015
_P_LINK_UNSUBSCRIBE_AFTER_OPEN: Final = 0.0075
_P_REPLY: Final = 0.01
_P_RELAY_REJECTION: Final = 0.08
_P_RELAY_PERMFAIL: Final = 0.06
_P_RELAY_TEMPFAIL: Final = 0.15
_P_RELAY_GIVES_UP: Final = 0.3

_EVENTS_PER_RECIPIENT: Final = 2.4  # about what the shares above produce


def _header(event_type: int) -> pb.MessageEvent:
    """The fields every event of a type shares, merged into each event in one call."""
    return pb.MessageEvent(
        type=event_type,  # type: ignore[arg-type]
        type_name=NAME_BY_TYPE[event_type],
        event_category=CATEGORY_BY_TYPE[event_type],
    )


_HEADERS: Final = {t: _header(t) for t in NAME_BY_TYPE}

_RELAY_AFTER_INJECTION: Final = ("recipient", "msg_size", "remote_addr")
#: Fields of the shared base that an event of the type does not carry: neither
#: the SparkPost seed's sample of the type nor SparkPost's documentation of it
#: shows them (engagement happens long after sending: no size or routing; a
#: relayed message's later events name neither the reply address nor a size).
_NOT_CARRIED: Final[dict[int, tuple[str, ...]]] = {
    pb.EVENT_TYPE_OPEN: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_INITIAL_OPEN: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_CLICK: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_SPAM_COMPLAINT: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_OUT_OF_BAND: ("msg_size",),
    pb.EVENT_TYPE_RELAY_INJECTION: ("remote_addr",),
    pb.EVENT_TYPE_RELAY_REJECTION: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_RELAY_DELIVERY: _RELAY_AFTER_INJECTION,
    pb.EVENT_TYPE_RELAY_TEMPFAIL: _RELAY_AFTER_INJECTION,
    pb.EVENT_TYPE_RELAY_PERMFAIL: _RELAY_AFTER_INJECTION,
}


def _cumulative(weights: list[int]) -> list[int]:
    return list(itertools.accumulate(weights))


# ---------------------------------------------------------------- generation


def generate_events(
    count: int, *, now: datetime | None = None, days: int = 30, seed: int = 42
) -> Iterator[pb.MessageEvent]:
    """Exactly `count` demo events over the `days` days up to `now` (UTC), none later.

    The same (count, now, seed) gives the same events; `now` defaults to the
    current second. A naive `now` is taken as UTC.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    world = _World(Random(seed), int(now.timestamp()), days, count)
    return itertools.islice(world.events(), count)


class _World:
    """One run's state: the rng, the contact pool and the id counters."""

    def __init__(self, rng: Random, now: int, days: int, count: int) -> None:
        self.rng = rng
        self.now = now
        self.start = now - days * _DAY
        self.count = count
        self.next_event_id = rng.randrange(10**16, 5 * 10**16)  # 17 digits, like SparkPost's
        self.message_salt = rng.getrandbits(64)
        self.messages = 0
        self.send_emails = 0
        self.contacts = self._contacts(max(100, min(count // 3, 300_000)))

    # -- the world's fixed parts

    def _contacts(self, size: int) -> list[tuple[str, int]]:
        """(address, index into _DOMAINS) per contact; contact_id is position + 1."""
        rng = self.rng
        domains = rng.choices(
            range(len(_DOMAINS)), cum_weights=_cumulative([d.weight for d in _DOMAINS]), k=size
        )
        seen: set[str] = set()
        contacts: list[tuple[str, int]] = []
        for domain in domains:
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            style = rng.random()
            if style < 0.4:
                local = f"{first}.{last}"
            elif style < 0.6:
                local = f"{first}{last}{rng.randrange(1, 100)}"
            elif style < 0.8:
                local = f"{first[0]}{last}"
            else:
                local = f"{first}_{last[0]}{rng.randrange(1950, 2010)}"
            address = f"{local}@{_DOMAINS[domain].name}"
            suffix = 2
            while address in seen:
                address = f"{local}{suffix}@{_DOMAINS[domain].name}"
                suffix += 1
            seen.add(address)
            contacts.append((address, domain))
        return contacts

    def events(self) -> Iterator[pb.MessageEvent]:
        """Mailings in send order, each given its share of the events; the last never ends."""
        mailings = max(1, min(self.count // 50, 20 + self.count // 5000))
        per_mailing = self.count / mailings
        rates = [self.rng.choice((20, 50, 100, 200)) for _ in range(mailings)]  # messages/s
        schedule = sorted(
            (self._mailing_start(per_mailing / _EVENTS_PER_RECIPIENT / rate), rate)
            for rate in rates
        )
        campaign_weights = _cumulative([c.weight for c in _CAMPAIGNS])
        order = list(range(len(_CAMPAIGNS)))
        self.rng.shuffle(order)  # the first mailings cover every campaign once
        transmissions: set[str] = set()
        emitted = 0
        for index, (start, rate) in enumerate(schedule):
            if index < len(order):
                campaign = _CAMPAIGNS[order[index]]
            else:
                campaign = self.rng.choices(_CAMPAIGNS, cum_weights=campaign_weights)[0]
            transmission = str(self.rng.randrange(10**16, 10**18))
            while transmission in transmissions:
                transmission = str(self.rng.randrange(10**16, 10**18))
            transmissions.add(transmission)
            mailing = self._mailing(campaign, transmission, index + 1, start)
            last = index == mailings - 1
            target = round(per_mailing * (index + 1))
            first_contact = self.rng.randrange(len(self.contacts))
            for recipient in itertools.count():
                if not last and emitted >= target:
                    break
                t0 = min(start + recipient // rate, self.now)
                contact = (first_contact + recipient) % len(self.contacts)
                chain = self._recipient(mailing, campaign, contact, t0)
                emitted += len(chain)
                yield from chain

    def _mailing_start(self, duration: float) -> int:
        latest = max(self.start, self.now - int(duration) - 1)
        return self.rng.randint(self.start, latest)

    def _mailing(
        self, campaign: _Campaign, transmission: str, bulk_email_id: int, start: int
    ) -> pb.MessageEvent:
        """What every message of one mailing shares."""
        brand = _BRANDS[campaign.brand]
        mailing = pb.MessageEvent(
            campaign_id=campaign.name,
            template_id=campaign.slug,
            template_version=str(campaign.template_version),
            customer_id=brand.customer_id,
            transmission_id=transmission,
            bulk_email_id=bulk_email_id,
            sender=f"msprvs1=18{transmission[-9:]}=bounces-{brand.customer_id}@sparkpostmail.com",
            friendly_from=f"news@{brand.domain}",
            ip_pool=brand.ip_pool,
            sending_ip=self.rng.choice(brand.sending_ips),
            tags=campaign.tags,
            metadata={"segment": campaign.segment, "brand": brand.name},
            msg_size=self.rng.randrange(12_000, 90_000),
        )
        if brand.subaccount_id is not None:
            mailing.subaccount_id = brand.subaccount_id
        mailing.send_time.seconds = start
        return mailing

    # -- one recipient's message

    def _recipient(
        self, mailing: pb.MessageEvent, campaign: _Campaign, contact: int, t0: int
    ) -> list[pb.MessageEvent]:
        """The causal chain of one recipient's message, in order, up to `now`."""
        address, domain_index = self.contacts[contact]
        domain = _DOMAINS[domain_index]
        self.messages += 1
        self.send_emails += 1
        message = pb.MessageEvent()
        message.CopyFrom(mailing)
        message.recipient = address
        message.routing_domain = domain.name
        message.contact_id = contact + 1
        message.send_email_id = self.send_emails
        message.message_id = self._message_id()
        message.msg_size += int(self.rng.random() * 400)
        message.metadata["user_id"] = str(contact + 1)
        chain = _Chain(self, message)

        roll = self.rng.random()
        if roll < _P_GEN_FAILURE + _P_GEN_REJECTION:
            self._generation(chain, roll < _P_GEN_FAILURE, t0)
        elif roll < _P_GEN_FAILURE + _P_GEN_REJECTION + _P_POLICY_REJECTION:
            ev = chain.add(pb.EVENT_TYPE_POLICY_REJECTION, t0)
            assert ev is not None  # t0 <= now
            ev.remote_addr = "192.0.2.10"  # the API client that injected it
            self._fail(ev, self._pick(_POLICY), address)
        else:
            chain.add(pb.EVENT_TYPE_INJECTION, t0)
            delivered = self._delivery(chain, domain, address, t0)
            if delivered is not None:
                self._engagement(chain, campaign, domain, address, delivered)
        return chain.in_time_order()

    def _message_id(self) -> str:
        """SparkPost-style hex id, unique per run: a one-to-one scramble of a counter."""
        return f"0004{(self.message_salt + self.messages * _GOLDEN64) & _MASK64:016x}"

    def _generation(self, chain: _Chain, failure: bool, t0: int) -> None:
        """The message could not be generated: one event, no injection, no message_id."""
        chain.base.ClearField("message_id")
        chain.base.ClearField("msg_size")
        chain.base.substitutions_json = '{"first_name":null,"offer":"SPRING20"}'
        if failure:
            ev = chain.add(pb.EVENT_TYPE_GENERATION_FAILURE, t0)
            table = _GEN_FAILURES
        else:
            ev = chain.add(pb.EVENT_TYPE_GENERATION_REJECTION, t0)
            table = _GEN_REJECTIONS
        assert ev is not None  # t0 <= now
        failed = self._pick(table)
        ev.error_code = failed.error_code
        ev.reason = failed.reason

    def _delivery(self, chain: _Chain, domain: _Domain, address: str, t0: int) -> int | None:
        """Delivery, bounce or delays; the delivery time, or None if not delivered (yet)."""
        rng = self.rng
        roll = rng.random()
        t = t0
        retries = 0
        if roll < _P_BOUNCE:
            ev = chain.add(pb.EVENT_TYPE_BOUNCE, t + 1 + int(rng.random() * 60))
            if ev is not None:
                ev.ip_address = domain.mx_ip
                ev.num_retries = 0
                self._fail(ev, self._pick(_BOUNCES), address)
            return None
        if roll < _P_BOUNCE + _P_DELAY:
            delay = self._pick(_DELAYS)
            for retries in range(1, 2 + int(rng.random() * 3)):
                t += 300 * 3 ** (retries - 1) + int(rng.random() * 120)
                ev = chain.add(pb.EVENT_TYPE_DELAY, t)
                if ev is None:
                    return None
                ev.ip_address = domain.mx_ip
                ev.num_retries = retries
                ev.queue_time = (t - t0) * 1000
                self._fail(ev, delay, address)
            if rng.random() < _P_DELAY_EXPIRES:
                t += 3600 + int(rng.random() * 3600)
                ev = chain.add(pb.EVENT_TYPE_BOUNCE, t)
                if ev is not None:
                    ev.ip_address = domain.mx_ip
                    ev.num_retries = retries
                    self._fail(ev, _EXPIRED, address)
                return None
        t += 1 + int(rng.random() * 30) + (300 if retries else 0)
        ev = chain.add(pb.EVENT_TYPE_DELIVERY, t)
        if ev is None:
            return None
        ev.ip_address = domain.mx_ip
        ev.num_retries = retries
        ev.queue_time = (t - t0) * 1000 + int(rng.random() * 1000)
        ev.delivery_method = "esmtp"
        return t

    def _engagement(
        self, chain: _Chain, campaign: _Campaign, domain: _Domain, address: str, delivered: int
    ) -> None:
        """What happens after delivery: late bounces, opens, clicks, complaints, replies."""
        rng = self.rng
        if rng.random() < _P_OUT_OF_BAND:
            ev = chain.add(pb.EVENT_TYPE_OUT_OF_BAND, delivered + 60 + int(rng.random() * 7200))
            if ev is not None:
                self._fail(ev, self._pick(_OUT_OF_BAND), address)
            return
        device = _DEVICES[int(rng.random() * len(_DEVICES))]
        opened: int | None = None
        if rng.random() < _P_OPEN:
            opened = self._open(chain, domain, device, delivered)
            if opened is not None and rng.random() < _P_REOPEN:
                self._open(chain, domain, device, opened)
        if opened is not None and campaign.links and rng.random() < _P_CLICK_AFTER_OPEN:
            name, path = campaign.links[int(rng.random() * len(campaign.links))]
            ev = chain.add(pb.EVENT_TYPE_CLICK, opened + 5 + int(rng.random() * 600))
            if ev is not None:
                self._engaged_from(ev, device)  # clicks come from the device, not a proxy
                ev.target_link_name = name
                brand = _BRANDS[campaign.brand]
                ev.target_link_url = (
                    f"https://www.{brand.domain}/{path}?utm_source=email&utm_campaign="
                    f"{campaign.slug}"
                )
        if opened is not None and rng.random() < _P_LINK_UNSUBSCRIBE_AFTER_OPEN:
            ev = chain.add(pb.EVENT_TYPE_LINK_UNSUBSCRIBE, opened + 10 + int(rng.random() * 900))
            if ev is not None:
                ev.mail_from = address
                ev.user_agent = device.user_agent
        elif rng.random() < _P_LIST_UNSUBSCRIBE:
            ev = chain.add(
                pb.EVENT_TYPE_LIST_UNSUBSCRIBE, delivered + 60 + int(rng.expovariate(1 / _DAY))
            )
            if ev is not None:
                ev.mail_from = address
        if rng.random() < _P_SPAM_COMPLAINT:
            ev = chain.add(
                pb.EVENT_TYPE_SPAM_COMPLAINT, delivered + 60 + int(rng.expovariate(1 / _DAY))
            )
            if ev is not None:
                ev.fbtype = "abuse"
                ev.report_by = domain.feedback_loop
                ev.report_to = f"fbl.{_BRANDS[campaign.brand].domain}"
                ev.user_str = "Reported as spam by the recipient"
        if rng.random() < _P_REPLY:
            self._relay(chain, campaign, domain, address, delivered)

    def _open(self, chain: _Chain, domain: _Domain, device: _Device, after: int) -> int | None:
        """An open, seen through the provider's image proxy when it has one."""
        t = after + 5 + int(self.rng.expovariate(1 / 21_600))
        ev = chain.add(pb.EVENT_TYPE_OPEN, t)
        if ev is None:
            return None
        self._engaged_from(ev, device if domain.proxy is None else _PROXIES[domain.proxy])
        return t

    def _engaged_from(self, ev: pb.MessageEvent, device: _Device) -> None:
        ev.user_agent = device.user_agent
        ev.geo_ip.CopyFrom(device.geo)
        ev.ip_address = f"{device.ip_prefix}{2 + int(self.rng.random() * 250)}"

    def _relay(
        self, chain: _Chain, campaign: _Campaign, domain: _Domain, address: str, after: int
    ) -> None:
        """A reply to the mailing, relayed inbound to the brand's relay webhook."""
        rng = self.rng
        brand = _BRANDS[campaign.brand]
        self.messages += 1
        inbound = f"inbound.{brand.domain}"
        relay = pb.MessageEvent(
            customer_id=brand.customer_id,
            relay_id=brand.relay_id,
            sender=address,
            recipient=f"reply+{chain.base.transmission_id[-8:]}@{inbound}",
            routing_domain=inbound,
            remote_addr=domain.mx_ip,
            msg_size=2_000 + int(rng.random() * 30_000),
        )
        t = after + 600 + int(rng.expovariate(1 / _DAY))
        if rng.random() < _P_RELAY_REJECTION:
            ev = chain.add(pb.EVENT_TYPE_RELAY_REJECTION, t, relay)
            if ev is not None:
                self._fail(ev, self._pick(_RELAY_REJECTIONS), address)
            return
        if chain.add(pb.EVENT_TYPE_RELAY_INJECTION, t, relay) is None:
            return
        retries = 0
        roll = rng.random()
        if roll < _P_RELAY_PERMFAIL:
            self._relay_final(chain, relay, pb.EVENT_TYPE_RELAY_PERMFAIL, t + 1, 0, address)
        elif roll < _P_RELAY_PERMFAIL + _P_RELAY_TEMPFAIL:
            for retries in range(1, 2 + int(rng.random() * 2)):
                t += 60 * 4**retries
                ev = chain.add(pb.EVENT_TYPE_RELAY_TEMPFAIL, t, relay)
                if ev is None:
                    break
                ev.num_retries = retries
                ev.queue_time = (t - after) * 1000
                self._fail(ev, _RELAY_TEMPFAIL, address)
            else:
                t += 3600
                final = (
                    pb.EVENT_TYPE_RELAY_PERMFAIL
                    if rng.random() < _P_RELAY_GIVES_UP
                    else pb.EVENT_TYPE_RELAY_DELIVERY
                )
                self._relay_final(chain, relay, final, t, retries, address)
        else:
            self._relay_final(chain, relay, pb.EVENT_TYPE_RELAY_DELIVERY, t + 1, 0, address)

    def _relay_final(
        self,
        chain: _Chain,
        relay: pb.MessageEvent,
        event_type: int,
        t: int,
        retries: int,
        address: str,
    ) -> None:
        ev = chain.add(event_type, t, relay)
        if ev is None:
            return
        ev.num_retries = retries
        ev.queue_time = int(self.rng.random() * 900) + retries * 60_000
        if event_type == pb.EVENT_TYPE_RELAY_PERMFAIL:
            self._fail(ev, _RELAY_PERMFAIL, address)

    # -- helpers

    def _pick(self, table: tuple[_Failure, ...]) -> _Failure:
        return self.rng.choices(table, weights=[f.weight for f in table])[0]

    @staticmethod
    def _fail(ev: pb.MessageEvent, failure: _Failure, address: str) -> None:
        """Failure fields; SparkPost's reason leaves the address out, raw_reason keeps it."""
        if failure.bounce_class:
            ev.bounce_class = failure.bounce_class
        if failure.error_code:
            ev.error_code = failure.error_code
        ev.reason = failure.reason.replace("<{rcpt}>: ", "").replace(" <{rcpt}>", "")
        ev.raw_reason = failure.reason.replace("{rcpt}", address)


class _Chain:
    """Events caused by one recipient message: copies of a base plus a type header."""

    __slots__ = ("base", "events", "latest", "ordered", "world")

    def __init__(self, world: _World, base: pb.MessageEvent) -> None:
        self.world = world
        self.base = base
        self.events: list[pb.MessageEvent] = []
        self.latest = 0
        self.ordered = True

    def add(
        self, event_type: int, t: int, base: pb.MessageEvent | None = None
    ) -> pb.MessageEvent | None:
        """The new event at second `t`, or None when `t` is still in the future."""
        if t > self.world.now:
            return None
        ev = pb.MessageEvent()
        ev.CopyFrom(self.base if base is None else base)
        ev.MergeFrom(_HEADERS[event_type])
        for name in _NOT_CARRIED.get(event_type, ()):
            ev.ClearField(name)
        ev.event_id = str(self.world.next_event_id)
        self.world.next_event_id += 1
        ev.timestamp.seconds = t
        self.events.append(ev)
        if t < self.latest:
            self.ordered = False  # e.g. a click before the second open
        else:
            self.latest = t
        return ev

    def in_time_order(self) -> list[pb.MessageEvent]:
        """Stable, so events of the same second keep their causal order."""
        return self.events if self.ordered else sorted(self.events, key=_seconds)


def _seconds(ev: pb.MessageEvent) -> int:
    return ev.timestamp.seconds
