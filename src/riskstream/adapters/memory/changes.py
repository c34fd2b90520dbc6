"""The reference :class:`~riskstream.ports.ChangeLog`: change events in one process.

Enough for the embedded pipeline (one process sees every partition); with
several processors, use the Redis log so each sees the changes all of them read.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from riskstream.core.enrichment import kept_of_change
from riskstream.core.timeutil import parse_time
from riskstream.ports import MAX_CHANGES, ChangeLog

__all__ = ["InMemoryChangeLog"]


class InMemoryChangeLog:
    """The change log in one process: change events by data time, kept ``retention_s``
    behind the newest (but never trimmed by a time past the wall clock: one change
    dated in the future must not clear the log), each event once (the embedded mode
    and the tests)."""

    def __init__(
        self,
        retention_s: float = 12 * 3600.0,
        clock: Callable[[], float] = time.time,
        max_changes: int = MAX_CHANGES,
    ) -> None:
        self._retention_s = retention_s
        self._max = max_changes
        self._clock = clock
        self._times: list[float] = []
        self._changes: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, change: Mapping[str, Any]) -> None:
        self.add_many([change])

    def add_many(self, changes: Sequence[Mapping[str, Any]]) -> None:
        # Each one's time is read before any is kept: one that cannot be read keeps none.
        timed = [(parse_time(str(change["time"])), change) for change in changes]
        with self._lock:
            for at, change in timed:
                self._insert(at, change)

    def _insert(self, at: float, change: Mapping[str, Any]) -> None:
        event_id = str(change.get("event_id"))
        if event_id in self._ids:
            return
        i = bisect.bisect_right(self._times, at)
        self._times.insert(i, at)
        self._changes.insert(i, kept_of_change(change))
        self._ids.add(event_id)
        newest = min(self._times[-1], self._clock())
        keep = bisect.bisect_left(self._times, newest - self._retention_s)
        keep = max(keep, len(self._times) - self._max)  # a flood: keep the newest
        for old in self._changes[:keep]:
            self._ids.discard(str(old.get("event_id")))
        del self._times[:keep], self._changes[:keep]

    def between(self, subjects: Sequence[str], start: float, end: float) -> list[dict[str, Any]]:
        wanted = set(subjects)
        with self._lock:
            lo, hi = bisect.bisect_left(self._times, start), bisect.bisect_right(self._times, end)
            return [dict(c) for c in self._changes[lo:hi] if c.get("subject") in wanted]

    def close(self) -> None:
        pass

    @staticmethod
    def _implements_port(log: InMemoryChangeLog) -> ChangeLog:
        return log
