"""DDM, River's drift detection method for 0/1 error indicators."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from riskstream.core.detectors import _river
from riskstream.core.detectors.base import (
    Alarm,
    BaseDetector,
    Run,
    check_integer,
    check_number,
    split_at,
)
from riskstream.core.detectors.snapshot import Fields, dump_mean, encode_float

__all__ = ["DDM"]


class DDM(BaseDetector):
    """River's DDM (drift detection method) on 0/1 error indicators.

    DDM tracks the error rate ``p`` and its binomial spread ``s`` and alarms when
    ``p + s`` exceeds its historical minimum ``p_min + s_min`` by ``drift_threshold``
    spreads, warning from ``warning_threshold`` (Gama, Medas, Castillo & Rodrigues,
    2004, "Learning with drift detection", SBIA 2004, LNCS 3171).  The onset is the
    start of the warning zone that preceded the alarm (Gama et al. retrain from
    there), else the sample after ``p + s`` last reached its minimum.  ``before``
    and ``after`` are error rates on either side of the onset since the last reset.

    A caution from the method itself: if no error occurs during ``warm_start``,
    ``s_min`` is 0 and the first error raises an alarm.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.1) for _ in range(2000)] + [
    ...     int(rng.random() < 0.5) for _ in range(500)]
    >>> det = DDM()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2100, 1950 < a.onset <= a.index
    (True, True)
    >>> round(a.before.mean, 1), round(a.after.mean, 1)
    (0.1, 0.4)
    """

    kind: ClassVar[str] = "ddm"
    PARAMS: ClassVar[tuple[str, ...]] = ("warm_start", "warning_threshold", "drift_threshold")

    __slots__ = (
        "_det",
        "_low",
        "_n",
        "_seg",
        "_warn",
        "drift_threshold",
        "warm_start",
        "warning_threshold",
    )

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        k = self.kind
        self.warm_start = check_integer(k, "warm_start", warm_start, 1)
        self.warning_threshold = check_number(
            k, "warning_threshold", warning_threshold, lambda v: v > 0.0, "> 0"
        )
        self.drift_threshold = check_number(
            k, "drift_threshold", drift_threshold, lambda v: v > 0.0, "> 0"
        )
        self._det: Any = _river.binary().DDM(
            warm_start=self.warm_start,
            warning_threshold=self.warning_threshold,
            drift_threshold=self.drift_threshold,
        )
        self._n = 0
        self._seg = Run(1)  # samples since the last reset
        self._low = Run(1)  # samples after p + s last reached its minimum
        self._warn = Run(0)  # samples of the current warning zone (start 0: none)

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        n = self._n = self._n + 1
        best = det._ps_min
        det.update(x)
        self._seg.total += x
        p = det._p
        p_i = p._mean
        # River keeps min(p + s) with `<=`, so the value may not change: replay its test.
        if p.n > self.warm_start and p_i + math.sqrt(p_i * (1 - p_i) / p.n) <= best:
            self._low.start, self._low.total = n + 1, 0.0
        else:
            self._low.total += x
        warn = self._warn
        if warn.start:
            warn.total += x
        if det._drift_detected:
            return self._alarm(n)
        if not det._warning_detected:
            warn.start, warn.total = 0, 0.0
        elif not warn.start:
            warn.start, warn.total = n, x
        return None

    def _alarm(self, n: int) -> Alarm:
        det = self._det
        p = det._p
        p_i = p._mean
        run = self._warn if self._warn.start > self._low.start else self._low
        before, after = split_at(n, self._seg, run.start, run.total)
        alarm = Alarm(
            index=n,
            onset=run.start,
            before=before,
            after=after,
            detector=self.kind,
            statistic=p_i + math.sqrt(p_i * (1 - p_i) / p.n),
            threshold=det._p_min + self.drift_threshold * det._s_min,
        )
        det._reset()
        self._seg, self._low, self._warn = Run(n + 1), Run(n + 1), Run(0)
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "low": self._low.dump(),
            "warn": self._warn.dump(),
            "river": {
                "p": dump_mean(det._p),
                "p_min": None if det._p_min is None else encode_float(det._p_min),
                "s_min": None if det._s_min is None else encode_float(det._s_min),
                "ps_min": encode_float(det._ps_min),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._low, self._warn = (
            Run.read(fields, "seg"),
            Run.read(fields, "low"),
            Run.read(fields, "warn"),
        )
        river = fields.sub("river")
        det = self._det
        det._p = river.mean("p")
        det._p_min = river.optional_number("p_min")
        det._s_min = river.optional_number("s_min")
        det._ps_min = river.number("ps_min")
        det._warning_detected = river.flag("warning")
