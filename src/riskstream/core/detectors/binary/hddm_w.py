"""HDDM_W, River's McDiarmid-bound test on weighted averages of values in [0, 1]."""

from __future__ import annotations

from typing import Any, ClassVar

from riskstream.core.detectors import _river
from riskstream.core.detectors.base import (
    Alarm,
    BaseDetector,
    Run,
    check_flag,
    check_number,
    check_probability,
    split_at,
)
from riskstream.core.detectors.snapshot import Fields, encode_float

__all__ = ["HDDMW"]


def _dump_sample_info(info: Any) -> list[float | str | bool]:
    return [encode_float(info.ewma), info._is_init, encode_float(info._ibc)]


class HDDMW(BaseDetector):
    """River's HDDM_W: McDiarmid-bound test on weighted averages, for values in [0, 1].

    Like HDDM_A, but the means are exponentially weighted (``lambda_val``), which
    favours recent samples and catches gradual changes (Frías-Blanco et al., 2015,
    "Online and non-parametric drift detection methods based on Hoeffding's
    bounds", IEEE TKDE 27(3), 810-823).  The onset is the start of the warning
    zone that preceded the alarm (else the alarm itself): a late estimate, but
    River's cut point is the historical low of a noisy weighted mean, often
    hundreds of samples before the change, so it makes a poor onset.
    ``before``/``after`` are plain means on either side of the onset since the
    last reset; ``statistic`` and ``threshold`` are River's weighted-mean gap and
    its McDiarmid bound.

    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [int(rng.random() < 0.1) for _ in range(2000)] + [
    ...     int(rng.random() < 0.6) for _ in range(500)]
    >>> det = HDDMW()
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 2000 < a.index < 2050, a.onset <= a.index, a.statistic > a.threshold
    (True, True, True)
    """

    kind: ClassVar[str] = "hddm-w"
    PARAMS: ClassVar[tuple[str, ...]] = (
        "drift_confidence",
        "warning_confidence",
        "lambda_val",
        "two_sided_test",
    )

    __slots__ = (
        "_det",
        "_n",
        "_seg",
        "_warn",
        "drift_confidence",
        "lambda_val",
        "two_sided_test",
        "warning_confidence",
    )

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        k = self.kind
        self.drift_confidence = check_probability(k, "drift_confidence", drift_confidence)
        self.warning_confidence = check_probability(k, "warning_confidence", warning_confidence)
        self.lambda_val = check_number(
            k, "lambda_val", lambda_val, lambda v: 0.0 < v <= 1.0, "in (0, 1]"
        )
        self.two_sided_test = check_flag(k, "two_sided_test", two_sided_test)
        self._det: Any = _river.binary().HDDMW(
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence,
            lambda_val=self.lambda_val,
            two_sided_test=self.two_sided_test,
        )
        self._n = 0
        self._seg = Run(1)  # samples since the last reset
        self._warn = Run(0)  # samples of the current warning zone (start 0: none)

    def update(self, x: float) -> Alarm | None:
        x = float(x)
        det = self._det
        n = self._n = self._n + 1
        det.update(x)
        self._seg.total += x
        warn = self._warn
        if warn.start:
            warn.total += x
        if det._drift_detected:
            return self._alarm(n, x)
        if not det._warning_detected:
            warn.start, warn.total = 0, 0.0
        elif not warn.start:
            warn.start, warn.total = n, x
        return None

    def _alarm(self, n: int, x: float) -> Alarm:
        det = self._det
        conf = self.drift_confidence
        if det._detect_mean_incr(conf):
            first, second = det._s1_incr, det._s2_incr
        else:
            first, second = det._s2_decr, det._s1_decr
        warn = self._warn
        onset, after_total = (warn.start, warn.total) if warn.start else (n, x)
        before, after = split_at(n, self._seg, onset, after_total)
        alarm = Alarm(
            index=n,
            onset=onset,
            before=before,
            after=after,
            detector=self.kind,
            statistic=second.ewma - first.ewma,
            threshold=det._mcdiarmid_bound(first.ibc + second.ibc, conf),
        )
        det._reset()
        self._seg, self._warn = Run(n + 1), Run(0)
        return alarm

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "warn": self._warn.dump(),
            "river": {
                "total": _dump_sample_info(det._total),
                "s1_incr": _dump_sample_info(det._s1_incr),
                "s2_incr": _dump_sample_info(det._s2_incr),
                "s1_decr": _dump_sample_info(det._s1_decr),
                "s2_decr": _dump_sample_info(det._s2_decr),
                "incr_cutpoint": encode_float(det._incr_cutpoint),
                "decr_cutpoint": encode_float(det._decr_cutpoint),
                "warning": det._warning_detected,
            },
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._warn = Run.read(fields, "seg"), Run.read(fields, "warn")
        river = fields.sub("river")
        det = self._det
        for name in ("total", "s1_incr", "s2_incr", "s1_decr", "s2_decr"):
            setattr(det, f"_{name}", self._load_sample_info(river, name))
        det._incr_cutpoint = river.number("incr_cutpoint")
        det._decr_cutpoint = river.number("decr_cutpoint")
        det._warning_detected = river.flag("warning")

    def _load_sample_info(self, fields: Fields, key: str) -> Any:
        value = fields.get(key)
        if not (isinstance(value, list) and len(value) == 3 and isinstance(value[1], bool)):
            raise fields.bad(key, "[ewma, initialized, ibc]", value)
        ewma = fields.as_number(key, value[0])
        ibc = fields.as_number(key, value[2])
        info = _river.hddm_w_sample_info()(self.lambda_val)
        info._is_init = value[1]
        info._ibc = ibc
        if value[1]:
            # River's Rust EWMean is (mean, alpha, initialized): its first update sets the
            # mean to x exactly, which rebuilds the state bit for bit.
            info._ewma.update(ewma)
        return info
