"""The per-stream pipeline around a detector: warm-up, scaling, onset, debounce.

Raw River detectors are tuned for values in a known range and alarm far too often
on real streams (Page-Hinkley's defaults raise hundreds of alarms per million
stationary gaussian samples).  So every stream first learns its own reference
(mean and spread over a warm-up, causally — only from data already seen), then
feeds standardized values to its detector.  Alongside, a two-sided CUSUM (Page,
1954) tracks where the current excursion began: its last reset point is the
classic change-point estimate, which we report as the onset.  After an alarm the
stream re-learns its reference, so one change yields one alarm, not a storm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from riskstream.core.detectors import Alarm, Detector, WindowStats, restore_detector
from riskstream.errors import ConfigError

__all__ = ["StreamAlarm", "StreamDetector", "StreamSettings"]

SNAPSHOT_VERSION = 1
CUSUM_SLACK = 0.5  # in reference standard deviations: tuned to shifts of ~1 sigma


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How one stream treats its values before the detector sees them."""

    warmup: int = 500
    scale: bool = True
    cooldown: int = 0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.cooldown < 0:
            raise ConfigError("warmup and cooldown must be >= 0")
        if self.scale and self.warmup < 2:
            raise ConfigError("scale: true needs warmup >= 2 to learn a spread")


@dataclass(frozen=True, slots=True)
class StreamAlarm:
    """A detector alarm placed in data time, with the stream's evidence."""

    alarm: Alarm
    index: int
    onset: int
    detected_at: float
    onset_at: float
    reference: WindowStats
    reference_std: float
    after: WindowStats


class StreamDetector:
    """One stream's state: reference, CUSUM onset tracker, detector, times.

    >>> import random
    >>> from riskstream.core.detectors import make_detector
    >>> rng = random.Random(3)
    >>> det = StreamDetector(lambda: make_detector("page-hinkley", {"threshold": 20, "delta": 0.5}),
    ...                      StreamSettings(warmup=300))
    >>> hits = [a for i in range(3000)
    ...         if (a := det.update(rng.gauss(10 + (1 if i >= 2000 else 0), 2), float(i)))]
    >>> len(hits), 2000 <= hits[0].detected_at < 2200, abs(hits[0].onset_at - 2000) < 100
    (1, True, True)
    """

    __slots__ = (
        "_cool_until",
        "_detector",
        "_down",
        "_new_detector",
        "_ref",
        "_settings",
        "_times",
        "_up",
        "n",
    )

    def __init__(self, new_detector: Callable[[], Detector], settings: StreamSettings) -> None:
        self._new_detector = new_detector
        self._settings = settings
        self._detector = new_detector()
        self.n = 0
        self._cool_until = 0
        self._ref = _Welford()
        self._up = _Cusum()
        self._down = _Cusum()
        self._times = _TimeIndex()

    def update(self, x: float, t: float) -> StreamAlarm | None:
        self.n += 1
        self._times.add(self.n, t)
        ref = self._ref
        if ref.count < self._settings.warmup:
            ref.add(x)
            return None
        std = ref.std() or 1.0
        z = (x - ref.mean) / std
        self._up.add(z - CUSUM_SLACK, x, self.n)
        self._down.add(-z - CUSUM_SLACK, x, self.n)
        alarm = self._detector.update(z if self._settings.scale else x)
        if alarm is None or self.n <= self._cool_until:
            return None
        return self._raise(alarm, t, std)

    def _raise(self, alarm: Alarm, t: float, std: float) -> StreamAlarm:
        tracker = self._up if self._up.stat >= self._down.stat else self._down
        if tracker.stat > 0:
            onset, after = tracker.start, WindowStats(tracker.count, tracker.total / tracker.count)
        else:
            onset, after = self.n - (alarm.index - alarm.onset), alarm.after
        result = StreamAlarm(
            alarm=alarm,
            index=self.n,
            onset=onset,
            detected_at=t,
            onset_at=self._times.time_of(onset),
            reference=WindowStats(self._ref.count, self._ref.mean),
            reference_std=std,
            after=after,
        )
        # Re-baseline: the new regime becomes the reference, so one change, one alarm.
        self._ref = _Welford()
        self._up = _Cusum()
        self._down = _Cusum()
        self._detector = self._new_detector()
        self._cool_until = self.n + self._settings.cooldown
        return result

    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "n": self.n,
            "cool": self._cool_until,
            "ref": self._ref.dump(),
            "up": self._up.dump(),
            "down": self._down.dump(),
            "times": self._times.dump(),
            "det": self._detector.snapshot(),
        }

    @classmethod
    def restore(
        cls, snap: Mapping[str, Any], new_detector: Callable[[], Detector], settings: StreamSettings
    ) -> StreamDetector:
        if snap.get("v") != SNAPSHOT_VERSION:
            raise ConfigError(
                f"stream snapshot version {snap.get('v')!r} is not {SNAPSHOT_VERSION}; "
                "it was written by another riskstream version — reset the state to continue"
            )
        det = cls(new_detector, settings)
        det.n = int(snap["n"])
        det._cool_until = int(snap["cool"])
        det._ref = _Welford.load(snap["ref"])
        det._up = _Cusum.load(snap["up"])
        det._down = _Cusum.load(snap["down"])
        det._times = _TimeIndex.load(snap["times"])
        det._detector = restore_detector(snap["det"])
        return det


class _Welford:
    """Running mean and variance (Welford, 1962): stable in one pass."""

    __slots__ = ("count", "m2", "mean")

    def __init__(self, count: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.count, self.mean, self.m2 = count, mean, m2

    def add(self, x: float) -> None:
        self.count += 1
        d = x - self.mean
        self.mean += d / self.count
        self.m2 += d * (x - self.mean)

    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def dump(self) -> list[float]:
        return [self.count, self.mean, self.m2]

    @classmethod
    def load(cls, data: list[float]) -> _Welford:
        return cls(int(data[0]), float(data[1]), float(data[2]))


class _Cusum:
    """One side of a CUSUM; ``start`` is where the current excursion began."""

    __slots__ = ("count", "start", "stat", "total")

    def __init__(self, stat: float = 0.0, start: int = 0, count: int = 0, total: float = 0.0):
        self.stat, self.start, self.count, self.total = stat, start, count, total

    def add(self, step: float, x: float, n: int) -> None:
        s = self.stat + step
        if s <= 0.0:
            self.stat, self.count, self.total = 0.0, 0, 0.0
            return
        if self.stat == 0.0:
            self.start = n
        self.stat = s
        self.count += 1
        self.total += x

    def dump(self) -> list[float]:
        return [self.stat, self.start, self.count, self.total]

    @classmethod
    def load(cls, data: list[float]) -> _Cusum:
        return cls(float(data[0]), int(data[1]), int(data[2]), float(data[3]))


class _TimeIndex:
    """Maps sample indexes back to data times with bounded memory.

    Detectors speak in sample indexes; incidents need times.  One time is kept
    every ``STRIDE`` samples for the last ``SLOTS`` strides; older indexes map to
    the oldest time kept.
    """

    STRIDE = 8
    SLOTS = 256
    __slots__ = ("first", "times")

    def __init__(self, first: int = 1, times: list[float] | None = None) -> None:
        self.first = first  # the sample index of times[0]
        self.times: list[float] = times if times is not None else []

    def add(self, n: int, t: float) -> None:
        if (n - 1) % self.STRIDE:
            return
        self.times.append(t)
        if len(self.times) > self.SLOTS:
            del self.times[0]
            self.first += self.STRIDE

    def time_of(self, n: int) -> float:
        if not self.times:
            return 0.0
        slot = (n - self.first) // self.STRIDE
        return self.times[min(max(slot, 0), len(self.times) - 1)]

    def dump(self) -> list[Any]:
        return [self.first, self.times]

    @classmethod
    def load(cls, data: list[Any]) -> _TimeIndex:
        return cls(int(data[0]), [float(t) for t in data[1]])
