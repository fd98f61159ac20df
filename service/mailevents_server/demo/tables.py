"""The demo world's fixed parts: senders, campaigns, domains, names, devices, failures
and the shares of each event type.

These are data, kept apart from the generator (`generate.py`) so that making the
demo look more like a provider's real data is an edit to a table, not to code.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Final

from mailevents.event_types import CATEGORY_BY_TYPE, NAME_BY_TYPE
from mailevents.v1 import message_event_pb2 as pb

DAY: Final = 86_400
MASK64: Final = (1 << 64) - 1
GOLDEN64: Final = 0x9E3779B97F4A7C15  # odd, so n -> n * GOLDEN64 mod 2**64 is one-to-one


# ---------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    domain: str
    customer_id: str
    subaccount_id: str | None
    ip_pool: str
    sending_ips: tuple[str, ...]
    relay_id: str


BRANDS: Final = (
    Brand(
        "Northwind Outfitters",
        "northwind-outfitters.example",
        "10423",
        None,
        "marketing",
        ("198.51.100.21", "198.51.100.22", "198.51.100.23"),
        "104-231-977",
    ),
    Brand(
        "Bluebird Bank",
        "bluebird-bank.example",
        "10424",
        "3",
        "transactional",
        ("198.51.100.40", "198.51.100.41"),
        "104-241-118",
    ),
    Brand(
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
class Campaign:
    name: str
    brand: int  # index into BRANDS
    template_version: int
    tags: tuple[str, ...]
    segment: str
    links: tuple[tuple[str, str], ...]  # (link name, path)
    weight: int  # how often it is sent

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


SHOP = (("Shop now", "shop"), ("View in browser", "view"))
CAMPAIGNS: Final = (
    Campaign("Weekly Newsletter", 0, 14, ("newsletter", "weekly"), "all", SHOP, 10),
    Campaign("Spring Sale", 0, 3, ("promo", "sale"), "active", SHOP, 6),
    Campaign("Abandoned Cart Reminder", 0, 7, ("triggered", "cart"), "cart", SHOP, 8),
    Campaign("Welcome Series 1", 0, 5, ("onboarding",), "new", (("Get started", "start"),), 5),
    Campaign("Welcome Series 2", 0, 4, ("onboarding",), "new", (("Our story", "about"),), 4),
    Campaign("Product Launch: Trail Runner X", 0, 2, ("launch", "promo"), "active", SHOP, 3),
    Campaign("Flash Sale 48h", 0, 1, ("promo", "flash"), "engaged", SHOP, 4),
    Campaign("Holiday Gift Guide", 0, 2, ("seasonal", "promo"), "all", SHOP, 3),
    Campaign("Price Drop Alert", 0, 6, ("triggered", "price"), "watchers", SHOP, 4),
    Campaign(
        "Monthly Statement Ready",
        1,
        9,
        ("statement", "transactional"),
        "customers",
        (("View statement", "statements"),),
        6,
    ),
    Campaign("Security Alert", 1, 4, ("security", "transactional"), "customers", (), 2),
    Campaign("Password Reset", 1, 11, ("security", "transactional"), "customers", (), 3),
    Campaign(
        "Loyalty Points Statement",
        1,
        3,
        ("loyalty",),
        "members",
        (("Redeem points", "rewards"),),
        3,
    ),
    Campaign(
        "Customer Survey", 1, 2, ("survey",), "customers", (("Take the survey", "survey"),), 2
    ),
    Campaign(
        "Order Confirmation",
        2,
        8,
        ("transactional", "order"),
        "buyers",
        (("Manage booking", "bookings"),),
        7,
    ),
    Campaign(
        "Shipping Update", 2, 5, ("transactional", "order"), "buyers", (("Track", "track"),), 5
    ),
    Campaign(
        "Travel Deals Digest",
        2,
        12,
        ("newsletter", "deals"),
        "all",
        (("See deals", "deals"), ("View in browser", "view")),
        8,
    ),
    Campaign(
        "Re-engagement: We Miss You",
        2,
        2,
        ("winback",),
        "lapsed",
        (("Come back", "welcome-back"),),
        3,
    ),
    Campaign(
        "Event Invitation: Summer Webinar",
        2,
        1,
        ("event", "webinar"),
        "engaged",
        (("Register", "webinar"),),
        2,
    ),
    Campaign(
        "Account Anniversary", 2, 3, ("triggered", "loyalty"), "members", (("Claim", "gift"),), 2
    ),
)


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    weight: int
    mx_ip: str
    feedback_loop: str  # who sends this provider's complaint reports
    proxy: int | None  # index into PROXIES when the provider fetches images itself


DOMAINS: Final = (
    Domain("gmail.com", 34, "142.250.102.27", "feedback.google.com", 0),
    Domain("yahoo.com", 10, "67.195.204.72", "fbl.yahoo.com", 1),
    Domain("outlook.com", 9, "52.101.41.3", "jmrp.microsoft.com", None),
    Domain("hotmail.com", 8, "52.101.40.5", "jmrp.microsoft.com", None),
    Domain("icloud.com", 6, "17.57.154.33", "fbl.icloud.com", None),
    Domain("aol.com", 3, "67.195.228.106", "fbl.aol.com", 1),
    Domain("comcast.net", 2, "96.114.157.80", "fbl.comcast.net", None),
    Domain("gmx.de", 2, "212.227.17.5", "fbl.gmx.net", None),
    Domain("web.de", 1, "212.227.15.9", "fbl.web.de", None),
    Domain("protonmail.com", 1, "185.70.42.128", "abuse.proton.me", None),
    Domain("contoso.com", 4, "203.0.113.80", "abuse.contoso.com", None),
    Domain("fabrikam.com", 3, "203.0.113.91", "abuse.fabrikam.com", None),
    Domain("initech.com", 2, "203.0.113.102", "postmaster.initech.com", None),
    Domain("globex.com", 2, "203.0.113.113", "postmaster.globex.com", None),
    Domain("umbrella-corp.com", 1, "203.0.113.124", "abuse.umbrella-corp.com", None),
)

FIRST_NAMES: Final = (
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara "
    "richard susan joseph jessica thomas sarah charles karen chris nancy daniel lisa matthew "
    "betty anthony margaret mark sandra paul ashley steven emily andrew donna joshua michelle "
    "kevin carol brian amanda george melissa timothy deborah sofia lukas emma noah olivia liam "
    "mia lucas ana mateo yuki hiroshi priya arjun fatima omar chen wei"
).split()
LAST_NAMES: Final = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen "
    "hill flores green adams nelson baker hall rivera campbell mitchell carter roberts mueller "
    "schmidt schneider fischer weber tanaka suzuki sato patel shah khan kim park"
).split()


@dataclass(frozen=True, slots=True)
class Device:
    user_agent: str
    geo: pb.GeoIp
    ip_prefix: str  # an opener's address is this plus a last octet


def geo(country: str, region: str, city: str, latitude: float, longitude: float) -> pb.GeoIp:
    return pb.GeoIp(
        country=country, region=region, city=city, latitude=latitude, longitude=longitude
    )


CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Mobile Safari/537.36"
)
WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"
)
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17531"
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Mobile/15E148"
)

#: Devices recipients open and click from.
DEVICES: Final = (
    Device(CHROME_MAC, geo("US", "MD", "Columbia", 39.1749, -76.8375), "73.128.44."),
    Device(IPHONE, geo("US", "NY", "New York", 40.7128, -74.006), "172.58.10."),
    Device(IPHONE, geo("US", "CA", "San Francisco", 37.7749, -122.4194), "107.77.205."),
    Device(ANDROID, geo("US", "TX", "Austin", 30.2672, -97.7431), "99.43.112."),
    Device(WINDOWS_EDGE, geo("US", "IL", "Chicago", 41.8781, -87.6298), "24.13.87."),
    Device(OUTLOOK, geo("US", "WA", "Seattle", 47.6062, -122.3321), "50.46.130."),
    Device(IPHONE, geo("GB", "ENG", "London", 51.5074, -0.1278), "86.12.71."),
    Device(ANDROID, geo("DE", "BE", "Berlin", 52.52, 13.405), "91.64.18."),
    Device(WINDOWS_EDGE, geo("FR", "IDF", "Paris", 48.8566, 2.3522), "90.84.143."),
    Device(IPAD, geo("CA", "ON", "Toronto", 43.6532, -79.3832), "142.114.56."),
    Device(IPHONE, geo("AU", "NSW", "Sydney", -33.8688, 151.2093), "120.18.9."),
    Device(ANDROID, geo("IN", "MH", "Mumbai", 19.076, 72.8777), "49.36.21."),
    Device(CHROME_MAC, geo("NL", "NH", "Amsterdam", 52.3676, 4.9041), "145.53.4."),
    Device(ANDROID, geo("BR", "SP", "Sao Paulo", -23.5505, -46.6333), "177.92.33."),
    Device(IPHONE, geo("JP", "13", "Tokyo", 35.6762, 139.6503), "126.208.150."),
)

#: Providers that fetch images themselves, so opens come from their proxies.
PROXIES: Final = (
    Device(
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        geo("US", "CA", "Mountain View", 37.4056, -122.0775),
        "66.249.84.",
    ),
    Device(
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        geo("US", "NY", "New York", 40.7143, -74.006),
        "74.6.40.",
    ),
)


@dataclass(frozen=True, slots=True)
class Failure:
    bounce_class: int
    error_code: str
    reason: str  # "{rcpt}" marks where raw_reason names the recipient
    weight: int


BOUNCES: Final = (
    Failure(10, "550", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown", 34),
    Failure(22, "552", "552 5.2.2 <{rcpt}>: The email account is over quota", 10),
    Failure(40, "550", "550 5.0.0 Message rejected by the receiving server", 8),
    Failure(51, "550", "550 5.7.1 Service unavailable, client host blocked using Spamhaus", 6),
    Failure(50, "554", "554 5.7.1 Message blocked due to local policy", 5),
    Failure(52, "554", "554 5.7.1 Message rejected because of unacceptable content", 4),
    Failure(1, "554", "554 5.0.0 Undetermined bounce: message could not be delivered", 4),
    Failure(21, "550", "550 5.1.2 Host or domain name not found for <{rcpt}>", 3),
    Failure(25, "554", "554 5.7.1 [internal] recipient address was suppressed by an admin", 3),
    Failure(70, "451", "451 4.3.0 Temporary server error, no more retries", 3),
    Failure(30, "550", "550 5.1.0 No recipient address found in the envelope", 2),
    Failure(54, "554", "554 5.7.1 <{rcpt}>: Relay access denied", 2),
    Failure(23, "552", "552 5.3.4 Message size exceeds fixed maximum message size", 2),
    Failure(53, "552", "552 5.7.0 Message blocked: it contains a prohibited attachment", 1),
    Failure(24, "550", "550 5.4.7 [internal] exceeded max time without delivery", 2),
)
DELAYS: Final = (
    Failure(70, "451", "451 4.7.1 Greylisted, please try again in 300 seconds", 5),
    Failure(24, "421", "421 4.4.2 Connection timed out while talking to the remote host", 3),
    Failure(22, "452", "452 4.2.2 <{rcpt}>: Mailbox full, try again later", 2),
    Failure(21, "451", "451 4.4.0 DNS resolution of the recipient domain failed", 1),
    Failure(70, "421", "421 4.7.0 Temporary rate limit: too many messages, slow down", 3),
)
#: A delayed message that never gets through.
EXPIRED: Final = Failure(24, "550", "550 5.4.7 [internal] exceeded max time without delivery", 1)
OUT_OF_BAND: Final = (
    Failure(10, "550", "550 5.1.1 <{rcpt}>: user unknown (delivered then bounced)", 5),
    Failure(60, "554", "554 5.0.0 Auto-Reply: Out of Office until further notice", 4),
    Failure(100, "554", "554 5.0.0 Challenge-Response: please confirm you are a human", 1),
    Failure(90, "554", "554 5.0.0 Unsubscribe request received by reply", 1),
    Failure(80, "554", "554 5.0.0 Subscribe request received by reply", 1),
    Failure(1, "554", "554 5.0.0 Undetermined asynchronous bounce", 2),
)
POLICY: Final = (
    Failure(0, "554", "554 5.7.1 recipient address was suppressed due to customer policy", 7),
    Failure(0, "554", "554 5.7.1 recipient address was suppressed due to system policy", 2),
    Failure(0, "554", "554 5.7.1 [internal] Exceed Sending Limit (daily)", 1),
)
GEN_FAILURES: Final = (
    Failure(
        0,
        "554",
        "554 5.3.3 [internal] Error while rendering part html: substitution value"
        " 'first_name' did not exist or was null",
        3,
    ),
    Failure(0, "554", "554 5.3.3 [internal] Error while rendering part text: line 14", 1),
)
GEN_REJECTIONS: Final = (
    Failure(0, "554", "554 5.7.1 [internal] Generation rejected: template is not published", 1),
    Failure(0, "554", "554 5.7.1 [internal] Generation rejected: sending domain unverified", 1),
)
RELAY_REJECTIONS: Final = (
    Failure(0, "550", "550 5.7.1 Relaying denied: inbound domain has no relay webhook", 2),
    Failure(0, "552", "552 5.3.4 Message too big for the relay webhook", 1),
)
RELAY_TEMPFAIL: Final = Failure(0, "421", "421 4.4.2 Relay webhook endpoint timed out", 1)
RELAY_PERMFAIL: Final = Failure(0, "550", "550 5.0.0 Relay webhook endpoint returned 410", 1)


# Shares of recipient messages and of their follow-ups. Tests check the resulting mix.
P_GEN_FAILURE: Final = 0.002
P_GEN_REJECTION: Final = 0.001
P_POLICY_REJECTION: Final = 0.005
P_BOUNCE: Final = 0.04
P_DELAY: Final = 0.03
P_DELAY_EXPIRES: Final = 0.15
P_OUT_OF_BAND: Final = 0.004
P_OPEN: Final = 0.2
P_REOPEN: Final = 0.25
P_CLICK_AFTER_OPEN: Final = 0.25
P_SPAM_COMPLAINT: Final = 0.001
P_LIST_UNSUBSCRIBE: Final = 0.0015
P_LINK_UNSUBSCRIBE_AFTER_OPEN: Final = 0.0075
P_REPLY: Final = 0.01
P_RELAY_REJECTION: Final = 0.08
P_RELAY_PERMFAIL: Final = 0.06
P_RELAY_TEMPFAIL: Final = 0.15
P_RELAY_GIVES_UP: Final = 0.3

EVENTS_PER_RECIPIENT: Final = 2.4  # about what the shares above produce


def header(event_type: int) -> pb.MessageEvent:
    """The fields every event of a type shares, merged into each event in one call."""
    return pb.MessageEvent(
        type=event_type,  # type: ignore[arg-type]
        type_name=NAME_BY_TYPE[event_type],
        event_category=CATEGORY_BY_TYPE[event_type],
    )


HEADERS: Final = {t: header(t) for t in NAME_BY_TYPE}

RELAY_AFTER_INJECTION: Final = ("recipient", "msg_size", "remote_addr")
#: Fields of the shared base that an event of the type does not carry: neither
#: the SparkPost seed's sample of the type nor SparkPost's documentation of it
#: shows them (engagement happens long after sending: no size or routing; a
#: relayed message's later events name neither the reply address nor a size).
NOT_CARRIED: Final[dict[int, tuple[str, ...]]] = {
    pb.EVENT_TYPE_OPEN: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_INITIAL_OPEN: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_CLICK: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_SPAM_COMPLAINT: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_OUT_OF_BAND: ("msg_size",),
    pb.EVENT_TYPE_RELAY_INJECTION: ("remote_addr",),
    pb.EVENT_TYPE_RELAY_REJECTION: ("msg_size", "routing_domain"),
    pb.EVENT_TYPE_RELAY_DELIVERY: RELAY_AFTER_INJECTION,
    pb.EVENT_TYPE_RELAY_TEMPFAIL: RELAY_AFTER_INJECTION,
    pb.EVENT_TYPE_RELAY_PERMFAIL: RELAY_AFTER_INJECTION,
}


def cumulative(weights: list[int]) -> list[int]:
    return list(itertools.accumulate(weights))
