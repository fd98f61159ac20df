"""One recipient message's chain of events: copies of its base event, each with a type header."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.demo.tables import HEADERS, NOT_CARRIED

if TYPE_CHECKING:
    from mailevents_server.demo.generate import World


class Chain:
    """Events caused by one recipient message: copies of a base plus a type header."""

    __slots__ = ("base", "events", "latest", "ordered", "world")

    def __init__(self, world: World, base: pb.MessageEvent) -> None:
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
        ev.MergeFrom(HEADERS[event_type])
        for name in NOT_CARRIED.get(event_type, ()):
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
