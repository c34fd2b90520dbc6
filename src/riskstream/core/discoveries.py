"""False-discovery control for monitors that watch thousands of streams at once.

A detector tuned to one false alarm per 100,000 events is quiet on one stream
and noisy on 10,000: at one event per second each, that is 8,640 false
incidents a day.  With ``fdr`` set on a monitor, an alarm is only a *candidate*:

1. **Confirm on fresh data.**  The stream's next ``confirm`` values are compared
   with the reference the detector alarmed against (a one-sided z-test in the
   direction of the alarm).  These values played no part in raising the alarm,
   so under "no change" the p-value is valid (up to the normal approximation,
   and assuming the stream's values are independent), however the alarm was
   selected.
2. **Benjamini-Hochberg per window of data time.**  Each ``window`` seconds,
   every stream of the monitor on the partition is one hypothesis ("it changed
   in this window"); streams without a candidate count with p = 1, which only
   makes the procedure more conservative.  Candidates whose p-value passes BH at
   level ``q`` become incidents, so among the incidents the expected share of
   false ones stays at or below ``q`` (for independent or positively dependent
   streams).
3. **No wait for clear cases.**  A p-value at or below ``q / m`` (m streams) is
   rejected by BH whatever the other p-values are, so it is released at once;
   only borderline candidates wait for their window to close.

Everything is data-time driven and checkpointed, so a replay after a crash
releases the same incidents.  Each released incident carries the test in
``evidence.fdr``; suppressed candidates are counted, not lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from riskstream.core.detectors import Alarm, WindowStats
from riskstream.core.streams import StreamAlarm
from riskstream.errors import ConfigError, SnapshotError

__all__ = ["DiscoveryControl", "FdrSettings", "confirmation_p_value"]

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class FdrSettings:
    q: float = 0.05  # target share of false incidents among those raised
    confirm: int = 30  # fresh values per candidate; ~10 expected positives for a rate
    window_s: float = 300.0  # data time per Benjamini-Hochberg batch

    def __post_init__(self) -> None:
        if not 0.0 < self.q < 1.0:
            raise ConfigError(f"fdr.q must be between 0 and 1 (exclusive), got {self.q}")
        if self.confirm < 1:
            raise ConfigError(f"fdr.confirm must be at least 1 value, got {self.confirm}")
        if self.window_s <= 0:
            raise ConfigError(f"fdr.window must be positive seconds, got {self.window_s}")


def confirmation_p_value(alarm: StreamAlarm, count: int, total: float) -> float:
    """P(a mean this far in the alarm's direction | no change), normal approximation.

    The standard error counts both the fresh values and the reference's own
    estimation error, which matters when the reference was learned from few values.

    >>> a = StreamAlarm(Alarm(9, 5, WindowStats(4, 0.0), WindowStats(5, 1.0), "x"), 9, 5,
    ...                 0.0, 0.0, WindowStats(1000, 0.0), 1.0, WindowStats(5, 1.0))
    >>> f"{confirmation_p_value(a, 30, 30.0):.1e}"  # a 1-sigma shift held for 30 values
    '3.4e-08'
    >>> confirmation_p_value(a, 30, 0.0)  # back to normal
    0.5
    """
    ref, sd = alarm.reference, alarm.reference_std
    direction = 1.0 if alarm.after.mean >= ref.mean else -1.0
    moved = direction * (total / count - ref.mean)
    if sd <= 0.0:
        return 0.0 if moved > 0 else 1.0
    se = sd * math.sqrt(1.0 / count + 1.0 / max(ref.count, 1))
    return 0.5 * math.erfc(moved / se / math.sqrt(2.0))


class DiscoveryControl:
    """One monitor's candidates and its current BH window, on one partition.

    Generic over what a candidate carries (``item``: the finding), so this module
    does not depend on monitors; ``encode``/``decode`` turn items into plain data
    for the checkpoint.
    """

    __slots__ = ("_candidates", "_held", "_tested", "_window", "dirty", "settings", "suppressed")

    def __init__(self, settings: FdrSettings) -> None:
        self.settings = settings
        # stream key -> [alarm, item, fresh values seen, their sum]
        self._candidates: dict[str, list[Any]] = {}
        self._window: int | None = None  # the BH window being filled (data time // window_s)
        self._tested: list[float] = []  # p-values decided in this window, released or held
        self._held: list[tuple[float, Any]] = []  # borderline: decided when the window closes
        self.suppressed = 0  # candidates that did not pass, since this process started
        self.dirty = False

    def hold(self, key: str, alarm: StreamAlarm, item: Any) -> None:
        """A detector alarm becomes a candidate; the stream's next values will confirm it."""
        if key not in self._candidates:
            self._candidates[key] = [alarm, item, 0, 0.0]
            self.dirty = True

    def see(self, key: str, x: float) -> tuple[float, Any] | None:
        """One fresh value of a stream; its candidate's test when it has enough."""
        candidate = self._candidates.get(key)
        if candidate is None:
            return None
        candidate[2] += 1
        candidate[3] += x
        self.dirty = True
        if candidate[2] < self.settings.confirm:
            return None
        del self._candidates[key]
        alarm, item, n, total = candidate
        return confirmation_p_value(alarm, n, total), item

    def decide(self, p: float, item: Any, streams: int) -> Any | None:
        """Release ``item`` now if BH rejects it whatever else comes; else hold it."""
        self._tested.append(p)
        self.dirty = True
        if p <= self.settings.q / max(streams, 1):
            return item
        self._held.append((p, item))
        return None

    def tick(self, t: float, streams: int) -> list[tuple[Any, float, float]]:
        """Close the window if ``t`` is past it: ``(item, p, level)`` of the held that pass."""
        window = int(t // self.settings.window_s)
        if self._window is None:
            self._window, self.dirty = window, True
        if window <= self._window:
            return []
        level = bh_level(self._tested, max(streams, len(self._tested)), self.settings.q)
        passed = [(item, p, level) for p, item in self._held if p <= level]
        self.suppressed += len(self._held) - len(passed)
        self._window, self._tested, self._held, self.dirty = window, [], [], True
        return passed

    def snapshot(self, encode: Callable[[Any], Any]) -> list[Any]:
        return [
            SNAPSHOT_VERSION,
            self._window,
            list(self._tested),
            [[p, encode(item)] for p, item in self._held],
            {
                key: [alarm_to_data(alarm), encode(item), n, total]
                for key, (alarm, item, n, total) in self._candidates.items()
            },
        ]

    def load(self, snap: list[Any], decode: Callable[[Any], Any]) -> None:
        if not snap or snap[0] != SNAPSHOT_VERSION:
            raise SnapshotError(f"fdr snapshot version {snap[:1]} is not {SNAPSHOT_VERSION}")
        _, window, tested, held, candidates = snap
        self._window = window
        self._tested = [float(p) for p in tested]
        self._held = [(float(p), decode(item)) for p, item in held]
        self._candidates = {
            key: [alarm_from_data(alarm), decode(item), int(n), float(total)]
            for key, (alarm, item, n, total) in candidates.items()
        }


def bh_level(p_values: list[float], m: int, q: float) -> float:
    """The Benjamini-Hochberg rejection threshold: q k*/m for the largest k* that passes.

    >>> round(bh_level([0.001, 0.02, 0.03, 0.5], 4, 0.05), 6)  # 0.03 <= 0.05*3/4
    0.0375
    >>> bh_level([0.2], 100, 0.05)
    0.0
    """
    level = 0.0
    for k, p in enumerate(sorted(p_values), 1):
        if p <= q * k / m:
            level = q * k / m
    return level


def alarm_to_data(a: StreamAlarm) -> list[Any]:
    inner = a.alarm
    return [
        inner.index, inner.onset, inner.before.count, inner.before.mean, inner.after.count,
        inner.after.mean, inner.detector, inner.statistic, inner.threshold,
        a.index, a.onset, a.detected_at, a.onset_at, a.reference.count, a.reference.mean,
        a.reference_std, a.after.count, a.after.mean,
        None if a.onset_range is None else list(a.onset_range),
    ]  # fmt: skip


def alarm_from_data(d: list[Any]) -> StreamAlarm:
    inner = Alarm(d[0], d[1], WindowStats(d[2], d[3]), WindowStats(d[4], d[5]), d[6], d[7], d[8])
    return StreamAlarm(
        inner,
        d[9],
        d[10],
        d[11],
        d[12],
        WindowStats(d[13], d[14]),
        d[15],
        WindowStats(d[16], d[17]),
        None if len(d) < 19 or d[18] is None else (float(d[18][0]), float(d[18][1])),
    )
