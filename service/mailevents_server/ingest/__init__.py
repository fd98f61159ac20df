"""Getting events in: validation and prepare, the worker pool, the webhook receivers.

- `prepare`: what makes an event acceptable, and how it becomes a row (stores
  take `PreparedEvent`s only); re-exported here, as every write path uses it.
- `pool`: large ingest batches prepared in worker processes.
- `receivers`: the providers' webhook endpoints (aiohttp routes), which store
  through a `sinks.Sink`: through the service's gRPC API (`sinks.ThroughService`)
  or, inside `serve`, straight into the store (`store_sink.IntoStore`).
- `sendgrid`: SendGrid's event format (SparkPost's lives with the client, in
  `mailevents.sparkpost`, which the CLI's imports also read).
"""

from mailevents_server.ingest.prepare import (
    MAX_EVENT_BYTES,
    MAX_EVENT_ID_LENGTH,
    PreparedEvent,
    Rejection,
    prepare,
)

__all__ = ["MAX_EVENT_BYTES", "MAX_EVENT_ID_LENGTH", "PreparedEvent", "Rejection", "prepare"]
