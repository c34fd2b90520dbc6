"""The outbox: events a flag change publishes, recorded with the change itself.

A flag change is written to the flag store, then announced on Kafka (the
routing-changes topic; a failed progressive step's own incident too).  Two writes to
two systems cannot be one: a worker that stops between them (a crash, a restart,
the broker away) would lose the announcement for good, and one that announced the
change again later could only say what the flag is *now*, perhaps another writer's.
So each :class:`~riskstream.core.routing.FlagChange` carries the events it
publishes, exactly as they will be sent, and the flag store writes them in the same
atomic step as the flag (for Redis, the same script, in the same hash slot).  Whoever
publishes them removes them once the broker took them; what is left (the broker was
away, the process stopped) is published by the next one to look: the containment
worker at start and at every tick.  An event may thus be published more than once,
never with other contents: consumers de-duplicate by its id (the CloudEvents
``ce_id``, the change id).

A store keeps at most :data:`MAX_OUTBOX` events; past that it drops the oldest (the
change stays in the audit trail) and says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from riskstream.errors import ContainmentError

__all__ = ["MAX_EVENTS_PER_CHANGE", "MAX_OUTBOX", "OutboxEvent", "check_events"]

MAX_OUTBOX: Final = 10_000
"""Events an outbox keeps at most.  The worker waits out a broker outage on the incident
at hand, so while the broker is away the outbox grows only by what the timer changes
(steps, ttl lapses) and people change by hand: some per model.  Each is about 1 KB."""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One record to publish: where, its key, value and headers, as the producer takes
    them.  ``event_id`` is its CloudEvents id, unique in the outbox."""

    event_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> bytes:
        """What a store keeps (all of it UTF-8: readable with redis-cli)."""
        return orjson.dumps(
            {
                "id": self.event_id,
                "topic": self.topic,
                "key": None if self.key is None else self.key.decode(),
                "value": self.value.decode(),
                "headers": [[name, value.decode()] for name, value in self.headers],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> OutboxEvent:
        """Raises ValueError, KeyError or TypeError on what :meth:`to_json` does not write."""
        data: Any = orjson.loads(raw)
        key = data["key"]
        return cls(
            event_id=str(data["id"]),
            topic=str(data["topic"]),
            key=None if key is None else str(key).encode(),
            value=str(data["value"]).encode(),
            headers=tuple((str(n), str(v).encode()) for n, v in data["headers"]),
        )


MAX_EVENTS_PER_CHANGE: Final = 16
"""A store keeps a change's events in their order within its audit seq (Redis: a score
of ``seq * 16 + place``)."""


def check_events(change_id: str, events: Sequence[OutboxEvent]) -> None:
    """Refuse, before anything is written, events a store could not keep or tell apart."""
    if len(events) > MAX_EVENTS_PER_CHANGE:
        raise ContainmentError(
            f"flag change {change_id}: {len(events)} events; a change announces itself "
            f"with at most {MAX_EVENTS_PER_CHANGE}; nothing changed"
        )
    seen: set[str] = set()
    for event in events:
        if not event.event_id or event.event_id in seen:
            raise ContainmentError(
                f"flag change {change_id}: its events need distinct, non-empty ids "
                f"(got {event.event_id!r} twice or empty); nothing changed"
            )
        seen.add(event.event_id)
        try:
            for part in (event.key or b"", event.value, *(v for _, v in event.headers)):
                part.decode()
        except UnicodeDecodeError as exc:
            raise ContainmentError(
                f"flag change {change_id}: event {event.event_id} holds bytes that are no "
                f"UTF-8 ({exc}); nothing changed"
            ) from exc
