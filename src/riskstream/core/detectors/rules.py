"""The plain rules: fixed bounds (``threshold``, ``out-of-range``) and ``stuck``.

They need no River state and learn nothing, which is why they are kept together and
apart from the statistical detectors: a bound or a frozen value means the same thing
on every stream.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

from riskstream.core.detectors.base import (
    Alarm,
    BaseDetector,
    Run,
    WindowStats,
    check_integer,
    check_number,
    window_stats,
)
from riskstream.core.detectors.snapshot import Fields, encode_float
from riskstream.errors import ConfigError

__all__ = ["OutOfRange", "Stuck", "Threshold"]


class _Bounds(BaseDetector):
    """Alarm once per excursion, after ``consecutive`` samples in a row outside
    ``[lo, hi]``; NaN counts as outside (it is no valid reading)."""

    __slots__ = ("_calm", "_hi", "_lo", "_n", "_run", "_run_total", "consecutive")

    def _setup(self, lo: float, hi: float, consecutive: object) -> None:
        self._lo, self._hi = lo, hi
        self.consecutive = check_integer(self.kind, "consecutive", consecutive, 1)
        self._n = 0
        self._run = 0  # samples in a row outside the bounds
        self._run_total = 0.0
        self._calm = [0, 0.0]  # count and sum of in-bound samples since the last alarm

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        n = self._n = self._n + 1
        if self._lo <= x <= self._hi:
            self._run, self._run_total = 0, 0.0
            calm = self._calm
            calm[0] += 1
            calm[1] += x
            return None
        self._run += 1
        self._run_total += x
        if self._run != self.consecutive:
            return None
        calm = self._calm
        before = window_stats(int(calm[0]), calm[1])
        self._calm = [0, 0.0]
        bound = self._hi if x > self._hi else self._lo if x < self._lo else None
        return Alarm(
            index=n,
            onset=n - self._run + 1,
            before=before,
            after=window_stats(self._run, self._run_total),
            detector=self.kind,
            statistic=x,
            threshold=bound,
        )

    def _dump(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "run": self._run,
            "run_total": encode_float(self._run_total),
            "calm": [self._calm[0], encode_float(self._calm[1])],
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        self._run = fields.integer("run")
        self._run_total = fields.number("run_total")
        count, total = fields.pair("calm")
        if count != int(count) or count < 0:
            raise fields.bad("calm", "[count, total]", fields.get("calm"))
        self._calm = [int(count), total]


def _optional_bound(kind: str, name: str, value: object) -> float | None:
    if value is None:
        return None
    return check_number(kind, name, value, lambda v: True, "(or null)")


class Threshold(_Bounds):
    """Alarm when ``x > upper`` or ``x < lower`` for ``consecutive`` samples in a row.

    Either bound may be left out.  One alarm per excursion: the rule re-arms when a
    sample is back within the bounds.  The onset is the first sample of the
    excursion; ``after`` covers the excursion so far and ``before`` the in-bound
    samples since the previous alarm.  NaN counts as beyond the bounds.

    >>> det = Threshold(upper=8.0, consecutive=2)
    >>> [a.index for x in [1.0, 9.0, 1.0, 9.0, 9.5, 9.9, 2.0] if (a := det.update(x))]
    [5]
    >>> a = Threshold(upper=8.0, consecutive=2)
    >>> [r for x in [1.0, 3.0, 9.0, 10.0] if (r := a.update(x))][0].after
    WindowStats(count=2, mean=9.5)
    """

    kind: ClassVar[str] = "threshold"
    PARAMS: ClassVar[tuple[str, ...]] = ("lower", "upper", "consecutive")

    __slots__ = ("lower", "upper")

    def __init__(
        self, lower: float | None = None, upper: float | None = None, consecutive: int = 1
    ) -> None:
        k = self.kind
        self.lower = _optional_bound(k, "lower", lower)
        self.upper = _optional_bound(k, "upper", upper)
        if self.lower is None and self.upper is None:
            raise ConfigError(f"{k}: give upper, lower or both")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ConfigError(f"{k}: lower must be < upper, got lower={lower!r} upper={upper!r}")
        self._setup(
            -math.inf if self.lower is None else self.lower,
            math.inf if self.upper is None else self.upper,
            consecutive,
        )


class OutOfRange(_Bounds):
    """Alarm when a reading leaves its physical valid range ``[low, high]``.

    The same rule as :class:`Threshold` with both bounds required, kept as its own
    kind because it means "impossible reading" rather than "worrying level".

    >>> det = OutOfRange(low=-40.0, high=125.0)
    >>> [(a.index, a.threshold) for x in [20.0, 21.0, 300.0, 22.0, -41.0] if (a := det.update(x))]
    [(3, 125.0), (5, -40.0)]
    """

    kind: ClassVar[str] = "out-of-range"
    PARAMS: ClassVar[tuple[str, ...]] = ("low", "high", "consecutive")

    __slots__ = ("high", "low")

    def __init__(self, low: float, high: float, consecutive: int = 1) -> None:
        k = self.kind
        self.low = check_number(k, "low", low, lambda v: True, "")
        self.high = check_number(k, "high", high, lambda v: True, "")
        if not self.low < self.high:
            raise ConfigError(f"{k}: low must be < high, got low={low!r} high={high!r}")
        self._setup(self.low, self.high, consecutive)


class Stuck(BaseDetector):
    """Alarm when the last ``window`` samples vary by at most ``tolerance``.

    A frozen sensor repeats one value.  The spread ``max - min`` of the last
    ``window`` samples is kept in amortized O(1) time with two monotonic deques;
    memory stays O(window).  One alarm per stuck episode: the rule re-arms once
    the values move again.  The onset is the first sample of the stuck window
    (exact: the window was not stuck one sample earlier); ``after`` is that
    window and ``before`` the samples between the previous alarm and the onset.
    NaN never counts as stuck.

    >>> det = Stuck(window=3)
    >>> xs = [1.0, 2.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0]
    >>> [(a.index, a.onset, a.after.mean) for x in xs if (a := det.update(x))]
    [(5, 3, 5.0), (9, 7, 6.0)]
    """

    kind: ClassVar[str] = "stuck"
    PARAMS: ClassVar[tuple[str, ...]] = ("window", "tolerance")

    __slots__ = (
        "_armed",
        "_last_nan",
        "_maxq",
        "_minq",
        "_n",
        "_since",
        "_values",
        "tolerance",
        "window",
    )

    def __init__(self, window: int = 50, tolerance: float = 0.0) -> None:
        k = self.kind
        self.window = check_integer(k, "window", window, 2)
        self.tolerance = check_number(k, "tolerance", tolerance, lambda v: v >= 0.0, ">= 0")
        self._n = 0
        self._armed = True
        self._since = Run(1)  # samples since the previous alarm
        self._values: deque[float] = deque(maxlen=self.window)
        self._maxq: deque[tuple[int, float]] = deque()  # (index, value), values decreasing
        self._minq: deque[tuple[int, float]] = deque()  # (index, value), values increasing
        self._last_nan = 0

    def _push(self, n: int, x: float) -> None:
        if x != x:
            self._last_nan = n
            return
        maxq, minq = self._maxq, self._minq
        while maxq and maxq[-1][1] <= x:
            maxq.pop()
        maxq.append((n, x))
        while minq and minq[-1][1] >= x:
            minq.pop()
        minq.append((n, x))

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        n = self._n = self._n + 1
        self._values.append(x)
        self._since.total += x
        self._push(n, x)
        oldest = n - self.window  # the index that just left the window
        maxq, minq = self._maxq, self._minq
        if maxq and maxq[0][0] <= oldest:
            maxq.popleft()
        if minq and minq[0][0] <= oldest:
            minq.popleft()
        if n < self.window:
            return None
        if self._last_nan > oldest or not maxq or not maxq[0][1] - minq[0][1] <= self.tolerance:
            self._armed = True
            return None
        if not self._armed:
            return None
        self._armed = False
        onset = oldest + 1
        stuck_total = math.fsum(self._values)
        since = self._since
        before = (
            window_stats(onset - since.start, since.total - stuck_total)
            if since.start <= onset
            else WindowStats(0, 0.0)
        )
        self._since = Run(n + 1)
        return Alarm(
            index=n,
            onset=onset,
            before=before,
            after=window_stats(self.window, stuck_total),
            detector=self.kind,
            statistic=maxq[0][1] - minq[0][1],
            threshold=self.tolerance,
        )

    def _dump(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "armed": self._armed,
            "since": self._since.dump(),
            "values": [encode_float(v) for v in self._values],
        }

    def _load(self, fields: Fields) -> None:
        n = self._n = fields.integer("n")
        self._armed = fields.flag("armed")
        self._since = Run.read(fields, "since")
        values = fields.numbers("values", self.window)
        if len(values) != min(n, self.window):
            raise fields.bad("values", f"the last min(n, {self.window}) samples", values)
        self._values.extend(values)
        # The monotonic deques depend only on the window's contents: replay them.
        first = n - len(values) + 1
        for i, v in enumerate(values):
            self._push(first + i, v)
