"""SparkPost's event JSON <-> `MessageEvent`: the one place that knows the mapping.

Ingest (webhook batches, JSONL imports) and the SparkPost dialect of the REST shim
both speak SparkPost's event objects; keeping the mapping here means "SparkPost key
X is MessageEvent field Y" is written down exactly once, in `fields.FIELDS`, and both
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
per-type sample shapes (`fields.SHAPES`): the same keys in the same order, numbers as
strings, `timestamp` as "YYYY-MM-DDTHH:MM-00:00" in UTC, except `out_of_band`,
whose sample carries integer epoch seconds. Choices where the document is silent:

- A key of the shape whose field the event lacks is omitted.
- Fields the event has outside its type's shape (`event_id`, `friendly_from`,
  `subaccount_id`, `sending_ip`, ...) follow the shape's keys in `fields.FIELDS` order,
  under SparkPost's own names, as SparkPost's later API versions return them.
  Dropping them would lose data; a SparkPost client ignores keys it does not use.
- `initial_open` takes the `open` shape. A type the document does not show (an
  unknown `type_name`) renders `type` followed by every present field in
  `fields.FIELDS` order.
- `rcpt_meta` is rendered with its keys sorted: a protobuf map keeps no order.
- Keys from `extra_json` come last; a key already rendered from a typed field
  keeps the typed value.
- ``lossless=True`` is for our own exports: timestamps keep their seconds and
  fraction (RFC 3339, "Z"), and the mailevents extension keys (`bulk_email_id`,
  `send_email_id`, `contact_id`, `send_time`, `archived`, and `event_category`
  when it differs from the type's usual one) are added, so that reading the
  output back gives an equal event.
"""

from mailevents.sparkpost.read import event_from_sparkpost
from mailevents.sparkpost.write import event_to_sparkpost

__all__ = ["event_from_sparkpost", "event_to_sparkpost"]
