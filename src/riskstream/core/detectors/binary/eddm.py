"""EDDM, River's early drift detection method for 0/1 error indicators."""

from __future__ import annotations

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
from riskstream.errors import ConfigError

__all__ = ["EDDM"]


class EDDM(BaseDetector):
    """River's EDDM (early drift detection method) on 0/1 error indicators.

    EDDM watches the *distance between errors*: with mean ``p'`` and spread ``s'``
    of those distances, it alarms when ``(p' + 2 s') / max(p' + 2 s')`` falls below
    ``beta`` and warns below ``alpha`` (Baena-García, del Campo-Ávila, Fidalgo,
    Bifet, Gavaldà & Morales-Bueno, 2006, "Early drift detection method", 4th
    ECML PKDD Workshop on Knowledge Discovery from Data Streams).  It reacts to
    gradual changes sooner than DDM.  The onset is the start of the warning zone
    that preceded the alarm, else the sample after the previous error (the newest
    distance, the freshest evidence); ``before``/``after`` are error rates on
    either side of it.  River only re-tests on error samples, so a warning lasts
    until the next error clears it, and one begun before the statistic's latest
    maximum is stale and ignored.  The statistic is cumulative since the last
    reset, and its maximum is often set by early noise, so that maximum would be
    a poor onset.  With River's defaults EDDM raises many alarms on stationary
    error streams: 3 to 46 per 20,000 samples at a 10% error rate, by seed.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.01) for _ in range(2000)] + [
    ...     int(rng.random() < 0.3) for _ in range(500)]
    >>> det = EDDM()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2050, a.statistic < a.threshold, a.before.mean < a.after.mean
    (True, True, True)
    """

    kind: ClassVar[str] = "eddm"
    PARAMS: ClassVar[tuple[str, ...]] = ("warm_start", "alpha", "beta")

    __slots__ = ("_det", "_n", "_seg", "_top", "_warn", "alpha", "beta", "warm_start")
    # _top: first sample after the statistic's latest maximum (a warning from before
    # it is stale); _warn: the current warning zone (start 0: none).

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        k = self.kind
        self.warm_start = check_integer(k, "warm_start", warm_start, 1)
        self.alpha = check_number(k, "alpha", alpha, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        self.beta = check_number(k, "beta", beta, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        if self.alpha < self.beta:
            raise ConfigError(
                f"{k}: alpha (warning level) must be >= beta (drift level), "
                f"got alpha={alpha!r} beta={beta!r}"
            )
        self._det: Any = _river.binary().EDDM(
            warm_start=self.warm_start, alpha=self.alpha, beta=self.beta
        )
        self._n = 0
        self._seg = Run(1)  # samples since the last reset
        self._top = 1
        self._warn = Run(0)

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        n = self._n = self._n + 1
        best, last_error = det._p2s_prime_max, det._last_error
        det.update(x)
        self._seg.total += x
        if det._p2s_prime_max != best:  # River raises its maximum strictly
            self._top = n + 1
        warn = self._warn
        if warn.start:
            warn.total += x
        if det._drift_detected:
            return self._alarm(n, x, last_error)
        if not det._warning_detected:
            warn.start, warn.total = 0, 0.0
        elif not warn.start:
            warn.start, warn.total = n, x
        return None

    def _alarm(self, n: int, x: float, last_error: int) -> Alarm:
        det = self._det
        dist = det._error_distances
        level = (dist.mean.get() + 2 * dist.get() ** 0.5) / det._p2s_prime_max
        warn, seg = self._warn, self._seg
        if warn.start > self._top:
            onset, after_total = warn.start, warn.total
        else:
            # River counts its samples (and the previous error) from the last reset;
            # every sample after that error is a 0 until this one.
            onset, after_total = seg.start + last_error, x
        before, after = split_at(n, seg, onset, after_total)
        alarm = Alarm(
            index=n,
            onset=onset,
            before=before,
            after=after,
            detector=self.kind,
            statistic=level,
            threshold=self.beta,
        )
        det._reset()
        self._seg, self._top, self._warn = Run(n + 1), n + 1, Run(0)
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        dist = det._error_distances
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "top": self._top,
            "warn": self._warn.dump(),
            "river": {
                "distances": {
                    "ddof": dist.ddof,
                    "mean": dump_mean(dist.mean),
                    "S": encode_float(dist._S),
                },
                "n": det._n,
                "last_error": det._last_error,
                "n_errors": det._n_errors,
                "p2s_prime_max": encode_float(det._p2s_prime_max),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._top, self._warn = (
            Run.read(fields, "seg"),
            fields.integer("top"),
            Run.read(fields, "warn"),
        )
        river = fields.sub("river")
        det = self._det
        dist_fields = river.sub("distances")
        dist = _river.stats().Var(ddof=dist_fields.integer("ddof"))
        dist.mean = dist_fields.mean("mean")
        dist._S = dist_fields.number("S")
        det._error_distances = dist
        det._n = river.integer("n")
        det._last_error = river.integer("last_error")
        det._n_errors = river.integer("n_errors")
        det._p2s_prime_max = river.number("p2s_prime_max")
        det._warning_detected = river.flag("warning")
