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

from mailevents_server.demo.generate import generate_events

__all__ = ["generate_events"]
