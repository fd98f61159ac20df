"""When and how long the client waits before sending a failed call again.

One helper for every place that tries again (an ingest call, an ingest
stream's reconnect, a search's resume), so that they all follow the same
rules: capped exponential backoff with jitter, never shorter than the
server's `google.rpc.RetryInfo` delay, within a time budget counted from
the first failure since the last progress (a call that got through, an
acknowledged batch, a streamed message).

What is retried: UNAVAILABLE when the server asked for it (RetryInfo: the
store failed for a moment) or when the server was reached before (a
connection dropped, a server restarting); a server that was never reached
is reported at once, since waiting would only delay "nothing listens
there". RESOURCE_EXHAUSTED "storage is full" is not retried: it lasts until
an operator makes room, far beyond a retry budget, and failing at once lets
the caller decide (`mailevents ingest` resumes from its checkpoint).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from mailevents.errors import MailEventsError

__all__ = ["RetryNotice", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying a call the service could not take for the moment.

    `total` seconds of retrying at most, counted from the first failure
    since the last progress (0 turns retries off); the first wait is
    `initial` seconds, each next one `multiplier` times longer up to
    `maximum`, each with random jitter, and never shorter than the delay
    the server asks for.
    """

    total: float = 30.0
    initial: float = 0.25
    maximum: float = 5.0
    multiplier: float = 2.0


@dataclass(frozen=True)
class RetryNotice:
    """Told to `on_retry` before each wait: what failed, and how long until the next try."""

    error: MailEventsError
    delay: float
    attempt: int  # 1 for the first retry since the last progress

    def __str__(self) -> str:
        if self.error.reason == "STORE_UNAVAILABLE":
            what = "store unavailable"
        else:
            what = "server unavailable"
        delay = f"{self.delay:.1f}" if self.delay < 1 else f"{self.delay:.0f}"
        return f"{what}, retrying in {delay} s"


class Retries:
    """The retries of one call or stream."""

    def __init__(
        self,
        policy: RetryPolicy,
        on_retry: Callable[[RetryNotice], None] | None = None,
        *,
        max_attempts: int | None = None,
    ) -> None:
        self._policy = policy
        self._on_retry = on_retry
        #: Retries in a row at most for a failure the server did not ask to be
        #: retried (a dropped connection); None: the time budget alone.
        self.max_attempts = max_attempts
        self.attempts = 0
        self._since: float | None = None  # when the failures since the last progress began

    def progress(self) -> None:
        """The call got through: the next failure starts a new budget."""
        self.attempts = 0
        self._since = None

    def retryable(self, error: MailEventsError, *, reached: bool) -> bool:
        """Whether `error` is one to send again after (the budget aside)."""
        if error.code == grpc.StatusCode.UNAVAILABLE:
            return reached or error.retry_delay is not None
        return False

    async def wait(self, error: MailEventsError, *, reached: bool) -> bool:
        """Sleep before the next attempt and return True; False (at once) when
        `error` is not retried or the budget is spent."""
        delay = self.next_delay(error, reached=reached)
        if delay is None:
            return False
        await self.pause(error, delay)
        return True

    async def pause(self, error: MailEventsError, delay: float) -> None:
        """Say that `error` is retried after `delay` s (to `on_retry`), and wait that long."""
        if self._on_retry is not None:
            self._on_retry(RetryNotice(error, delay, self.attempts))
        await asyncio.sleep(delay)

    def next_delay(self, error: MailEventsError, *, reached: bool) -> float | None:
        """How long to wait before the next attempt, or None to give up."""
        if not self.retryable(error, reached=reached):
            return None
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            # A count limit applies to dropped connections only: a server that
            # asks for a delay is up, and the time budget governs.
            if error.retry_delay is None:
                return None
        policy = self._policy
        backoff = min(policy.maximum, policy.initial * policy.multiplier**self.attempts)
        delay = random.uniform(backoff / 2, backoff)
        if error.retry_delay is not None:
            # Never sooner than asked; a little later, so that many clients
            # told the same delay do not all come back at once.
            delay = max(delay, error.retry_delay * random.uniform(1.0, 1.2))
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since + delay > policy.total:
            return None
        self.attempts += 1
        return delay
