"""Missing data: streams that stop sending, each judged by its own cadence.

A sensor that dies sends nothing, so no per-sample detector can notice it.  What
"too long without a reading" means is learned per stream: sensors report every
second, every ten minutes, hourly, irregularly, or in batches from a gateway.

- **The partition's clock** is the median data time of the last ``CLOCK_WINDOW``
  events, never moving back: one reading dated in the future, or a backfill of old
  readings, does not move it.  Data time, not wall time, keeps a replay and a
  restart deterministic; a partition that goes silent as a whole is seen by
  consumer-lag and heartbeat alerts on the processor, not here.
- **A partition-wide pause** (the clock jumps by ``PARTITION_PAUSE`` times its usual
  step: an outage upstream, a gap in a replayed file) is nobody's own silence and
  does not count against any stream.
- **Each stream's arrivals** are timed on that clock, not by the readings' own
  times: a gateway that delivers a sensor's readings every 15 minutes makes that
  sensor's gaps 15 minutes long, however densely its readings are dated.  Over its
  first ``LEARN_GAPS`` gaps a stream learns their mean and mean absolute deviation
  (and keeps learning them slowly, over ``LEARN_GAPS * MEMORY`` gaps).
- **Silent** is a gap past ``max(min_gaps * mean, mean + 1.36 ln(N) * deviation)``:
  for exponential (memoryless) arrivals the second term is the gap exceeded once in
  ``N`` gaps (their deviation from the mean is 0.736 of the mean); for regular ones
  the first, "several typical gaps with nothing", governs.  ``after``, where set,
  is a floor in seconds.

Deadlines sit in a heap, so a silence is noticed by the first event whose clock
passes it.  The heap holds one live deadline per stream, no later than its true one,
and is told of a reading only when the reading brings the deadline earlier (a burst
shrinks the learned gap); a deadline the clock passes is checked against the true one
then, and pushed again there if it moved.  An entry per reading, most of them stale
by the time the clock reached them, cost a push and a pop per event.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from riskstream.core.state_keys import CLOCK_MARK
from riskstream.errors import ConfigError, SnapshotError

__all__ = ["SilenceParams", "SilenceWatch", "Silent", "check_silence_params"]

SNAPSHOT_VERSION = 2
CLOCK_WINDOW = 7  # events the partition clock takes its median over (3 outliers cannot move it)
LEARN_GAPS = 20  # gaps a stream shows before it is watched
MEMORY = 25  # ...and it keeps learning over this many times as many
PARTITION_PAUSE = 50  # a clock jump of this many of its mean steps: the partition paused
EXPONENTIAL_MAD = 1.36  # 1 / 0.736: the mean absolute deviation of an exponential gap
_LEARN_MAX = LEARN_GAPS * MEMORY  # gaps the learning averages over, at most
_NO_TIME = -math.inf  # a stream's (or the clock's) time before its first reading


@dataclass(frozen=True, slots=True)
class SilenceParams:
    """A ``missing`` monitor's parameters."""

    false_alarm_every: float = 1_000_000.0  # gaps
    min_gaps: float = 8.0
    after: float = 0.0  # seconds, a floor


def check_silence_params(params: Mapping[str, Any]) -> SilenceParams:
    """Validate ``{false_alarm_every, min_gaps, after}``; a ConfigError names what is wrong."""
    accepted = ("after", "false_alarm_every", "min_gaps")
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"missing: unknown parameter(s) {unknown}; accepted: {', '.join(accepted)}"
        )
    out = {}
    for name, low, what in (
        ("after", 0.0, "a number of seconds >= 0 (a floor under the learned cadence)"),
        ("false_alarm_every", 100.0, "a number of gaps >= 100"),
        ("min_gaps", 2.0, "a number >= 2 (typical gaps with nothing before a stream is silent)"),
    ):
        if name not in params:
            continue
        v = params[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v < math.inf:
            raise ConfigError(f"missing: {name!r} must be {what}, got {v!r}")
        out[name] = float(v)
    return SilenceParams(**out)


@dataclass(frozen=True, slots=True)
class Silent:
    """One stream found silent: its last reading's time, when it was noticed (the
    partition clock), its events so far, its subject and the gap it was allowed."""

    key: str
    last_seen: float
    noticed_at: float
    events: int
    subject: str
    allowed: float


class _Stream:
    __slots__ = (
        "arrived", "count", "gaps", "last_seen", "mad", "mean", "queued", "silent", "subject",
    )  # fmt: skip

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.queued: float | None = None  # its live deadline in the heap (see SilenceWatch)
        self.last_seen = -math.inf  # the newest reading's own time
        self.arrived = -math.inf  # the partition clock at its last arrival
        self.count = 0
        self.gaps = 0
        self.mean = 0.0
        self.mad = 0.0
        self.silent = False

    def dump(self) -> list[Any]:
        return [
            SNAPSHOT_VERSION, self.last_seen, self.count, int(self.silent), self.arrived,
            self.gaps, self.mean, self.mad, self.subject,
        ]  # fmt: skip


class SilenceWatch:
    """The streams of one ``missing`` monitor on one partition.

    >>> w = SilenceWatch(SilenceParams(min_gaps=5))
    >>> for i in range(60):
    ...     _ = w.see("a", "a", 10.0 * i), w.see("b", "b", 10.0 * i + 1)
    >>> list(w.silent())
    []
    >>> for i in range(60, 70):
    ...     _ = w.see("b", "b", 10.0 * i + 1)
    >>> [(s.key, s.last_seen, round(s.allowed)) for s in w.silent()]
    [('a', 590.0, 48)]
    >>> w.see("c", "c", 701.0, cap=2)  # a third stream, over a cap of two: not watched
    False
    """

    __slots__ = (
        "_busy",
        "_clock",
        "_heap",
        "_ordered",
        "_params",
        "_paused",
        "_recent",
        "_step",
        "_steps",
        "_streams",
        "_tail",
        "dirty",
    )

    CLOCK_KEY = CLOCK_MARK  # the state key (after the monitor's prefix) of the partition clock

    def __init__(self, params: SilenceParams) -> None:
        self._params = params
        self._tail = EXPONENTIAL_MAD * math.log(params.false_alarm_every)  # see _allowed
        self._streams: dict[str, _Stream] = {}
        self._heap: list[tuple[float, str]] = []
        self._recent: list[float] = []  # the last CLOCK_WINDOW event times, arrival order
        self._ordered: list[float] = []  # the same, sorted
        self._clock = -math.inf
        self._paused = 0.0  # clock time the whole partition was silent (see _tick)
        self._busy = -math.inf  # the clock less that: the time streams are judged in
        self._step = 0.0  # the clock's mean advance per event
        self._steps = 0
        self.dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self._streams)

    def streams(self) -> list[str]:
        return list(self._streams)

    def evict(self, before: float) -> list[str]:
        """Forget the streams whose newest reading is dated before ``before``."""
        gone = [k for k, s in self._streams.items() if s.last_seen < before]
        for key in gone:
            del self._streams[key]
            self.dirty.discard(key)
        return gone

    def see(self, key: str, subject: str, t: float, cap: float = math.inf) -> bool:
        """Watch a reading of stream ``key``; False (and nothing seen) when ``key`` is
        new and ``cap`` streams are watched already.  Runs for every event: the gap
        learning is inlined."""
        streams = self._streams
        s = streams.get(key)
        if s is None and len(streams) >= cap:
            return False
        self._tick(t)
        busy = self._busy
        if s is None:
            s = streams[key] = _Stream(subject)
        elif s.arrived > _NO_TIME and not s.silent and busy > s.arrived:
            # (readings that arrive together, a gateway's batch, are one arrival)
            gap = busy - s.arrived
            s.gaps = gaps = s.gaps + 1
            w = 1.0 / min(gaps, _LEARN_MAX)
            s.mean = mean = s.mean + (gap - s.mean) * w
            s.mad += (abs(gap - mean) - s.mad) * w
        s.silent = False
        s.subject = subject
        s.count += 1
        s.arrived = busy
        if t > s.last_seen:
            s.last_seen = t
        if s.gaps >= LEARN_GAPS:
            deadline = busy + self._allowed(s)
            queued = s.queued
            if queued is None or deadline < queued:  # else the live entry comes first
                s.queued = deadline
                heap = self._heap
                heapq.heappush(heap, (deadline, key))
                if len(heap) > 4 * len(streams) + 64:
                    self._rebuild()
        self.dirty.add(key)
        return True

    def _tick(self, t: float) -> None:
        recent, ordered = self._recent, self._ordered
        recent.append(t)
        bisect.insort(ordered, t)
        if len(recent) > CLOCK_WINDOW:
            del ordered[bisect.bisect_left(ordered, recent.pop(0))]
        median = ordered[len(ordered) // 2]
        clock = self._clock
        step = median - clock if median > clock > _NO_TIME else 0.0
        if median > clock:
            self._clock = median
        # A jump far beyond the partition's usual pace is the whole partition falling
        # silent (an outage upstream, the end of a replayed file): it is nobody's own
        # silence, so it does not count against any stream.
        if self._steps >= LEARN_GAPS * 5 and step > PARTITION_PAUSE * self._step:
            self._paused += step
        else:
            self._steps += 1
            self._step += (step - self._step) / min(self._steps, LEARN_GAPS * MEMORY)
        self._busy = self._clock - self._paused
        self.dirty.add(self.CLOCK_KEY)

    def _allowed(self, s: _Stream) -> float:
        """The gap after which ``s`` is silent (see the module docstring)."""
        p = self._params
        return max(p.min_gaps * s.mean, s.mean + self._tail * s.mad, p.after)

    def _rebuild(self) -> None:
        heap = []
        for k, s in self._streams.items():
            if s.gaps >= LEARN_GAPS and not s.silent:
                s.queued = deadline = s.arrived + self._allowed(s)
                heap.append((deadline, k))
            else:
                s.queued = None
        heap.sort()
        self._heap = heap

    def silent(self) -> Iterator[Silent]:
        """Streams that just fell silent (each once per silence)."""
        heap, streams, clock = self._heap, self._streams, self._busy
        while heap and heap[0][0] < clock:
            deadline, key = heapq.heappop(heap)
            s = streams.get(key)
            if s is None or s.queued != deadline:  # evicted since, or superseded
                continue
            allowed = self._allowed(s)
            due = s.arrived + allowed
            if due != deadline:  # readings since moved it later: there it is due now
                s.queued = due
                heapq.heappush(heap, (due, key))
                continue
            s.queued = None
            if s.silent:
                continue
            s.silent = True
            self.dirty.add(key)
            yield Silent(key, s.last_seen, self._clock, s.count, s.subject, allowed)

    def snapshot(self, key: str) -> list[Any]:
        if key == self.CLOCK_KEY:
            return [
                SNAPSHOT_VERSION, self._clock, list(self._recent), self._paused, self._step,
                self._steps,
            ]  # fmt: skip
        return self._streams[key].dump()

    def load(self, items: Mapping[str, list[Any]]) -> None:
        """Restore from snapshots; version 1 (a fixed ``after``) starts learning afresh."""
        for key, snap in items.items():
            version = snap[0]
            if key == self.CLOCK_KEY:
                self._clock, self._recent = float(snap[1]), [float(t) for t in snap[2]]
                self._paused, self._step, self._steps = float(snap[3]), float(snap[4]), int(snap[5])
                self._busy = self._clock - self._paused
                self._ordered = sorted(self._recent)
                continue
            s = _Stream(key)
            if version == 1:  # [1, last, count, silent, seq]: keep what it knew
                s.last_seen, s.count, s.silent = float(snap[1]), int(snap[2]), bool(snap[3])
            elif version == SNAPSHOT_VERSION:
                s.last_seen, s.count, s.silent = float(snap[1]), int(snap[2]), bool(snap[3])
                s.arrived, s.gaps = float(snap[4]), int(snap[5])
                s.mean, s.mad, s.subject = float(snap[6]), float(snap[7]), str(snap[8])
            else:
                raise SnapshotError(
                    f"missing: snapshot version {version!r} of stream {key!r} is not "
                    f"{SNAPSHOT_VERSION}: it was written by another riskstream version; "
                    "reset the monitor's state to continue"
                )
            self._streams[key] = s
        self._rebuild()
