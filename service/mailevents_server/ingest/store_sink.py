"""The sink of `serve`'s webhook receivers: batches written straight into the store.

The one sanctioned shortcut around the gRPC API (see `sinks` for why): only
the transport is skipped. Events are validated and prepared by `ingest.prepare`
(in the worker that parsed the JSON), deduplicated by the store, and written
for the tenant that the same `KeyResolver` as the gRPC interceptor finds for
the key. `server.py` builds it and hands it to the receivers, so that the
REST shim itself needs neither the store nor auth.
"""

from __future__ import annotations

import logging

from mailevents_server import faults
from mailevents_server.auth import KeyResolver
from mailevents_server.errors import Unauthenticated
from mailevents_server.ingest.pool import from_blob
from mailevents_server.ingest.sinks import (
    MAX_CALL_EVENTS,
    Converter,
    Refused,
    Stored,
    as_prepared,
    convert_body,
    retry_later,
    stored_of,
)
from mailevents_server.store.base import Outcome, Store
from mailevents_server.workers import Workers

log = logging.getLogger(__name__)


class IntoStore:
    """Stores batches with `store.write`, for receivers in the service's own process."""

    def __init__(self, store: Store, resolver: KeyResolver, workers: Workers) -> None:
        self._store = store
        self._resolver = resolver
        self._workers = workers

    async def store(self, key: str, body: bytes, convert: Converter) -> Stored:
        try:
            tenant = await self._resolver.tenant_for_key(key)
        except Unauthenticated as err:
            self._resolver.refused(err.reason)
            raise Refused(401, "invalid API key") from None
        except Exception as exc:
            faults.log_failure(log, "webhook batch not stored: the key could not be looked up", exc)
            raise retry_later() from None
        batch = await convert_body(self._workers, as_prepared, body, convert)
        done = stored_of(batch)
        try:
            # Part by part: unpacking a part holds the event loop ~20 ms.
            for number, blob in enumerate(batch.prepared):
                start = number * MAX_CALL_EVENTS
                ready, rejected = from_blob(blob)
                done.rejects += [(batch.positions[start + r.index], r.reason) for r in rejected]
                for result in await self._store.write(tenant, ready):
                    if result.outcome is Outcome.STORED:
                        done.stored += 1
                    else:
                        done.duplicates += 1
        except Exception as exc:
            # Whatever it was (a full disk, a closed store), what this attempt
            # stored comes back as duplicates when the provider retries.
            faults.log_failure(
                log, f"webhook batch not stored ({done.stored} events stored before)", exc
            )
            raise retry_later() from None
        return done
