"""Page-Hinkley, River's cumulative-sum test, with the classic change-point onset."""

from __future__ import annotations

import struct
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
from riskstream.core.detectors.snapshot import Fields, dump_mean, encode_float, unpack_error
from riskstream.errors import ConfigError

# The packed form (see riskstream.core.detectors.snapshot): the state that every update
# moves (n, the three runs, River's mean and sums), and the settings, which never move.
_HOT = struct.Struct("<qqdqdqddddddd")
_COLD = struct.Struct("<Bqddd")

__all__ = ["PageHinkley"]


class PageHinkley(BaseDetector):
    """River's Page-Hinkley test, with the classic change-point estimate as onset.

    Page-Hinkley accumulates deviations from the running mean (minus ``delta``) and
    alarms when the sum climbs more than ``threshold`` above its running minimum
    (or, for decreases, falls that far below its maximum); Page, E. S. (1954),
    "Continuous inspection schemes", Biometrika 41, 100-115.  The sample after the
    cumulative sum last touched that minimum (maximum) is where the rise (fall)
    began: that is the onset reported, and ``before``/``after`` are the means on
    either side of it since the last reset.  ``alpha`` is River's forgetting factor.

    >>> import random
    >>> rng = random.Random(7)
    >>> xs = [rng.gauss(0.0, 1.0) for _ in range(1000)] + [rng.gauss(2.0, 1.0) for _ in range(300)]
    >>> det = PageHinkley(delta=0.5, threshold=25.0)
    >>> a = next(a for x in xs if (a := det.update(x)))
    >>> 1000 < a.index <= 1050, abs(a.onset - 1001) <= 5
    (True, True)
    >>> round(a.before.mean), round(a.after.mean)
    (0, 2)
    """

    kind: ClassVar[str] = "page-hinkley"
    PARAMS: ClassVar[tuple[str, ...]] = ("min_instances", "delta", "threshold", "alpha", "mode")
    MODES: ClassVar[tuple[str, ...]] = ("up", "down", "both")

    __slots__ = (
        "_det",
        "_down",
        "_n",
        "_packed",
        "_seg",
        "_up",
        "alpha",
        "delta",
        "min_instances",
        "mode",
        "threshold",
    )

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        k = self.kind
        self.min_instances = check_integer(k, "min_instances", min_instances, 1)
        self.delta = check_number(k, "delta", delta, lambda v: v >= 0.0, ">= 0")
        self.threshold = check_number(k, "threshold", threshold, lambda v: v > 0.0, "> 0")
        self.alpha = check_number(k, "alpha", alpha, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        if mode not in self.MODES:
            raise ConfigError(f"{k}: mode must be one of 'up', 'down', 'both', got {mode!r}")
        self.mode = mode
        self._det: Any = _river.drift_class("page_hinkley", "PageHinkley")(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.alpha,
            mode=mode,
        )
        self._n = 0
        self._seg = Run(1)  # samples since River's last reset
        self._up = Run(1)  # samples after the increase statistic's running minimum
        self._down = Run(1)  # samples after the decrease statistic's running maximum
        self._packed = b""  # the settings, packed once (the cold part of pack())

    def update(self, x: float) -> Alarm | None:
        det = self._det
        n = self._n = self._n + 1
        low, high = det._min_increase, det._max_decrease
        det.update(x)
        self._seg.total += x
        up, down = self._up, self._down
        if det._min_increase != low:  # River updates the extremes strictly: a change is new
            up.start, up.total = n + 1, 0.0
        else:
            up.total += x
        if det._max_decrease != high:
            down.start, down.total = n + 1, 0.0
        else:
            down.total += x
        if not det._drift_detected:
            return None
        rise = det._sum_increase - det._min_increase
        fall = det._max_decrease - det._sum_decrease
        fired_up = self.mode != "down" and rise > self.threshold
        fired_down = self.mode != "up" and fall > self.threshold
        upward = fired_up and not (fired_down and fall > rise)
        run = up if upward else down
        before, after = split_at(n, self._seg, run.start, run.total)
        det._reset()
        self._seg, self._up, self._down = Run(n + 1), Run(n + 1), Run(n + 1)
        return Alarm(
            index=n,
            onset=run.start,
            before=before,
            after=after,
            detector=self.kind,
            statistic=rise if upward else fall,
            threshold=self.threshold,
        )

    def _dump(self) -> dict[str, Any]:
        det = self._det
        return {
            "n": self._n,
            "seg": self._seg.dump(),
            "up": self._up.dump(),
            "down": self._down.dump(),
            "river": {
                "mean": dump_mean(det._x_mean),
                "sum_increase": encode_float(det._sum_increase),
                "sum_decrease": encode_float(det._sum_decrease),
                "min_increase": encode_float(det._min_increase),
                "max_decrease": encode_float(det._max_decrease),
            },
        }

    def _load(self, fields: Fields) -> None:
        self._n = fields.integer("n")
        self._seg, self._up, self._down = (
            Run.read(fields, "seg"),
            Run.read(fields, "up"),
            Run.read(fields, "down"),
        )
        river = fields.sub("river")
        det = self._det
        det._x_mean = river.mean("mean")
        det._sum_increase = river.number("sum_increase")
        det._sum_decrease = river.number("sum_decrease")
        det._min_increase = river.number("min_increase")
        det._max_decrease = river.number("max_decrease")

    def pack(self) -> tuple[bytes, bytes]:
        """The state as packed float64s and the settings (see :mod:`.snapshot`); the
        settings' bytes are one object for the detector's life."""
        det, seg, up, down = self._det, self._seg, self._up, self._down
        mean = det._x_mean
        cold = self._packed
        if not cold:
            mode = self.MODES.index(self.mode)
            cold = self._packed = _COLD.pack(
                mode, self.min_instances, self.delta, self.threshold, self.alpha
            )
        hot = _HOT.pack(
            self._n, seg.start, seg.total, up.start, up.total, down.start, down.total,
            mean.n, mean._mean,
            det._sum_increase, det._sum_decrease, det._min_increase, det._max_decrease,
        )  # fmt: skip
        return hot, cold

    def pack_cold(self, tag: bytes) -> bytes:
        """The cold part whose :meth:`pack` tag is ``tag``: for this kind, the tag itself."""
        return tag

    @classmethod
    def unpack(cls, hot: bytes, cold: bytes) -> PageHinkley:
        """Rebuild a detector from :meth:`pack` output, bit for bit."""
        try:
            mode, min_instances, delta, threshold, alpha = _COLD.unpack(cold)
            (n, seg_start, seg_total, up_start, up_total, down_start, down_total, mean_n,
             mean, sum_inc, sum_dec, min_inc, max_dec) = _HOT.unpack(hot)  # fmt: skip
            det = cls(min_instances, delta, threshold, alpha, cls.MODES[mode])
        except (struct.error, IndexError, ConfigError) as exc:
            raise unpack_error(cls.kind, exc) from None
        det._n = n
        det._seg, det._up, det._down = (
            Run(seg_start, seg_total),
            Run(up_start, up_total),
            Run(down_start, down_total),
        )
        river = det._det
        river._x_mean.n, river._x_mean._mean = mean_n, mean
        river._sum_increase, river._sum_decrease = sum_inc, sum_dec
        river._min_increase, river._max_decrease = min_inc, max_dec
        return det
