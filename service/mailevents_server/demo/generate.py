"""The demo generator: the world's state, and each recipient message's chain of events.

It reads its data from `tables.py`; see the package docstring for the shape of
what it makes and why it is fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from random import Random

from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.demo.chain import Chain
from mailevents_server.demo.tables import (
    BOUNCES,
    BRANDS,
    CAMPAIGNS,
    DAY,
    DELAYS,
    DEVICES,
    DOMAINS,
    EVENTS_PER_RECIPIENT,
    EXPIRED,
    FIRST_NAMES,
    GEN_FAILURES,
    GEN_REJECTIONS,
    GOLDEN64,
    LAST_NAMES,
    MASK64,
    OUT_OF_BAND,
    P_BOUNCE,
    P_CLICK_AFTER_OPEN,
    P_DELAY,
    P_DELAY_EXPIRES,
    P_GEN_FAILURE,
    P_GEN_REJECTION,
    P_LINK_UNSUBSCRIBE_AFTER_OPEN,
    P_LIST_UNSUBSCRIBE,
    P_OPEN,
    P_OUT_OF_BAND,
    P_POLICY_REJECTION,
    P_RELAY_GIVES_UP,
    P_RELAY_PERMFAIL,
    P_RELAY_REJECTION,
    P_RELAY_TEMPFAIL,
    P_REOPEN,
    P_REPLY,
    P_SPAM_COMPLAINT,
    POLICY,
    PROXIES,
    RELAY_PERMFAIL,
    RELAY_REJECTIONS,
    RELAY_TEMPFAIL,
    Campaign,
    Device,
    Domain,
    Failure,
    cumulative,
)

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
    world = World(Random(seed), int(now.timestamp()), days, count)
    return itertools.islice(world.events(), count)


class World:
    """One run's state: the rng, the contact pool and the id counters."""

    def __init__(self, rng: Random, now: int, days: int, count: int) -> None:
        self.rng = rng
        self.now = now
        self.start = now - days * DAY
        self.count = count
        self.next_event_id = rng.randrange(10**16, 5 * 10**16)  # 17 digits, like SparkPost's
        self.message_salt = rng.getrandbits(64)
        self.messages = 0
        self.send_emails = 0
        self.contacts = self._contacts(max(100, min(count // 3, 300_000)))

    # -- the world's fixed parts

    def _contacts(self, size: int) -> list[tuple[str, int]]:
        """(address, index into DOMAINS) per contact; contact_id is position + 1."""
        rng = self.rng
        domains = rng.choices(
            range(len(DOMAINS)), cum_weights=cumulative([d.weight for d in DOMAINS]), k=size
        )
        seen: set[str] = set()
        contacts: list[tuple[str, int]] = []
        for domain in domains:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            style = rng.random()
            if style < 0.4:
                local = f"{first}.{last}"
            elif style < 0.6:
                local = f"{first}{last}{rng.randrange(1, 100)}"
            elif style < 0.8:
                local = f"{first[0]}{last}"
            else:
                local = f"{first}_{last[0]}{rng.randrange(1950, 2010)}"
            address = f"{local}@{DOMAINS[domain].name}"
            suffix = 2
            while address in seen:
                address = f"{local}{suffix}@{DOMAINS[domain].name}"
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
            (self._mailing_start(per_mailing / EVENTS_PER_RECIPIENT / rate), rate) for rate in rates
        )
        campaign_weights = cumulative([c.weight for c in CAMPAIGNS])
        order = list(range(len(CAMPAIGNS)))
        self.rng.shuffle(order)  # the first mailings cover every campaign once
        transmissions: set[str] = set()
        emitted = 0
        for index, (start, rate) in enumerate(schedule):
            if index < len(order):
                campaign = CAMPAIGNS[order[index]]
            else:
                campaign = self.rng.choices(CAMPAIGNS, cum_weights=campaign_weights)[0]
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
        self, campaign: Campaign, transmission: str, bulk_email_id: int, start: int
    ) -> pb.MessageEvent:
        """What every message of one mailing shares."""
        brand = BRANDS[campaign.brand]
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
        self, mailing: pb.MessageEvent, campaign: Campaign, contact: int, t0: int
    ) -> list[pb.MessageEvent]:
        """The causal chain of one recipient's message, in order, up to `now`."""
        address, domain_index = self.contacts[contact]
        domain = DOMAINS[domain_index]
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
        chain = Chain(self, message)

        roll = self.rng.random()
        if roll < P_GEN_FAILURE + P_GEN_REJECTION:
            self._generation(chain, roll < P_GEN_FAILURE, t0)
        elif roll < P_GEN_FAILURE + P_GEN_REJECTION + P_POLICY_REJECTION:
            ev = chain.add(pb.EVENT_TYPE_POLICY_REJECTION, t0)
            assert ev is not None  # t0 <= now
            ev.remote_addr = "192.0.2.10"  # the API client that injected it
            self._fail(ev, self._pick(POLICY), address)
        else:
            chain.add(pb.EVENT_TYPE_INJECTION, t0)
            delivered = self._delivery(chain, domain, address, t0)
            if delivered is not None:
                self._engagement(chain, campaign, domain, address, delivered)
        return chain.in_time_order()

    def _message_id(self) -> str:
        """SparkPost-style hex id, unique per run: a one-to-one scramble of a counter."""
        return f"0004{(self.message_salt + self.messages * GOLDEN64) & MASK64:016x}"

    def _generation(self, chain: Chain, failure: bool, t0: int) -> None:
        """The message could not be generated: one event, no injection, no message_id."""
        chain.base.ClearField("message_id")
        chain.base.ClearField("msg_size")
        chain.base.substitutions_json = '{"first_name":null,"offer":"SPRING20"}'
        if failure:
            ev = chain.add(pb.EVENT_TYPE_GENERATION_FAILURE, t0)
            table = GEN_FAILURES
        else:
            ev = chain.add(pb.EVENT_TYPE_GENERATION_REJECTION, t0)
            table = GEN_REJECTIONS
        assert ev is not None  # t0 <= now
        failed = self._pick(table)
        ev.error_code = failed.error_code
        ev.reason = failed.reason

    def _delivery(self, chain: Chain, domain: Domain, address: str, t0: int) -> int | None:
        """Delivery, bounce or delays; the delivery time, or None if not delivered (yet)."""
        rng = self.rng
        roll = rng.random()
        t = t0
        retries = 0
        if roll < P_BOUNCE:
            ev = chain.add(pb.EVENT_TYPE_BOUNCE, t + 1 + int(rng.random() * 60))
            if ev is not None:
                ev.ip_address = domain.mx_ip
                ev.num_retries = 0
                self._fail(ev, self._pick(BOUNCES), address)
            return None
        if roll < P_BOUNCE + P_DELAY:
            delay = self._pick(DELAYS)
            for retries in range(1, 2 + int(rng.random() * 3)):
                t += 300 * 3 ** (retries - 1) + int(rng.random() * 120)
                ev = chain.add(pb.EVENT_TYPE_DELAY, t)
                if ev is None:
                    return None
                ev.ip_address = domain.mx_ip
                ev.num_retries = retries
                ev.queue_time = (t - t0) * 1000
                self._fail(ev, delay, address)
            if rng.random() < P_DELAY_EXPIRES:
                t += 3600 + int(rng.random() * 3600)
                ev = chain.add(pb.EVENT_TYPE_BOUNCE, t)
                if ev is not None:
                    ev.ip_address = domain.mx_ip
                    ev.num_retries = retries
                    self._fail(ev, EXPIRED, address)
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
        self, chain: Chain, campaign: Campaign, domain: Domain, address: str, delivered: int
    ) -> None:
        """What happens after delivery: late bounces, opens, clicks, complaints, replies."""
        rng = self.rng
        if rng.random() < P_OUT_OF_BAND:
            ev = chain.add(pb.EVENT_TYPE_OUT_OF_BAND, delivered + 60 + int(rng.random() * 7200))
            if ev is not None:
                self._fail(ev, self._pick(OUT_OF_BAND), address)
            return
        device = DEVICES[int(rng.random() * len(DEVICES))]
        opened: int | None = None
        if rng.random() < P_OPEN:
            opened = self._open(chain, domain, device, delivered)
            if opened is not None and rng.random() < P_REOPEN:
                self._open(chain, domain, device, opened)
        if opened is not None and campaign.links and rng.random() < P_CLICK_AFTER_OPEN:
            name, path = campaign.links[int(rng.random() * len(campaign.links))]
            ev = chain.add(pb.EVENT_TYPE_CLICK, opened + 5 + int(rng.random() * 600))
            if ev is not None:
                self._engaged_from(ev, device)  # clicks come from the device, not a proxy
                ev.target_link_name = name
                brand = BRANDS[campaign.brand]
                ev.target_link_url = (
                    f"https://www.{brand.domain}/{path}?utm_source=email&utm_campaign="
                    f"{campaign.slug}"
                )
        if opened is not None and rng.random() < P_LINK_UNSUBSCRIBE_AFTER_OPEN:
            ev = chain.add(pb.EVENT_TYPE_LINK_UNSUBSCRIBE, opened + 10 + int(rng.random() * 900))
            if ev is not None:
                ev.mail_from = address
                ev.user_agent = device.user_agent
        elif rng.random() < P_LIST_UNSUBSCRIBE:
            ev = chain.add(
                pb.EVENT_TYPE_LIST_UNSUBSCRIBE, delivered + 60 + int(rng.expovariate(1 / DAY))
            )
            if ev is not None:
                ev.mail_from = address
        if rng.random() < P_SPAM_COMPLAINT:
            ev = chain.add(
                pb.EVENT_TYPE_SPAM_COMPLAINT, delivered + 60 + int(rng.expovariate(1 / DAY))
            )
            if ev is not None:
                ev.fbtype = "abuse"
                ev.report_by = domain.feedback_loop
                ev.report_to = f"fbl.{BRANDS[campaign.brand].domain}"
                ev.user_str = "Reported as spam by the recipient"
        if rng.random() < P_REPLY:
            self._relay(chain, campaign, domain, address, delivered)

    def _open(self, chain: Chain, domain: Domain, device: Device, after: int) -> int | None:
        """An open, seen through the provider's image proxy when it has one."""
        t = after + 5 + int(self.rng.expovariate(1 / 21_600))
        ev = chain.add(pb.EVENT_TYPE_OPEN, t)
        if ev is None:
            return None
        self._engaged_from(ev, device if domain.proxy is None else PROXIES[domain.proxy])
        return t

    def _engaged_from(self, ev: pb.MessageEvent, device: Device) -> None:
        ev.user_agent = device.user_agent
        ev.geo_ip.CopyFrom(device.geo)
        ev.ip_address = f"{device.ip_prefix}{2 + int(self.rng.random() * 250)}"

    def _relay(
        self, chain: Chain, campaign: Campaign, domain: Domain, address: str, after: int
    ) -> None:
        """A reply to the mailing, relayed inbound to the brand's relay webhook."""
        rng = self.rng
        brand = BRANDS[campaign.brand]
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
        t = after + 600 + int(rng.expovariate(1 / DAY))
        if rng.random() < P_RELAY_REJECTION:
            ev = chain.add(pb.EVENT_TYPE_RELAY_REJECTION, t, relay)
            if ev is not None:
                self._fail(ev, self._pick(RELAY_REJECTIONS), address)
            return
        if chain.add(pb.EVENT_TYPE_RELAY_INJECTION, t, relay) is None:
            return
        retries = 0
        roll = rng.random()
        if roll < P_RELAY_PERMFAIL:
            self._relay_final(chain, relay, pb.EVENT_TYPE_RELAY_PERMFAIL, t + 1, 0, address)
        elif roll < P_RELAY_PERMFAIL + P_RELAY_TEMPFAIL:
            for retries in range(1, 2 + int(rng.random() * 2)):
                t += 60 * 4**retries
                ev = chain.add(pb.EVENT_TYPE_RELAY_TEMPFAIL, t, relay)
                if ev is None:
                    break
                ev.num_retries = retries
                ev.queue_time = (t - after) * 1000
                self._fail(ev, RELAY_TEMPFAIL, address)
            else:
                t += 3600
                final = (
                    pb.EVENT_TYPE_RELAY_PERMFAIL
                    if rng.random() < P_RELAY_GIVES_UP
                    else pb.EVENT_TYPE_RELAY_DELIVERY
                )
                self._relay_final(chain, relay, final, t, retries, address)
        else:
            self._relay_final(chain, relay, pb.EVENT_TYPE_RELAY_DELIVERY, t + 1, 0, address)

    def _relay_final(
        self,
        chain: Chain,
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
            self._fail(ev, RELAY_PERMFAIL, address)

    # -- helpers

    def _pick(self, table: tuple[Failure, ...]) -> Failure:
        return self.rng.choices(table, weights=[f.weight for f in table])[0]

    @staticmethod
    def _fail(ev: pb.MessageEvent, failure: Failure, address: str) -> None:
        """Failure fields; SparkPost's reason leaves the address out, raw_reason keeps it."""
        if failure.bounce_class:
            ev.bounce_class = failure.bounce_class
        if failure.error_code:
            ev.error_code = failure.error_code
        ev.reason = failure.reason.replace("<{rcpt}>: ", "").replace(" <{rcpt}>", "")
        ev.raw_reason = failure.reason.replace("{rcpt}", address)
