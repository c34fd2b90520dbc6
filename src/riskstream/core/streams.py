"""The per-stream pipeline around a detector: season, warm-up, scaling, onset, debounce.

Raw River detectors are tuned for values in a known range and alarm far too often
on real streams (Page-Hinkley's defaults raise hundreds of alarms per million
stationary gaussian samples).  So every stream first learns its own reference
(mean and spread over a warm-up, causally — only from data already seen), then
feeds standardized values to its detector.  Alongside, a two-sided CUSUM (Page,
1954) tracks where the current excursion began: its last reset point is the
classic change-point estimate, which we report as the onset.  After an alarm the
stream re-learns its reference, so one change yields one alarm, not a storm.  The
plain rules (``threshold``, ``out-of-range``, ``stuck``) are the exception: they
already raise one alarm per excursion, and their own onset is exact.

A stream with a daily (or weekly) cycle would look, to a frozen reference, like a
drift every half cycle.  With :class:`Seasonality` set, the stream also learns a
seasonal profile in *data time*: the cycle is cut into ``bins``; each bin keeps the
running mean of its values and of where in the bin they fell, and the profile is
the line through those points.  Everything downstream — reference, detector,
onset — sees the value minus the profile as learned *before* that value, so only
changes that the cycle does not explain remain.  A bin is not watched until it
has ``warmup`` values, so a new stream is partly blind during its first cycle, and
a change in that first cycle is learned as part of the cycle by the bins not yet
seen.  The bins keep learning (from values within ``PROFILE_CLIP`` reference
deviations of them), and when the reference is re-learned the profile moves with
the level, so a level shift keeps the cycle's shape.
"""

from __future__ import annotations

import itertools
import math
import numbers
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import sub
from typing import Any

from riskstream.core.detectors import (
    PACKED_KINDS,
    Alarm,
    Detector,
    WindowStats,
    restore_detector,
)
from riskstream.errors import ConfigError, SnapshotError

__all__ = [
    "Cusum",
    "Seasonality",
    "StreamAlarm",
    "StreamDetector",
    "StreamSettings",
    "packed_as_data",
]

SNAPSHOT_VERSION = 3  # the plain-data snapshot (JSON); version 3 is also read from the store
PACKED_VERSION = 4  # the packed snapshot a checkpoint writes for the kinds in PACKED_KINDS
_PACKED_CODES: dict[type, int] = {cls: code for code, cls in PACKED_KINDS.items()}
# The packed hot part: version, detector code, n, cooldown end, reference (count, mean,
# m2), the two CUSUMs (stat, start, count, total), the data time last seen; then the
# detector's hot part.  The cold part: version, code, the time index (first sample, the
# number of times, and the times: the first in int64 ms, then the steps in int32 ms
# when they all fit, else int64 ms each); then the detector's cold part.
_HOT = struct.Struct("<BBqqqdddqqddqqdd")
_COLD = struct.Struct("<BBqH?")
CUSUM_SLACK = 0.5  # in reference standard deviations: tuned to shifts of ~1 sigma
# Rules, not tests: their onset is exact (the first sample beyond a bound, of a stuck
# window), which the CUSUM's estimate of where a mean shift began would only blur, and
# they debounce themselves (one alarm per excursion, re-armed by a normal reading), so
# the stream keeps them and its reference across their alarms.
RULES = frozenset({"threshold", "out-of-range", "stuck"})
# A seasonal profile learns only from values within this many reference standard
# deviations of it: one wild reading must not bend a bin for days.
PROFILE_CLIP = 5.0


@dataclass(frozen=True, slots=True)
class Seasonality:
    """A cycle in data time that a stream learns and subtracts before detection.

    ``period_s`` is the cycle's length in seconds of event time (86400 for a daily
    cycle), cut into ``bins`` equal parts; a part is used once it has learned from
    ``warmup`` values.
    """

    period_s: float
    bins: int = 24
    warmup: int = 30

    def __post_init__(self) -> None:
        p = self.period_s
        if isinstance(p, bool) or not isinstance(p, int | float) or not (0 < p < math.inf):
            raise ConfigError(f"seasonality: period_s must be a number > 0, got {p!r}")
        for name, low in (("bins", 1), ("warmup", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ConfigError(f"seasonality: {name} must be an integer >= {low}, got {v!r}")

    @classmethod
    def from_config(cls, raw: object) -> Seasonality:
        """From a config mapping such as ``{period_s: 86400, bins: 24, warmup: 30}``."""
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"seasonality must be a mapping (period_s, bins, warmup), got {raw!r}"
            )
        known = ("period_s", "bins", "warmup")
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown:
            raise ConfigError(
                f"seasonality: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        if "period_s" not in raw:
            raise ConfigError("seasonality needs period_s (the cycle in seconds, e.g. 86400)")
        return cls(**{str(k): v for k, v in raw.items()})


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How one stream treats its values before the detector sees them."""

    warmup: int = 500
    scale: bool = True
    cooldown: int = 0
    seasonality: Seasonality | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.cooldown < 0:
            raise ConfigError("warmup and cooldown must be >= 0")
        if self.scale and self.warmup < 2:
            raise ConfigError("scale: true needs warmup >= 2 to learn a spread")


@dataclass(frozen=True, slots=True)
class StreamAlarm:
    """A detector alarm placed in data time, with the stream's evidence.

    ``reference`` (mean, with ``reference_std``) and ``after`` are in the value's
    own units; for a seasonal stream they are seasonally adjusted: the value minus
    its profile, plus the profile's average over the cycle.
    """

    alarm: Alarm
    index: int
    onset: int
    detected_at: float
    onset_at: float
    reference: WindowStats
    reference_std: float
    after: WindowStats
    onset_range: tuple[float, float] | None = None  # data times: where the onset likely is


class StreamDetector:
    """One stream's state: profile, reference, CUSUM onset tracker, detector, times.

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
        "_born",
        "_clip",
        "_cold_tag",
        "_cool_until",
        "_detector",
        "_down",
        "_mean",
        "_new_detector",
        "_ref",
        "_season",
        "_settings",
        "_std",
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
        self._mean, self._std = 0.0, 1.0  # the reference, fixed once the warm-up is done
        self._up = Cusum()
        self._down = Cusum()
        self._times = _TimeIndex()
        season = settings.seasonality
        self._season = None if season is None else _Profile(season)
        self._clip = math.inf  # the profile's learning bound, once a spread is known
        self._cold_tag: tuple[int, int, bytes] | None = None  # what pack() last gave out
        self._born = next(_BIRTHS)  # tells this stream from a later one under the same key

    def update(self, x: float, t: float) -> StreamAlarm | None:
        n = self.n = self.n + 1
        if not (n - 1) % _STRIDE:
            self._times.add(n, t)
        season = self._season
        if season is not None:
            base = season.update(x, t, self._clip)
            if base is None:
                return None  # this part of the cycle has not learned enough yet
            x -= base
        ref = self._ref
        settings = self._settings
        if ref.count < settings.warmup:
            ref.add(x)
            if ref.count == settings.warmup:
                self._fix_reference(fold=True)
            return None
        z = (x - self._mean) / self._std
        # Cusum.add for both sides, inlined: this runs for every event of every stream.
        side = self._up
        stat = side.stat + (z - CUSUM_SLACK)
        if stat <= 0.0:
            if side.stat:
                side.stat, side.count, side.total = 0.0, 0, 0.0
        else:
            if side.stat == 0.0:
                side.start = n
            side.stat = stat
            side.count += 1
            side.total += x
        side = self._down
        stat = side.stat + (-z - CUSUM_SLACK)
        if stat <= 0.0:
            if side.stat:
                side.stat, side.count, side.total = 0.0, 0, 0.0
        else:
            if side.stat == 0.0:
                side.start = n
            side.stat = stat
            side.count += 1
            side.total += x
        alarm = self._detector.update(z if settings.scale else x)
        if alarm is None or n <= self._cool_until:
            return None
        return self._raise(alarm, t)

    def _fix_reference(self, fold: bool) -> None:
        ref = self._ref
        self._mean, self._std = ref.mean, ref.std() or 1.0
        if self._season is not None:
            # The residuals' mean is the level's move since the profile learned it: move
            # the profile with it, so that the profile's further learning stays in step.
            if fold:
                self._season.shift(ref.mean)
            self._mean = 0.0
            if ref.count > 1:
                self._clip = PROFILE_CLIP * self._std

    def _raise(self, alarm: Alarm, t: float) -> StreamAlarm:
        std = self._std
        level = 0.0 if self._season is None else self._season.level()
        tracker = self._up if self._up.stat >= self._down.stat else self._down
        if tracker.stat > 0 and self._settings.warmup and alarm.detector not in RULES:
            onset = tracker.start
            after = WindowStats(tracker.count, tracker.total / tracker.count + level)
        else:  # a rule, no reference, or no excursion: the detector's own onset and window
            onset = self.n - (alarm.index - alarm.onset)
            mean = alarm.after.mean
            if self._settings.scale:
                mean = self._mean + std * mean
            after = WindowStats(alarm.after.count, mean + level)
        result = StreamAlarm(
            alarm=alarm,
            index=self.n,
            onset=onset,
            detected_at=t,
            onset_at=min(self._times.time_of(onset), t),
            reference=WindowStats(self._ref.count, self._mean + level),
            reference_std=std,
            after=after,
        )
        self._cool_until = self.n + self._settings.cooldown
        if alarm.detector in RULES:
            return result
        # Re-baseline: the new regime becomes the reference, so one change, one alarm.
        # The seasonal profile is kept: a level shift does not change the cycle's shape.
        self._ref = _Welford()
        self._mean, self._std = 0.0, 1.0
        self._up = Cusum()
        self._down = Cusum()
        self._detector = self._new_detector()
        return result

    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "n": self.n,
            "cool": self._cool_until,
            "season": None if self._season is None else self._season.dump(),
            "clip": None if math.isinf(self._clip) else self._clip,
            "ref": self._ref.dump(),
            "up": self._up.dump(),
            "down": self._down.dump(),
            "times": self._times.dump(),
            "det": self._detector.snapshot(),
        }

    def pack(self, seen: float) -> tuple[bytes, bytes | None] | None:
        """The packed snapshot: the hot part (and ``seen``, the monitor's data time of the
        stream's newest reading), and the cold part when it differs from the one given
        out last (else None).  None when the stream has no packed form (its detector's
        kind has none, or it learns a seasonal profile): then :meth:`snapshot` it is.

        The cold part holds the time index, which moves once in ``_TimeIndex.STRIDE``
        samples, and the detector's slow state, so a checkpoint of streams that each
        saw a few events writes the hot parts alone.  After a save that may not have
        landed, :meth:`forget_cold` makes the next pack give the cold part again.
        """
        det = self._detector
        code = _PACKED_CODES.get(type(det))
        if code is None or self._season is not None:
            return None
        got = det.pack()  # type: ignore[attr-defined]
        if got is None:
            return None
        det_hot, det_tag = got
        ref, up, down, times = self._ref, self._up, self._down, self._times
        hot = _HOT.pack(
            PACKED_VERSION, code, self.n, self._cool_until, ref.count, ref.mean, ref.m2,
            up.stat, up.start, up.count, up.total, down.stat, down.start, down.count, down.total,
            seen,
        ) + det_hot  # fmt: skip
        tag = (times.first, len(times.ms), det_tag)
        if tag == self._cold_tag:
            return hot, None
        ms = times.ms
        try:  # steps beyond int32 ms (24 days) refuse to pack
            index = struct.pack(f"<{len(ms[:1])}q{len(ms[1:])}i", *ms[:1], *map(sub, ms[1:], ms))
            stepped = True
        except struct.error:
            index, stepped = struct.pack(f"<{len(ms)}q", *ms), False
        cold = b"".join((
            _COLD.pack(PACKED_VERSION, code, times.first, len(ms), stepped),
            index,
            det.pack_cold(det_tag),  # type: ignore[attr-defined]
        ))  # fmt: skip
        self._cold_tag = tag
        return hot, cold

    def forget_cold(self) -> None:
        """The cold part given out last may not be saved: give it again at the next pack."""
        self._cold_tag = None

    def cold_tag(self) -> tuple[int, Any]:
        """Which stream this is and the tag of the cold part :meth:`pack` gave out last:
        a process forked to save a checkpoint hands them back with :meth:`cold_saved`."""
        return self._born, self._cold_tag

    def cold_saved(self, born: int, tag: Any) -> None:
        """The cold part with ``tag`` was saved (by a forked process) for the stream
        ``born``: when that is this stream, the next pack gives it only if it moved."""
        if born == self._born:
            self._cold_tag = tag

    @classmethod
    def unpack(
        cls,
        hot: bytes,
        cold: bytes | None,
        new_detector: Callable[[], Detector],
        settings: StreamSettings,
    ) -> tuple[StreamDetector, float]:
        """A stream from :meth:`pack`'s parts, and the ``seen`` packed with it."""
        if cold is None:
            raise SnapshotError(
                "packed stream snapshot has no cold part (the time index) beside it; the "
                "store lost a key — reset the state to continue"
            )
        try:
            (version, code, n, cool, ref_count, ref_mean, ref_m2,
             up_stat, up_start, up_count, up_total,
             down_stat, down_start, down_count, down_total, seen,
             ) = _HOT.unpack_from(hot)  # fmt: skip
            cold_version, cold_code, first, count, stepped = _COLD.unpack_from(cold)
            if stepped and count:
                index = f"<q{count - 1}i"
                ms = list(itertools.accumulate(struct.unpack_from(index, cold, _COLD.size)))
            else:
                index = f"<{count}q"
                ms = list(struct.unpack_from(index, cold, _COLD.size))
        except struct.error as exc:
            raise SnapshotError(f"packed stream snapshot is cut short: {exc}") from None
        if version != PACKED_VERSION or cold_version != PACKED_VERSION:
            raise SnapshotError(
                f"packed stream snapshot version {version}/{cold_version} is not "
                f"{PACKED_VERSION}; it was written by another riskstream version — reset "
                "the state to continue"
            )
        kind = PACKED_KINDS.get(code)
        if kind is None or cold_code != code:
            raise SnapshotError(
                f"packed stream snapshot names detector code {code} (cold part: {cold_code}); "
                f"known: {', '.join(f'{c} = {k.kind}' for c, k in PACKED_KINDS.items())}"
            )
        if settings.seasonality is not None:
            raise SnapshotError(
                "stream snapshot has no seasonal profile but the monitor has seasonality "
                "— reset the state to continue"
            )
        detector = kind.unpack(hot[_HOT.size :], cold[_COLD.size + struct.calcsize(index) :])
        det = cls(lambda: detector, settings)  # (not a fresh detector only to replace it)
        det._new_detector = new_detector
        det.n, det._cool_until = n, cool
        det._ref = _Welford(ref_count, ref_mean, ref_m2)
        if ref_count >= settings.warmup:
            det._fix_reference(fold=False)
        det._up = Cusum(up_stat, up_start, up_count, up_total)
        det._down = Cusum(down_stat, down_start, down_count, down_total)
        det._times = _TimeIndex(first, ms)
        got = detector.pack()
        det._cold_tag = None if got is None else (first, count, got[1])
        return det, seen

    @classmethod
    def restore(
        cls, snap: Mapping[str, Any], new_detector: Callable[[], Detector], settings: StreamSettings
    ) -> StreamDetector:
        if snap.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"stream snapshot version {snap.get('v')!r} is not {SNAPSHOT_VERSION}; "
                "it was written by another riskstream version — reset the state to continue"
            )
        det = cls(new_detector, settings)
        det.n = int(snap["n"])
        det._cool_until = int(snap["cool"])
        if (det._season is None) != (snap.get("season") is None):
            had, has = ("no", "has") if det._season is not None else ("a", "no longer has")
            raise SnapshotError(
                f"stream snapshot has {had} seasonal profile but the monitor {has} "
                "seasonality — reset the state to continue"
            )
        if det._season is not None:
            det._season.load(snap["season"])
            det._clip = math.inf if snap["clip"] is None else float(snap["clip"])
        det._ref = _Welford.load(snap["ref"])
        if det._ref.count >= settings.warmup:
            det._fix_reference(fold=False)
        det._up = Cusum.load(snap["up"])
        det._down = Cusum.load(snap["down"])
        det._times = _TimeIndex.load(snap["times"])
        det._detector = restore_detector(snap["det"])
        return det


def packed_as_data(hot: bytes, cold: bytes | None) -> dict[str, Any]:
    """A packed stream snapshot as the plain data :meth:`StreamDetector.snapshot` gives,
    with its ``seen``: for tools and tests that read saved state."""
    settings = StreamSettings(warmup=0, scale=False)
    stream, seen = StreamDetector.unpack(hot, cold, lambda: _NO_DETECTOR, settings)
    return {**stream.snapshot(), "seen": seen}


_NO_DETECTOR: Any = None  # unpack() replaces the stream's detector by the one unpacked


class _Profile:
    """A seasonal profile in data time: per bin, the running mean of its values and
    of their phases; between those points the profile is linear."""

    __slots__ = ("bins", "cfg", "count", "mean", "need", "period", "phase")

    def __init__(self, season: Seasonality) -> None:
        self.period = float(season.period_s)
        self.bins = season.bins
        self.need = season.warmup
        # for the hot path: period, data seconds -> bin units, bins, values a bin needs
        self.cfg = (self.period, season.bins / self.period, self.bins, self.need)
        self.count = [0] * season.bins
        self.mean = [0.0] * season.bins
        self.phase = [0.0] * season.bins  # in bin units: bin b holds phases in [b, b + 1)

    def update(self, x: float, t: float, clip: float) -> float | None:
        """The profile at ``t`` as learned before ``x`` (None while ``t``'s bin has
        fewer than ``need`` values); then learn ``x`` if within ``clip`` of it."""
        period, scale, bins, need = self.cfg
        u = (t % period) * scale
        if not u < bins:  # t % period rounded up to period, or t is not finite
            u = math.nextafter(float(bins), 0.0) if u == u else 0.0
        b = int(u)
        count, mean, phase = self.count, self.mean, self.phase
        c = count[b]
        m = mean[b]
        p = phase[b]
        if c < need or -clip <= x - m <= clip:
            c1 = count[b] = c + 1
            mean[b] = m + (x - m) / c1
            phase[b] = p + (u - p) / c1
        if c < need:
            return None
        if u >= p:
            nb = b + 1 if b + 1 < bins else 0
            q = phase[nb] + (bins if nb <= b else 0)
        else:
            nb = b - 1 if b > 0 else bins - 1
            q = phase[nb] - (bins if nb >= b else 0)
        if nb == b or count[nb] < need:
            return m
        return m + (u - p) / (q - p) * (mean[nb] - m)

    def shift(self, delta: float) -> None:
        self.mean = [m + delta if c else m for m, c in zip(self.mean, self.count, strict=True)]

    def level(self) -> float:
        """The profile's average over the learned bins (the cycle's mean level)."""
        learned = [m for m, c in zip(self.mean, self.count, strict=True) if c >= self.need]
        return math.fsum(learned) / len(learned) if learned else 0.0

    def dump(self) -> list[Any]:
        return [self.period, list(self.count), list(self.mean), list(self.phase)]

    def load(self, data: list[Any]) -> None:
        period, counts, means, phases = data
        if not (float(period) == self.period and len(counts) == self.bins):
            raise SnapshotError(
                f"stream snapshot has a seasonal profile of {len(counts)} bins over "
                f"{period:g} s but the monitor has {self.bins} bins over {self.period:g} s "
                "— reset the state to continue"
            )
        if not len(means) == len(phases) == self.bins:
            raise SnapshotError("stream snapshot's seasonal profile is malformed")
        self.count = [int(c) for c in counts]
        self.mean = [float(m) for m in means]
        self.phase = [float(p) for p in phases]


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


class Cusum:
    """One side of a CUSUM; ``start`` is where the current excursion began, and the raw
    values' count and sum since then are the evidence after the change."""

    __slots__ = ("count", "start", "stat", "total")

    def __init__(self, stat: float = 0.0, start: int = 0, count: int = 0, total: float = 0.0):
        self.stat, self.start, self.count, self.total = stat, start, count, total

    def add(self, step: float, x: float, n: int) -> float:
        """Add one step (for sample ``n`` of value ``x``); the statistic after it.

        :meth:`StreamDetector.update` has a copy of this inlined: change both."""
        s = self.stat + step
        if s <= 0.0:
            if self.stat:
                self.stat, self.count, self.total = 0.0, 0, 0.0
            return 0.0
        if self.stat == 0.0:
            self.start = n
        self.stat = s
        self.count += 1
        self.total += x
        return s

    def dump(self) -> list[float]:
        return [self.stat, self.start, self.count, self.total]

    @classmethod
    def load(cls, data: list[float]) -> Cusum:
        return cls(float(data[0]), int(data[1]), int(data[2]), float(data[3]))


class _TimeIndex:
    """Maps sample indexes back to data times with bounded memory.

    Detectors speak in sample indexes; incidents need times.  One time is kept
    every ``STRIDE`` samples for the last ``SLOTS`` strides (1,024 samples, which
    covers the onset of the slow drifts the defaults catch); older indexes map to
    the oldest time kept.  Times are whole milliseconds — the precision incidents
    carry — and saved as deltas, so a snapshot stays a few hundred bytes and a
    restored index answers exactly as the one that never stopped.
    """

    STRIDE = 16
    SLOTS = 64
    __slots__ = ("first", "ms")

    def __init__(self, first: int = 1, ms: list[int] | None = None) -> None:
        self.first = first  # the sample index of ms[0]
        self.ms: list[int] = ms if ms is not None else []

    def add(self, n: int, t: float) -> None:
        if (n - 1) % self.STRIDE:
            return
        self.ms.append(round(t * 1000.0))
        if len(self.ms) > self.SLOTS:
            del self.ms[0]
            self.first += self.STRIDE

    def time_of(self, n: int) -> float:
        """The data time of sample ``n``: interpolated between the times kept on
        either side of it (beyond the newest, at the cadence of the last stride),
        so an onset is not rounded down by up to a stride."""
        ms = self.ms
        if not ms:
            return 0.0
        slot, within = divmod(n - self.first, self.STRIDE)
        if slot < 0:
            return ms[0] / 1000.0
        last = len(ms) - 1
        if slot >= last:
            if last == 0:
                return ms[0] / 1000.0
            step = (ms[last] - ms[last - 1]) / self.STRIDE
            ahead = min((slot - last) * self.STRIDE + within, self.STRIDE)
            return round(ms[last] + step * ahead) / 1000.0
        lo, hi = ms[slot], ms[slot + 1]
        return round(lo + (hi - lo) * within / self.STRIDE) / 1000.0

    def dump(self) -> list[Any]:
        ms = self.ms  # deltas by map(sub): a checkpoint dumps one per changed stream
        return [self.first, [ms[0], *map(sub, ms[1:], ms[:-1])] if ms else []]

    @classmethod
    def load(cls, data: list[Any]) -> _TimeIndex:
        ms: list[int] = []
        for delta in data[1]:
            ms.append(int(delta) + (ms[-1] if ms else 0))
        return cls(int(data[0]), ms)


_BIRTHS = itertools.count()  # StreamDetector._born
_STRIDE = _TimeIndex.STRIDE  # for StreamDetector.update: a global, not two lookups
