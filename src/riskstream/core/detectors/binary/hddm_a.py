"""HDDM_A, River's Hoeffding-bound test on averages of values in [0, 1]."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from riskstream.core.detectors import _river
from riskstream.core.detectors.base import (
    Alarm,
    BaseDetector,
    WindowStats,
    check_flag,
    check_probability,
)
from riskstream.core.detectors.snapshot import Fields, dump_mean

__all__ = ["HDDMA"]


class HDDMA(BaseDetector):
    """River's HDDM_A: Hoeffding-bound test on averages, for values in [0, 1].

    HDDM_A compares the mean of everything since the last reset with the mean up to
    a cut point (where the prefix mean was lowest, allowing for its bound) and
    alarms when the difference exceeds a Hoeffding bound at ``drift_confidence``
    (Frías-Blanco, del Campo-Ávila, Ramos-Jiménez, Morales-Bueno, Ortiz-Díaz &
    Caballero-Mota, 2015, "Online and non-parametric drift detection methods based
    on Hoeffding's bounds", IEEE TKDE 27(3), 810-823).  By default only increases
    are tested (``two_sided_test=False``), as suits error rates.  The onset is the
    sample after the cut point; ``before`` is River's prefix mean up to the cut
    and ``after`` the mean since.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.1) for _ in range(2000)] + [
    ...     int(rng.random() < 0.5) for _ in range(500)]
    >>> det = HDDMA()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2100, a.onset < a.index, a.before.mean < a.after.mean
    (True, True, True)
    """

    kind: ClassVar[str] = "hddm-a"
    PARAMS: ClassVar[tuple[str, ...]] = ("drift_confidence", "warning_confidence", "two_sided_test")

    __slots__ = ("_det", "_n", "drift_confidence", "two_sided_test", "warning_confidence")

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        k = self.kind
        self.drift_confidence = check_probability(k, "drift_confidence", drift_confidence)
        self.warning_confidence = check_probability(k, "warning_confidence", warning_confidence)
        self.two_sided_test = check_flag(k, "two_sided_test", two_sided_test)
        self._det: Any = _river.binary().HDDMA(
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence,
            two_sided_test=self.two_sided_test,
        )
        self._n = 0

    def update(self, x: float) -> Alarm | None:
        det = self._det
        self._n += 1
        det.update(x)
        if not det._drift_detected:
            return None
        n = self._n
        z = det._z
        upward = det._mean_incr(self.drift_confidence)
        cut = det._x_min if upward else det._x_max
        cut_n = int(cut.n)
        after_n = int(z.n) - cut_n
        after_mean = (z.get() * z.n - cut.get() * cut.n) / after_n if after_n else 0.0
        m = (z.n - cut.n) / cut.n * (1.0 / z.n)
        bound = math.sqrt(m / 2 * math.log(2.0 / self.drift_confidence))
        alarm = Alarm(
            index=n,
            onset=n - after_n + 1,
            before=WindowStats(cut_n, cut.get()),
            after=WindowStats(after_n, after_mean),
            detector=self.kind,
            statistic=z.get() - cut.get() if upward else cut.get() - z.get(),
            threshold=bound,
        )
        det._reset()
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "river": {
                "z": dump_mean(det._z),
                "x_min": dump_mean(det._x_min),
                "x_max": dump_mean(det._x_max),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        river = fields.sub("river")
        det = self._det
        det._z = river.mean("z")
        det._x_min = river.mean("x_min")
        det._x_max = river.mean("x_max")
        det._warning_detected = river.flag("warning")
