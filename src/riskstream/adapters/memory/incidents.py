"""The reference :class:`~riskstream.ports.IncidentStore`: a dict behind a lock.

Backs the embedded demo and the unit tests; ``tests/contract`` holds the Redis
store to the same behaviour.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from riskstream.core.incident_records import IncidentRecord
from riskstream.ports import IncidentStore

__all__ = ["InMemoryIncidentStore"]


class InMemoryIncidentStore:
    """Incident records in a dict behind one lock: the reference the Redis store matches
    (``tests/contract`` runs one suite over both)."""

    def __init__(self) -> None:
        self._records: dict[str, IncidentRecord] = {}
        self._lock = threading.Lock()

    def update(
        self, incident_id: str, change: Callable[[IncidentRecord | None], IncidentRecord | None]
    ) -> IncidentRecord | None:
        with self._lock:
            current = self._records.get(incident_id)
            new = change(current)
            if new is None:
                return current
            self._records[incident_id] = new
            return new

    def get(self, incident_id: str) -> IncidentRecord | None:
        with self._lock:
            return self._records.get(incident_id)

    def recent(self, limit: int = 500, after: str | None = None) -> list[IncidentRecord]:
        with self._lock:
            records = list(self._records.values())
        records.sort(key=lambda r: (r.detected_at, r.incident_id), reverse=True)
        start = 0
        if after is not None:
            place = next((i for i, r in enumerate(records) if r.incident_id == after), None)
            if place is None:
                return []
            start = place + 1
        return records[start : start + max(limit, 0)]

    def near(
        self, subjects: Iterable[str], since: float, until: float, limit: int | None = None
    ) -> list[IncidentRecord]:
        wanted = set(subjects)
        with self._lock:
            records = list(self._records.values())
        by_time = sorted(
            (r for r in records if r.subject in wanted and since <= r.detected_at <= until),
            key=lambda r: (r.detected_at, r.incident_id),
        )
        taken: dict[str, int] = {}
        found = []
        for r in by_time:  # the earliest ``limit`` of each subject, as Redis's ZRANGEBYSCORE
            if limit is None or taken.get(r.subject, 0) < limit:
                taken[r.subject] = taken.get(r.subject, 0) + 1
                found.append(r)
        return sorted(found, key=lambda r: r.incident_id)

    def close(self) -> None:
        pass

    @staticmethod
    def _implements_port(store: InMemoryIncidentStore) -> IncidentStore:
        return store
