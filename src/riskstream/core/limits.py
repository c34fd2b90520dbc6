"""How many streams a monitor keeps per partition, and how long an idle one lives.

A stream costs a few kilobytes of memory and of Redis, and its state is read back
on every restart.  Stream keys come from the events, so a producer that invents a
new sensor id per reading (a bug, or an attack) would otherwise grow both without
bound: 200,000 one-reading ids made 800,000 streams, 3 GB of processor memory and
an 80 s restart.  So, per monitor and partition:

- **A cap** (``max_streams``): an event that would create a stream past it is not
  tracked; it is counted (``riskstream_stream_events_dropped_total``), and the
  first one opens one incident of type ``stream-limit`` saying so — one per
  monitor and partition, not one per key, again only after the streams fell back
  under 90% of the cap.  Existing streams carry on untouched.
- **Idle eviction** (``idle_ttl_s``): a stream whose newest reading is older than
  that, in *data time*, is forgotten (its state deleted at the next checkpoint).
  Data time, not wall time, because eviction changes state, and state must be the
  same however often the processor restarted or how fast a backlog is replayed:
  a replay after a crash must evict exactly where the first run did.  The clock is
  the partition's :class:`IdleClock`, the median of sampled event times that never
  moves back, so one reading dated years ahead cannot evict everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_IDLE_TTL_S",
    "DEFAULT_MAX_STREAMS",
    "IdleClock",
    "MonitorLimit",
    "StreamLimits",
]

DEFAULT_MAX_STREAMS = 10_000
"""Per monitor per partition: ~40 MB of processor memory at ~4 KB a stream."""

DEFAULT_IDLE_TTL_S = 7 * 86_400.0
"""A week of data time: longer than any cadence or cycle a stream learns."""

SAMPLE_EVERY = 64  # the clock samples one event time in this many (cheap on the hot path)
CLOCK_WINDOW = 7  # ...and takes the median of the last this many samples
SWEEPS_PER_TTL = 8  # idle streams are looked for this often per TTL of clock time
REARM_SHARE = 0.9  # a capped monitor reports again once under this share of its cap


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """``max_streams`` per monitor per partition (0: no cap); ``idle_ttl_s`` of data
    time after which a stream without readings is forgotten (0: never)."""

    max_streams: int = DEFAULT_MAX_STREAMS
    idle_ttl_s: float = DEFAULT_IDLE_TTL_S

    @property
    def cap(self) -> float:
        return self.max_streams or math.inf


class MonitorLimit:
    """One monitor's counts on one partition: events dropped at the cap, streams
    evicted, whether the cap was reported; and what was added since last taken."""

    __slots__ = ("capped", "dirty", "dropped", "evicted", "new_dropped", "new_evicted")

    def __init__(self) -> None:
        self.dropped = 0
        self.evicted = 0
        self.capped = False
        self.dirty = False
        self.new_dropped = 0
        self.new_evicted = 0

    def drop(self) -> bool:
        """Count one dropped event; True if this is the first since the cap was reached."""
        self.dropped += 1
        self.new_dropped += 1
        self.dirty = True
        first = not self.capped
        self.capped = True
        return first

    def dump(self) -> list[Any]:
        return [self.dropped, self.evicted, int(self.capped)]

    def load(self, data: list[Any]) -> None:
        self.dropped, self.evicted, self.capped = int(data[0]), int(data[1]), bool(data[2])


class IdleClock:
    """The partition's data-time clock for eviction, and when to sweep.

    >>> c = IdleClock(ttl=800.0)
    >>> due = [c.tick(float(t)) for t in range(0, 64 * 40, 64)]
    >>> c.now, due.count(True)
    (2304.0, 23)
    >>> c.tick(1e12)  # one reading dated far ahead: the median moves one sample, no further
    False
    >>> c.now
    2368.0
    """

    __slots__ = ("_next_sweep", "_period", "now", "recent")

    def __init__(self, ttl: float) -> None:
        self.now = -math.inf
        self.recent: list[float] = []
        self._period = ttl / SWEEPS_PER_TTL if ttl > 0 else math.inf
        self._next_sweep = math.inf

    def tick(self, t: float) -> bool:
        """Take one sampled event time; True when idle streams should be looked for."""
        recent = self.recent
        recent.append(t)
        if len(recent) > CLOCK_WINDOW:
            del recent[0]
        ordered = sorted(recent)
        median = ordered[len(ordered) // 2]
        if median <= self.now:
            return False
        self.now = median
        if self._next_sweep == math.inf and self._period < math.inf:
            self._next_sweep = self._boundary()
            return False
        if median < self._next_sweep:
            return False
        self._next_sweep = self._boundary()
        return True

    def _boundary(self) -> float:
        """The next multiple of the period after now: depends on the clock alone."""
        return (math.floor(self.now / self._period) + 1) * self._period

    def dump(self) -> list[Any]:
        return [None if math.isinf(self.now) else self.now, list(self.recent)]

    def load(self, data: list[Any]) -> None:
        self.now = -math.inf if data[0] is None else float(data[0])
        self.recent = [float(t) for t in data[1]]
        if self.now > -math.inf and self._period < math.inf:
            self._next_sweep = self._boundary()
