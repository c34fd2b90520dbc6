"""The whole product in one process: processor and containment on in-memory adapters.

The embedded default wires the same services the Kafka deployment runs to the
in-memory bus and stores, so a records file (or a simulator) can be pushed
through detection *and* containment with no server — for ``riskstream demo``, for
back-tests and for tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.incidents import InMemoryIncidentStore
from riskstream.bootstrap import change_retention_s, embedded_containment, embedded_processor
from riskstream.config import Config
from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import parse_time
from riskstream.services.backfill import SuspectBackfill, publisher

__all__ = ["EmbeddedPipeline", "EmittedIncident"]


@dataclass(slots=True)
class EmittedIncident:
    """One incident as the pipeline saw it, with what containment did about it."""

    data: dict[str, Any]
    outcomes: list[str] = field(default_factory=list)


class EmbeddedPipeline:
    """Records in (kind, key, event) order -> incidents, containment, flags."""

    def __init__(
        self,
        config: Config,
        progress: Callable[[int], None] | None = None,
        on_chunk: Callable[[EmbeddedPipeline], None] | None = None,
    ) -> None:
        self.config = config
        self.bus = InMemoryBus()
        self.incidents: list[EmittedIncident] = []
        # Containment runs on data time here, so approvals and expiry follow the story.
        self.now = 0.0
        # Every incident's record with its timeline, as the operator surface reads it.
        self.records = InMemoryIncidentStore()
        self.containment = embedded_containment(
            config, self.bus, clock=lambda: self.now, incidents=self.records
        )
        # ...and so does the processor's check of event times: the story's clock is the
        # newest time it has told (a simulated story may be dated past today).
        self._processor = embedded_processor(
            config, self.bus, on_incident=self._on_incident, wall_clock=lambda: self.now
        )
        self._processor.start()
        # Change events read after their incident, listed on it (as the worker does).
        changes = InMemoryChangeLog(change_retention_s(config), lambda: self.now)
        publish = publisher(self.bus.producer(), config.topics.incidents)

        def backfilled(update: dict[str, Any]) -> None:
            publish(update)
            self._on_incident(update)

        self.backfill = SuspectBackfill(config.enrichment, changes, self.records, backfilled)
        self._progress = progress
        self._on_chunk = on_chunk
        self._producer = self.bus.producer()
        self._topics = {
            "inference": config.topics.inference,
            "sensor": config.topics.sensor,
            "label": config.topics.label,
            "change": config.topics.change,
        }

    def _on_incident(self, incident: dict[str, Any]) -> None:
        record = EmittedIncident(incident)
        self.incidents.append(record)
        record.outcomes = self.containment.on_incident(incident)
        self.backfill.on_incident(incident)

    def feed(self, records: Iterable[tuple[str, str, dict[str, Any]]], chunk: int = 2000) -> int:
        """Push records through detection and containment, in order; returns how many."""
        n = 0
        for kind, key, event in records:
            self.now = max(self.now, parse_time(str(event["time"])))
            self._producer.produce(self._topics[kind], orjson.dumps(event), key.encode())
            if kind == "change":
                self._drain()  # the processor sees the change before what follows it
                self.containment.on_change_event(event)
                self.backfill.on_change(event)
            n += 1
            if n % chunk == 0:
                self._settle()
                if self._progress is not None:
                    self._progress(n)
        self._settle()
        return n

    def _settle(self) -> None:
        self._drain()
        if self._on_chunk is not None:
            self._on_chunk(self)
        self.containment.run_due()

    def _drain(self) -> None:
        while self._processor.step(0):
            pass

    def flags(self) -> dict[str, RoutingFlag]:
        return self.containment.flags()

    def close(self) -> None:
        self._processor.close()
