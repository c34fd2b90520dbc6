"""Announcing what containment changed: the outbox's events, published once the broker
takes them, whatever stops in between.

A change's routing-change event (and a failed step's own incident) is written to the
flag store's outbox with the flag, atomically (:mod:`riskstream.core.outbox`), exactly
as it will be published; :meth:`Announcer.publish` publishes what waits there and
removes it.  Each call that changes a flag publishes before it returns (raising
BusError if the broker did not take it: the event stays in the outbox), and the
worker's timer publishes whatever is left at every tick, so a worker that restarts
publishes what its predecessor wrote and did not announce.  The same event may be
published twice (two processes publish at once, or a delivery's report was lost),
never with other contents: subscribers de-duplicate by its id, the change id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from riskstream.codec import encode_cloudevent
from riskstream.core.incidents import INCIDENT_OPENED
from riskstream.core.outbox import OutboxEvent
from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import format_time
from riskstream.errors import BusError
from riskstream.metrics import ContainmentMetrics
from riskstream.ports import FlagStore, Producer

__all__ = ["OUTBOX_PAGE", "ROUTING_CHANGED", "Announcer", "bus_outage"]

log = logging.getLogger(__name__)

ROUTING_CHANGED = "io.riskstream.routing.changed"
OUTBOX_PAGE = 100  # events read from the outbox, published and removed at a time

#: librdkafka's names for a record the broker refuses whatever its state: retried, it
#: would be refused for ever.  Any other BusError (a timeout, no broker, no leader, a
#: refused authorisation) is the infrastructure's, and is waited out.
_RECORD_REFUSED = frozenset({"MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "INVALID_MSG_SIZE"})


def bus_outage(exc: BusError) -> bool:
    """Whether ``exc`` is the broker's (or the way to it's) failure, not the record's:
    the work that raised it is retried, not dead-lettered."""
    return exc.code not in _RECORD_REFUSED


class Announcer:
    """Builds the events a change announces and publishes the outbox.

    It remembers what this process wrote and whether the outbox held nothing else
    when it last looked: then a call publishes what it wrote with no read of the
    outbox.  At start it knows nothing (a worker that stopped may have left events).
    """

    def __init__(
        self,
        flags: FlagStore,
        producer: Producer,
        metrics: ContainmentMetrics,
        routing_topic: str,
        incidents_topic: str,
    ) -> None:
        self._flags = flags
        self._producer = producer
        self._metrics = metrics
        self._routing_topic = routing_topic
        self._incidents_topic = incidents_topic
        self._in_hand: list[OutboxEvent] = []
        self._clean = False

    def routing_event(self, cid: str, flag: RoutingFlag) -> OutboxEvent:
        """The routing-change event of a change, as it is written: the new flag."""
        headers, value = encode_cloudevent(
            ROUTING_CHANGED, cid, format_time(flag.updated_at), flag.model_id, flag.to_data()
        )
        return OutboxEvent(cid, self._routing_topic, flag.model_id.encode(), value, tuple(headers))

    def incident_event(self, data: Mapping[str, Any]) -> OutboxEvent:
        """The opened-incident event of an incident record's data (a failed step's)."""
        incident_id, subject = str(data["incident_id"]), str(data["subject"])
        headers, value = encode_cloudevent(
            INCIDENT_OPENED, incident_id, str(data["detected_at"]), subject, data
        )
        topic = self._incidents_topic
        return OutboxEvent(incident_id, topic, subject.encode(), value, tuple(headers))

    def written(self, events: Sequence[OutboxEvent], dropped: Sequence[str]) -> None:
        """A change was written with ``events``; the full outbox dropped ``dropped``."""
        self._in_hand.extend(events)
        if dropped:
            self._metrics.outbox_dropped.inc(len(dropped))
            log.error(
                "the outbox is full (the broker has not taken its events for long): dropped "
                "the oldest %d, never to be published: %s; their changes stay in the audit "
                "trail (GET /api/v1/audit)", len(dropped), ", ".join(dropped),
            )  # fmt: skip

    def publish(self, everything: bool = False) -> int:
        """Publish the events waiting in the outbox, oldest first, and remove them; how
        many went.  Raises BusError when the broker does not take them: they stay, for
        the next call.  Without ``everything``, only when this process wrote some or
        does not know the outbox to be empty (it reads nothing otherwise); the timer
        passes ``everything`` at each tick, for what other processes left."""
        in_hand, self._in_hand = self._in_hand, []
        if self._clean and not everything:
            if in_hand:
                self._send(in_hand)
            return len(in_hand)
        sent = 0
        outbox = self._flags.outbox(OUTBOX_PAGE)
        self._metrics.outbox.set(outbox.size)
        # Each page is removed once sent; one the store cannot read stays and counts.
        for _ in range(outbox.size // OUTBOX_PAGE + 1):
            if not outbox.events:
                break
            self._send(outbox.events)
            sent += len(outbox.events)
            outbox = self._flags.outbox(OUTBOX_PAGE)
            self._metrics.outbox.set(outbox.size)
        self._clean = outbox.size == 0
        return sent

    def _send(self, events: Sequence[OutboxEvent]) -> None:
        """Publish and remove ``events``: the first alone, then the rest together.  A
        broker (or a topic) that is away fails the first, and nothing else goes out
        to be published twice when they are tried again."""
        for batch in (events[:1], events[1:]):
            if not batch:
                continue
            try:
                for event in batch:
                    self._producer.produce(event.topic, event.value, event.key, event.headers)
                self._producer.flush()
            except BusError:
                self._clean = False  # they wait there: read it next time
                raise
            self._flags.delivered([event.event_id for event in batch])
